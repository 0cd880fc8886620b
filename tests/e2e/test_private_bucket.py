"""Outputs from a private S3 bucket (moto in server mode, no bucket policy at all).

moto refuses unsigned reads of such a bucket (403), as S3 does, so every check that a
URL "opens" here proves the redirect to a pre-signed GET: the output URL is the server's,
it answers 302 to a URL of the bucket signed at that moment, and the bytes that come back
are the object's, compared with what the bucket holds (read with credentials).
Streaming playlists are served by the server itself, so the relative URLs inside them
resolve to output URLs of the server again, whichever base a player takes: hls.js and
dash.js resolve against the URL a playlist was finally read from (a redirect's target),
which the walk through the ladder below does as they do; ffmpeg against the URL it asked
for, and ffprobe reads the ladder over HTTP too.
"""

from __future__ import annotations

import io
import re
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
from PIL import Image

from tests.e2e.test_create_file import fetch
from tests.support import media
from tests.support.media import ffprobe
from tests.support.s3 import MotoS3
from tests.support.server import Server

BUCKET = "private-outputs"


@pytest.fixture(scope="module")
def moto():
    s3 = MotoS3()
    yield s3
    s3.close()


@pytest.fixture(scope="module")
def server(make_server, moto) -> Server:
    return make_server(env=moto.bucket(BUCKET))


@pytest.fixture(scope="module")
def sources(origin, tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("private-bucket")
    clip = media.video(d / "clip.mp4", duration=3.0, size="320x240")
    return {
        "image": origin.add("private/cat.jpg", media.image_bytes(400, 300), "image/jpeg"),
        "video": origin.add_file("private/clip.mp4", clip, "video/mp4"),
    }


def location_of(server: Server, url: str) -> str:
    assert server.stores(url), url
    return server.storage_name(url)


def in_bucket(moto: MotoS3, location: str) -> bytes:
    """The object's bytes, read with credentials."""
    return moto.client.get_object(Bucket=BUCKET, Key=location)["Body"].read()


def redirect_of(url: str, method: str = "GET", headers: dict | None = None) -> str:
    """The Location of the server's redirect for ``url``."""
    status, answer, _ = fetch(url, method=method, headers=headers)
    assert status == 302, (url, status)
    return answer["Location"]


def opened(url: str, headers: dict | None = None) -> tuple[int, str, bytes, str]:
    """(status, content type, bytes, final URL) of a GET that follows redirects, as a
    browser would."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read(), r.geturl()
    except urllib.error.HTTPError as e:
        return e.code, "", e.read(), url


def assert_opens(server: Server, moto: MotoS3, url: str) -> bytes:
    """``url`` is one of the server's outputs, the bucket refuses it unsigned, and it opens
    through the server's redirect with the object's bytes."""
    location = location_of(server, url)
    assert opened(f"{moto.url}/{BUCKET}/{location}")[0] == 403  # the bucket is private
    signed = redirect_of(url)
    assert signed.startswith(f"{moto.url}/{BUCKET}/{location}?"), signed
    assert "X-Amz-Signature=" in signed
    status, _, body, _ = opened(url)
    assert status == 200, url
    assert body == in_bucket(moto, location)
    return body


def test_the_bucket_is_private_and_outputs_of_each_task_open(server, moto, sources):
    tasks = [
        {"task_name": "image.thumb", "url": sources["image"], "width": 40},
        {"task_name": "video.thumb", "url": sources["video"], "time": 1.0},
        {"task_name": "video.strip", "url": sources["video"], "count": 3},
        {"task_name": "video.convert", "url": sources["video"]},
    ]
    docs = server.create(tasks)
    assert [d["status"] for d in docs] == ["success"] * len(tasks), docs
    thumb, frame, strip, converted = (d["result"] for d in docs)
    image = Image.open(io.BytesIO(assert_opens(server, moto, thumb["output"])))
    assert image.size == (40, 30)
    assert Image.open(io.BytesIO(assert_opens(server, moto, frame["output"]))).size == (320, 240)
    assert Image.open(io.BytesIO(assert_opens(server, moto, strip["output"]))).size[0] > 320
    movie = assert_opens(server, moto, converted["output"])
    assert movie[4:8] == b"ftyp"


def test_range_and_head_follow_the_redirect(server, moto, sources):
    [doc] = server.create([{"task_name": "video.convert", "url": sources["video"]}])
    url = doc["result"]["output"]
    whole = in_bucket(moto, location_of(server, url))
    status, _, part, _ = opened(url, {"Range": "bytes=100-199"})
    assert status == 206 and part == whole[100:200]
    # HEAD gets a URL signed for HEAD (a signature covers the method), which gives the length.
    signed = redirect_of(url, "HEAD")
    assert signed.startswith(f"{moto.url}/{BUCKET}/") and signed != redirect_of(url)
    status, answer, body = fetch(signed, method="HEAD")
    assert status == 200 and body == b"" and int(answer["Content-Length"]) == len(whole)
    # ffprobe reads the video through the redirect, seeking with ranges.
    probed = ffprobe(url)
    assert {s["codec_type"] for s in probed["streams"]} == {"video", "audio"}


def uris(playlist: str) -> list[str]:
    """The URIs an HLS playlist names: its lines that are not tags, and URI="..." of tags."""
    found = []
    for line in playlist.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            found.append(line)
        found += re.findall(r'URI="([^"]+)"', line)
    return found


def test_an_hls_ladder_plays_from_the_private_bucket(server, moto, sources):
    [doc] = server.create(
        [
            {
                "task_name": "video.convert",
                "url": sources["video"],
                "format": "hls",
                "renditions": [{"height": 240}, {"height": 144}],
            }
        ]
    )
    assert doc["status"] == "success", doc
    master = doc["result"]["output"]
    # The playlists are answered by the server (200, no redirect): resolved against the URL
    # a playlist was finally read from, as hls.js does, their relative URLs are output URLs
    # of the server. (Redirected to the bucket, they would be unsigned bucket URLs: 403.)
    status, _, _ = fetch(master)
    assert status == 200
    seen, segments = set(), 0
    queue = [master]
    while queue:
        url = queue.pop()
        status, content_type, body, final = opened(url)
        assert status == 200, url
        assert body == in_bucket(moto, location_of(server, url))
        if url.endswith(".m3u8"):
            assert final == url and "mpegurl" in content_type.lower()
            for uri in uris(body.decode()):
                assert not urlsplit(uri).scheme, uri  # relative, as ffmpeg wrote them
                target = urljoin(final, uri)
                if target not in seen:
                    seen.add(target)
                    queue.append(target)
        else:
            segments += 1
            assert redirect_of(url).startswith(f"{moto.url}/{BUCKET}/")
    # Every rendition's playlist (and the audio group's) was reached from the master.
    assert {r["playlist"] for r in doc["result"]["renditions"]} < seen
    assert segments >= 3
    # A real player resolves them too: ffprobe reads the whole ladder over HTTP.
    probed = ffprobe(master)
    heights = sorted(s["height"] for s in probed["streams"] if s["codec_type"] == "video")
    assert heights == [144, 240]


def test_a_dash_manifest_plays_from_the_private_bucket(server, sources):
    [doc] = server.create(
        [
            {
                "task_name": "video.convert",
                "url": sources["video"],
                "format": "dash",
                "renditions": [{"height": 144}],
            }
        ]
    )
    assert doc["status"] == "success", doc
    manifest = doc["result"]["output"]
    assert fetch(manifest)[0] == 200
    probed = ffprobe(manifest)
    assert [s["height"] for s in probed["streams"] if s["codec_type"] == "video"] == [144]


def test_the_storage_listing_urls_open(server, moto):
    docs = server.create(
        [{"task_name": "test.file", "text": "listed", "names": ["first", "second"]}]
    )
    key = docs[0]["key"]
    listing = server.request("GET", f"/v2/storage/files/{key}?recursive=true").json()
    assert len(listing["files"]) == 2
    for entry in listing["files"]:
        assert entry["url"] in docs[0]["result"].values()
        assert assert_opens(server, moto, entry["url"]) == b"listed"


def test_create_file_redirects_to_a_url_that_opens(server, moto, sources):
    query = {"task_name": "image.thumb", "url": sources["image"], "width": "24"}
    query["secret"] = server.secret
    for path in ("/v1/create_file", "/v1/create_file/", "/v2/create_file/thumb.jpg"):
        output = redirect_of(f"{server.url}{path}?{urlencode(query)}")
        body = assert_opens(server, moto, output)
        assert Image.open(io.BytesIO(body)).size == (24, 18)
    # Followed all the way, as an <img src> is.
    status, content_type, body, final = opened(f"{server.url}/v1/create_file?{urlencode(query)}")
    assert status == 200 and content_type == "image/jpeg"
    assert final.startswith(f"{moto.url}/{BUCKET}/")


def signed_at(url: str) -> tuple[str, str]:
    query = parse_qs(urlsplit(url).query)
    return query["X-Amz-Date"][0], query["X-Amz-Expires"][0]


def test_each_redirect_is_signed_when_asked(make_server, moto):
    """The output URL outlives any signature: each request gets a new one, valid for
    DRAGON_S3_PRESIGN_SECONDS from then."""
    server = make_server(env={**moto.bucket("short-signatures"), "DRAGON_S3_PRESIGN_SECONDS": "1"})
    [doc] = server.create([{"task_name": "test.file", "text": "later"}])
    url = doc["result"]["output"]
    first_date, lifetime = signed_at(redirect_of(url))
    assert lifetime == "1"
    later = first_date
    while later == first_date:  # the clock moves past the second the first was signed in
        later = signed_at(redirect_of(url))[0]
    assert later > first_date
    assert opened(url)[2] == b"later"


def test_only_recorded_outputs_are_redirected_to(server, moto):
    [doc] = server.create([{"task_name": "test.file", "text": "mine"}])
    location = location_of(server, doc["result"]["output"])
    key = doc["key"]
    # An object in the bucket that dragon never recorded, beside the output.
    moto.client.put_object(Bucket=BUCKET, Key=f"{key}/not-an-output", Body=b"secret")
    for path in (
        f"{key}/not-an-output",
        f"{location}/../not-an-output",
        f"{location}%2F..%2Fnot-an-output",
        location.upper(),
        f"{location}x",
    ):
        status, headers, _ = fetch(f"{server.url}/storage/{path}")
        assert status == 404 and "Location" not in headers, path
    # A deleted output stops being redirected to at once.
    deleted = server.request("DELETE", f"/v2/storage/files/{location}").json()["deleted"]
    assert deleted == [location]
    assert fetch(doc["result"]["output"])[0] == 404


def test_direct_urls_point_into_a_public_bucket(make_server, moto):
    """DRAGON_S3_DIRECT_URLS keeps the URLs of before: the bucket's own, for a bucket
    anyone may read (or a CDN in front of it)."""
    env = {**moto.bucket("public-outputs", public=True), "DRAGON_S3_DIRECT_URLS": "1"}
    server = make_server(env=env)
    [doc] = server.create([{"task_name": "test.file", "text": "public"}])
    url = doc["result"]["output"]
    assert url.startswith(f"{moto.url}/public-outputs/{doc['key']}/dragon-test.file-")
    assert fetch(url)[:1] == (200,) and opened(url)[2] == b"public"
    listing = server.request("GET", "/v2/storage/files/?recursive=true").json()
    assert [f["url"] for f in listing["files"]] == [url]
    # The server's own URL of the same file still redirects: URLs recorded before the
    # setting changed keep working.
    own = f"{server.url}/storage/{server.storage_name(url)}"
    assert opened(own)[2] == b"public"


def test_a_cdn_base_url_means_direct_urls(make_server, moto):
    env = {**moto.bucket("cdn-outputs"), "DRAGON_S3_PUBLIC_URL": "https://cdn.example/media/"}
    server = make_server(env=env)
    [doc] = server.create([{"task_name": "test.file"}])
    assert doc["result"]["output"].startswith(f"https://cdn.example/media/{doc['key']}/")
