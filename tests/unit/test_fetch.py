"""Fetcher behaviour against local aiohttp origins (docs/security.md).

The origin listens on 127.0.0.1, so these tests use a policy that allows exactly
127.0.0.1/32; everything else private stays refused, which the redirect tests rely on.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import resource
import socket
import time
import zlib

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from PIL import Image

from dragon import errors
from dragon.config import Settings
from dragon.net.fetcher import USER_AGENT, AddressPolicy, Fetcher

MiB = 1024 * 1024
LOOPBACK_ONLY = AddressPolicy(allow=["127.0.0.1/32"])


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 8), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


def settings(**overrides) -> Settings:
    values = {"max_download_bytes": 4 * MiB, "fetch_total_timeout": 10.0, **overrides}
    return Settings.load(env={}, **values)


@pytest.fixture
async def origin(aiohttp_server):
    """A local origin; tests add routes to ``origin.app`` before ``await origin.start()``."""

    class Origin:
        def __init__(self) -> None:
            self.app = web.Application()
            self.seen: list[web.Request] = []
            self.server = None

        def route(self, path, handler):
            async def recording(request):
                self.seen.append(request)
                return await handler(request)

            self.app.router.add_route("*", path, recording)

        async def start(self) -> str:
            self.server = await aiohttp_server(self.app)
            return f"http://127.0.0.1:{self.server.port}"

    return Origin()


@pytest.fixture
async def make_fetcher():
    made: list[Fetcher] = []

    def make(policy=LOOPBACK_ONLY, resolver=None, **overrides) -> Fetcher:
        fetcher = Fetcher(settings(**overrides), policy, resolver=resolver)
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        await fetcher.close()


async def failure(fetcher, url, tmp_path, **kwargs) -> errors.TaskError:
    with pytest.raises(errors.TaskError) as info:
        await fetcher.download(url, tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == [], "a failed download must leave no file"
    return info.value


async def stream_forever(request, chunk=b"\0" * 65536, headers=None, length=None):
    resp = web.StreamResponse(headers=headers)
    if length is not None:
        resp.content_length = length
    await resp.prepare(request)
    try:
        for _ in range(100_000):
            await resp.write(chunk)
    except (ConnectionError, RuntimeError):
        pass
    return resp


# -- success ------------------------------------------------------------------------------


async def test_download_sniffs_the_bytes_not_the_headers(origin, make_fetcher, tmp_path):
    data = png_bytes()

    async def lying(request):
        return web.Response(body=data, content_type="text/plain")

    origin.route("/photo.mp4", lying)
    base = await origin.start()
    got = await make_fetcher().download(f"{base}/photo.mp4", tmp_path)
    assert got.mime == "image/png"
    assert got.size == len(data)
    assert got.path == tmp_path / "source.png"
    assert got.path.read_bytes() == data
    assert got.url == f"{base}/photo.mp4"
    request = origin.seen[0]
    assert request.headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("dragon/")
    assert "Authorization" not in request.headers
    assert "Cookie" not in request.headers


async def test_redirects_are_followed_and_cookies_are_not_kept(origin, make_fetcher, tmp_path):
    async def start(request):
        resp = web.HTTPFound("/final")
        resp.set_cookie("session", "secret")
        raise resp

    async def final(request):
        return web.Response(body=b"GIF89a" + b"\0" * 20)

    origin.route("/start", start)
    origin.route("/final", final)
    base = await origin.start()
    got = await make_fetcher().download(f"{base}/start", tmp_path)
    assert got.mime == "image/gif"
    assert got.url == f"{base}/final"
    assert "Cookie" not in origin.seen[1].headers


async def test_unknown_type_is_none(origin, make_fetcher, tmp_path):
    async def text(request):
        return web.Response(text="just words")

    origin.route("/t", text)
    base = await origin.start()
    got = await make_fetcher().download(f"{base}/t", tmp_path)
    assert (got.mime, got.path.name, got.size, got.charset) == (None, "source", 10, "utf-8")


# -- HTTP and network errors ----------------------------------------------------------------


async def test_http_error_names_the_status(origin, make_fetcher, tmp_path):
    base = await origin.start()
    err = await failure(make_fetcher(), f"{base}/missing.jpg", tmp_path)
    assert (err.code, err.message) == (errors.DOWNLOAD_FAILED, "source answered 404 Not Found")


async def test_connection_refused(make_fetcher, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        err = await failure(make_fetcher(), f"http://127.0.0.1:{port}/", tmp_path)
    assert err.code == errors.DOWNLOAD_FAILED
    assert err.message == f"could not connect to 127.0.0.1:{port}: Connection refused"


async def test_dns_failure(make_fetcher, tmp_path):
    class NoSuchHost(AbstractResolver):
        async def resolve(self, host, port=0, family=socket.AF_UNSPEC):
            raise OSError(socket.EAI_NONAME, "Name or service not known")

        async def close(self):
            pass

    err = await failure(make_fetcher(resolver=NoSuchHost()), "http://nowhere.test/a", tmp_path)
    assert (err.code, err.message) == (
        errors.DOWNLOAD_FAILED,
        "could not resolve the host name nowhere.test",
    )


async def test_body_cut_short(origin, make_fetcher, tmp_path):
    async def short(request):
        resp = web.StreamResponse()
        resp.content_length = 1000
        await resp.prepare(request)
        await resp.write(b"x" * 10)
        request.transport.close()
        return resp

    origin.route("/short", short)
    base = await origin.start()
    err = await failure(make_fetcher(), f"{base}/short", tmp_path)
    assert err.code == errors.DOWNLOAD_FAILED


# -- size limits (case 5) -------------------------------------------------------------------


async def test_content_length_over_limit_is_refused_before_the_body(origin, make_fetcher, tmp_path):
    async def huge(request):
        return await stream_forever(request, length=10 * 1024**3)

    origin.route("/huge", huge)
    base = await origin.start()
    fetcher = make_fetcher(max_download_bytes=1024**3)
    started = time.monotonic()
    err = await failure(fetcher, f"{base}/huge", tmp_path)
    assert (err.code, err.message) == (
        errors.DOWNLOAD_TOO_LARGE,
        "source is 10.0 GiB; the limit is 1.0 GiB",
    )
    assert time.monotonic() - started < 30  # reading even the allowed 1 GiB would take longer


async def test_per_call_max_bytes_overrides_the_setting(origin, make_fetcher, tmp_path):
    async def mib(request):
        return web.Response(body=b"\0" * MiB)

    origin.route("/mib", mib)
    base = await origin.start()
    err = await failure(make_fetcher(), f"{base}/mib", tmp_path, max_bytes=1000)
    assert (err.code, err.message) == (
        errors.DOWNLOAD_TOO_LARGE,
        "source is 1.0 MiB; the limit is 1000 bytes",
    )


async def test_endless_chunked_body_is_cut_at_the_limit(origin, make_fetcher, tmp_path):
    origin.route("/endless", stream_forever)
    base = await origin.start()
    err = await failure(make_fetcher(max_download_bytes=MiB), f"{base}/endless", tmp_path)
    assert (err.code, err.message) == (
        errors.DOWNLOAD_TOO_LARGE,
        "source is larger than the limit of 1.0 MiB",
    )


def gzip_bomb(expanded: int) -> bytes:
    """``expanded`` zero bytes as gzip (about 1000:1): 64 MiB members, concatenated as
    RFC 1952 allows, because compressing a whole GiB would take seconds."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = z.compress(b"\0" * 64 * MiB) + z.flush()
    return member * (expanded // (64 * MiB))


async def test_gzip_bomb_is_cut_at_the_decoded_limit(origin, make_fetcher, tmp_path):
    bomb = gzip_bomb(1024 * MiB)
    assert len(bomb) < 1.1 * MiB

    async def serve(request):
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    origin.route("/bomb", serve)
    base = await origin.start()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    err = await failure(make_fetcher(max_download_bytes=8 * MiB), f"{base}/bomb", tmp_path)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert (err.code, err.message) == (
        errors.DOWNLOAD_TOO_LARGE,
        "source is larger than the limit of 8.0 MiB",
    )
    assert grown_mib < 100


async def test_gzip_body_under_the_limit_is_decoded(origin, make_fetcher, tmp_path):
    data = png_bytes()

    async def serve(request):
        return web.Response(body=gzip.compress(data), headers={"Content-Encoding": "gzip"})

    origin.route("/z", serve)
    base = await origin.start()
    got = await make_fetcher().download(f"{base}/z", tmp_path)
    assert got.path.read_bytes() == data
    assert got.mime == "image/png"


# -- time limits (case 6) -------------------------------------------------------------------


async def test_slow_origin_times_out_at_the_total_limit(origin, make_fetcher, tmp_path):
    async def drip(request):
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(20):
            await resp.write(b"x")
            await asyncio.sleep(2)
        return resp

    origin.route("/drip", drip)
    base = await origin.start()
    started = time.monotonic()
    err = await failure(make_fetcher(fetch_total_timeout=1.5), f"{base}/drip", tmp_path)
    assert (err.code, err.message) == (
        errors.TIMEOUT,
        f"download of {base}/drip did not finish within 1.5 s",
    )
    assert time.monotonic() - started < 20  # the origin would drip for 40 s


async def test_silent_origin_hits_the_read_timeout(origin, make_fetcher, tmp_path):
    async def silent(request):
        await asyncio.sleep(5)
        return web.Response(text="late")

    origin.route("/silent", silent)
    base = await origin.start()
    err = await failure(make_fetcher(fetch_read_timeout=0.3), f"{base}/silent", tmp_path)
    assert (err.code, err.message) == (errors.TIMEOUT, "source sent nothing for 0.3 s")


# -- redirects (case 3) ---------------------------------------------------------------------


def redirect_to(location: str):
    async def handler(request):
        raise web.HTTPFound(location)

    return handler


@pytest.mark.parametrize(
    ("location", "message"),
    [
        (
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.169.254/latest/meta-data/ resolves to 169.254.169.254, a link-local "
            "address; only public addresses may be fetched",
        ),
        (
            "http://[::1]/",
            "http://[::1]/ resolves to ::1, a loopback address; only public "
            "addresses may be fetched",
        ),
        (
            "file:///etc/passwd",
            "{base}/r redirected to file:///etc/passwd: the URL must be an http or https URL",
        ),
        (
            "gopher://127.0.0.1:6379/_FLUSHALL",
            "{base}/r redirected to "
            "gopher://127.0.0.1:6379/_FLUSHALL: the URL must be an http or https URL",
        ),
        (
            "http://user:pw@example.com/",
            "{base}/r redirected to http://user:pw@example.com/: "
            "the URL must not carry credentials (user@host)",
        ),
    ],
)
async def test_redirect_to_a_forbidden_target(origin, make_fetcher, tmp_path, location, message):
    origin.route("/r", redirect_to(location))
    base = await origin.start()
    err = await failure(make_fetcher(), f"{base}/r", tmp_path)
    assert (err.code, err.message) == (errors.URL_FORBIDDEN, message.format(base=base))


async def redirect_chain(origin, hops: int) -> str:
    async def hop(request):
        n = int(request.match_info["n"])
        if n < hops:
            raise web.HTTPFound(f"/hop/{n + 1}")
        return web.Response(body=b"\xff\xd8\xff\xe0 jpeg")

    origin.route("/hop/{n}", hop)
    return await origin.start()


async def test_ten_redirects_are_too_many(origin, make_fetcher, tmp_path):
    base = await redirect_chain(origin, 10)
    err = await failure(make_fetcher(), f"{base}/hop/0", tmp_path)
    assert (err.code, err.message) == (
        errors.TOO_MANY_REDIRECTS,
        f"{base}/hop/0 redirected more than 5 times",
    )
    assert len(origin.seen) == 6


async def test_max_redirects_hops_are_fine(origin, make_fetcher, tmp_path):
    base = await redirect_chain(origin, 5)
    got = await make_fetcher().download(f"{base}/hop/0", tmp_path)
    assert (got.mime, got.url) == ("image/jpeg", f"{base}/hop/5")


# -- send -----------------------------------------------------------------------------------


async def test_send_does_not_follow_redirects(origin, make_fetcher):
    origin.route("/hook", redirect_to("/elsewhere"))
    origin.route("/elsewhere", redirect_to("/never"))
    base = await origin.start()
    status = await make_fetcher().send(
        "POST", f"{base}/hook", body=b'{"a": 1}', headers={"Content-Type": "application/json"}
    )
    assert status == (302, "Found")
    assert [r.path for r in origin.seen] == ["/hook"]


async def test_send_streams_a_file_with_its_length(origin, make_fetcher, tmp_path):
    received = {}

    async def put(request):
        received["body"] = await request.read()
        received["headers"] = request.headers
        return web.Response(status=201)

    origin.route("/bucket/key", put)
    base = await origin.start()
    path = tmp_path / "out.bin"
    path.write_bytes(bytes(range(256)) * 1000)
    status = await make_fetcher().send(
        "PUT", f"{base}/bucket/key", body=path, headers={"x-amz-acl": "public-read"}
    )
    assert status == (201, "Created")
    assert received["body"] == path.read_bytes()
    assert received["headers"]["Content-Length"] == "256000"
    assert received["headers"]["x-amz-acl"] == "public-read"


async def test_send_timeout(origin, make_fetcher):
    async def hang(request):
        await asyncio.sleep(5)
        return web.Response()

    origin.route("/hang", hang)
    base = await origin.start()
    with pytest.raises(errors.TaskError) as info:
        await make_fetcher().send("POST", f"{base}/hang", body=b"x", timeout=0.3)
    assert (info.value.code, info.value.message) == (
        errors.TIMEOUT,
        f"POST {base}/hang got no answer within 0.3 s",
    )
