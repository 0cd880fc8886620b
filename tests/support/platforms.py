"""Local servers that speak the video platforms' upload protocols, with injectable faults.

One aiohttp server on 127.0.0.1 (in a thread with its own loop) serves three protocols
under path prefixes, so the server's "base URL whose path prefix is kept" is exercised:

- ``/youtube``: YouTube Data API v3 resumable upload. POST ``/upload/youtube/v3/videos``
  (``uploadType=resumable``, ``part``, ``key``, Bearer token, ``X-Upload-Content-*``,
  JSON ``snippet``/``status``) answers a session URI in ``Location``; PUTs with
  ``Content-Range: bytes a-b/N`` append (chunks must be 256 KiB multiples but the last,
  ``a`` must be what the session holds), answered 308 + ``Range`` until whole, then 200
  with the video resource; ``bytes */N`` asks the state.
- ``/vimeo``: API 3.4 (``GET /me`` with ``upload_quota``, ``POST /me/videos`` with
  ``upload.approach=tus``, ``DELETE /videos/{id}``) and tus 1.0.0 on the returned
  ``upload_link`` (PATCH with ``Upload-Offset``, 409 on a mismatch, HEAD for the offset,
  DELETE to terminate).
- ``/graph``: ``/{version}/me/videos`` with ``upload_phase`` start/transfer/finish/cancel;
  the server picks each range (``start_offset``/``end_offset``), checks
  ``appsecret_proof`` when ``app_secret`` is set, and answers Graph error objects.

An upload ended by its client (tus termination, Graph's cancel phase, a deleted Vimeo
video) leaves ``uploads`` and is recorded in ``Protocol.ended``.

Faults are queued per protocol in ``faults`` and used by the next data request (a chunk
PUT, a tus PATCH, a Graph transfer), one each:

- ``"503"``: read half of the chunk, keep it (YouTube, Vimeo) and answer 503;
- ``"drop"``: read half, keep it (YouTube, Vimeo), and cut the connection;
- ``"short"``: read it all but keep only the first half, and say so (308 ``Range`` /
  ``Upload-Offset``): the client must go on from what the server holds;
- ``"stall"`` (YouTube): read half and stop reading for ``stall_seconds``;
- ``"expire"`` (YouTube): the session is gone (404), the client must start again;
- ``"mismatch"`` (Graph): discard the chunk and answer error 1363037 naming the range
  to send instead.

Refused tokens answer the platform's own error (401, Graph code 190); ``quota`` makes
the platform refuse for quota. Hostile or confused platforms (tests/e2e/test_secrets.py,
test_platform_faults.py): ``echo`` answers every chunk PUT (YouTube), ``/me`` (Vimeo)
and transfer (Graph) 500 with a body that quotes the credentials it got after
``ECHO_PAD`` characters (a message cut first would show half a token);
``YouTube.ranges`` answers chunk PUTs 308 with these ``Range`` ends in turn, keeping
nothing; ``Graph.stuck`` answers every transfer with the first range again;
``Vimeo.me_body`` replaces the ``/me`` answer (deep JSON, a huge ``free``).

The received bytes are hashed as they arrive and, unless ``keep_bytes`` is false
(benchmarks), kept for comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import itertools
import json
import threading
import time
from typing import Any

from aiohttp import web

GRANULE = 256 * 1024
READ = 1024 * 1024
ECHO_PAD = 200


@dataclasses.dataclass
class Upload:
    """One upload as the server holds it."""

    id: str
    size: int
    meta: dict
    keep: bool
    data: bytearray = dataclasses.field(default_factory=bytearray)
    sha256: Any = dataclasses.field(default_factory=hashlib.sha256)
    held: int = 0
    complete: bool = False
    first_byte_at: float | None = None
    completed_at: float | None = None

    def append(self, chunk: bytes) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = time.perf_counter()
        if self.keep:
            self.data += chunk
        self.sha256.update(chunk)
        self.held += len(chunk)

    def finish(self) -> None:
        self.complete = True
        self.completed_at = time.perf_counter()

    @property
    def seconds(self) -> float:
        """From the first byte received to the last: the transfer's duration."""
        return (self.completed_at or 0) - (self.first_byte_at or 0)


class Protocol:
    def __init__(self, server: PlatformServer, prefix: str) -> None:
        self.server = server
        self.prefix = prefix
        self.tokens = {"good-token"}
        self.faults: list[str] = []
        self.quota = False
        self.delay = 0.0  # seconds each data request waits before it is answered
        self.echo = False  # answer data requests 500, quoting the credentials received
        self.requests: list[dict] = []
        self.uploads: dict[str, Upload] = {}
        self.ended: list[str] = []  # ids of uploads their client ended (abandoned)
        self._ids = itertools.count(1)

    def new_upload(self, size: int, meta: dict) -> Upload:
        upload = Upload(f"{self.prefix}{next(self._ids)}", size, meta, self.server.keep_bytes)
        self.uploads[upload.id] = upload
        return upload

    @property
    def last(self) -> Upload:
        return list(self.uploads.values())[-1]

    def record(self, request: web.Request, **extra: Any) -> None:
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                **extra,
            }
        )

    @staticmethod
    def echoed(credentials: str) -> str:
        """A careless platform's error text: padding, then the credentials it received."""
        return "." * ECHO_PAD + f" internal error handling the request for {credentials}"

    async def fault(self) -> str | None:
        """The next queued fault for a data request (after ``delay``)."""
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.faults.pop(0) if self.faults else None


async def read_into(request: web.Request, upload: Upload, length: int) -> None:
    left = length
    while left:
        chunk = await request.content.read(min(READ, left))
        if not chunk:
            raise web.HTTPBadRequest(text="body shorter than its Content-Length")
        upload.append(chunk)
        left -= len(chunk)


async def discard(request: web.Request, length: int) -> bytes:
    return await request.content.readexactly(length)


def drop(request: web.Request) -> web.Response:
    """Cut the connection where it stands (the client sees a reset mid-request)."""
    assert request.transport is not None
    request.transport.abort()
    return web.Response(status=500)


class YouTube(Protocol):
    """YouTube Data API v3 ``videos.insert`` with ``uploadType=resumable``."""

    dev_keys = {"dev-key"}
    stall_seconds = 5.0
    ranges: list[int] = []  # Range ends to answer chunk PUTs with, in turn (none: honest)

    def routes(self) -> list:
        path = "/youtube/upload/youtube/v3/videos"
        return [web.post(path, self.insert), web.put(path, self.put)]

    @staticmethod
    def error(status: int, reason: str, message: str) -> web.Response:
        body = {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"domain": "youtube", "reason": reason, "message": message}],
            }
        }
        return web.json_response(body, status=status)

    async def insert(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.record(request, body=body)
        q = request.query
        if q.get("uploadType") != "resumable" or set(q.get("part", "").split(",")) != {
            "snippet",
            "status",
        }:
            return self.error(400, "invalidParameter", "uploadType or part is wrong")
        if q.get("key") not in self.dev_keys:
            return self.error(400, "keyInvalid", "Bad Request")
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.tokens:
            return self.error(401, "authError", "Invalid Credentials")
        if self.quota:
            return self.error(
                403,
                "quotaExceeded",
                "The request cannot be completed because you have exceeded your quota.",
            )
        resource = json.loads(body)
        upload = self.new_upload(
            int(request.headers["X-Upload-Content-Length"]),
            {**resource, "content_type": request.headers["X-Upload-Content-Type"]},
        )
        location = (
            f"{request.url.origin()}{request.path}?uploadType=resumable&upload_id={upload.id}"
        )
        return web.Response(status=200, headers={"Location": location})

    def state(self, upload: Upload) -> web.Response:
        if upload.complete:
            body = {"kind": "youtube#video", "id": upload.id, **upload.meta}
            return web.json_response(body, status=200)
        headers = {"Range": f"bytes=0-{upload.held - 1}"} if upload.held else {}
        return web.Response(status=308, headers=headers)

    async def put(self, request: web.Request) -> web.Response:
        upload = self.uploads.get(request.query.get("upload_id", ""))
        content_range = request.headers.get("Content-Range", "")
        self.record(request, content_range=content_range)
        if upload is None:
            return self.error(404, "notFound", "upload session not found")
        unit, _, spec = content_range.partition(" ")
        where, _, total = spec.partition("/")
        if unit != "bytes" or total != str(upload.size):
            return self.error(400, "badContent", f"bad Content-Range {content_range!r}")
        if where == "*":
            return self.state(upload)
        start, end = (int(n) for n in where.split("-"))
        length = int(request.headers["Content-Length"])
        if self.echo:
            await discard(request, length)
            auth = request.headers.get("Authorization", "")
            return web.Response(status=500, text=self.echoed(f"{auth} {request.path_qs}"))
        if self.ranges:
            await discard(request, length)
            held = self.ranges[len(self.requests) % len(self.ranges)]
            return web.Response(status=308, headers={"Range": f"bytes=0-{held - 1}"})
        if start != upload.held or length != end - start + 1:
            return self.error(
                400,
                "badContent",
                f"range {where} but the session holds {upload.held} bytes and the body is {length}",
            )
        if end + 1 != upload.size and length % GRANULE:
            return self.error(400, "badContent", "chunk is not a multiple of 256 KiB")
        fault = await self.fault()
        if fault == "expire":
            del self.uploads[upload.id]
            return self.error(404, "notFound", "upload session expired")
        if fault in ("503", "drop", "stall"):
            await read_into(request, upload, length // 2)
            if fault == "drop":
                return drop(request)
            if fault == "stall":
                with contextlib.suppress(TimeoutError):  # stop reading; the client gives up
                    await asyncio.wait_for(self.server.stopping.wait(), self.stall_seconds)
                return drop(request)
            return self.error(503, "backendError", "Backend Error")
        if fault == "short":
            chunk = await discard(request, length)
            upload.append(chunk[: length // 2])
        else:
            await read_into(request, upload, length)
        if upload.held == upload.size:
            upload.finish()
        return self.state(upload)


class Vimeo(Protocol):
    """Vimeo API 3.4 with tus 1.0.0 uploads."""

    def __init__(self, server: PlatformServer, prefix: str) -> None:
        super().__init__(server, prefix)
        self.free = 10 * 1024**3
        self.echo_token = False
        self.me_body: bytes | None = None

    def routes(self) -> list:
        return [
            web.get("/vimeo/me", self.me),
            web.post("/vimeo/me/videos", self.create),
            web.patch("/vimeo/tus/{id}", self.patch),
            web.head("/vimeo/tus/{id}", self.head),
            web.delete("/vimeo/tus/{id}", self.terminate),
            web.delete("/vimeo/videos/{id}", self.delete_video),
        ]

    def authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        version = "version=3.4" in request.headers.get("Accept", "")
        return scheme.lower() == "bearer" and token in self.tokens and version

    def refused(self, request: web.Request) -> web.Response:
        message = "You must provide a valid authenticated access token."
        if self.echo_token:  # a careless server: the client must scrub it from its messages
            message += f" Got {request.headers.get('Authorization')!r}."
        return self.error(401, message)

    @staticmethod
    def error(status: int, message: str) -> web.Response:
        return web.json_response(
            {"error": message, "link": None, "developer_message": message, "error_code": 8003},
            status=status,
        )

    async def me(self, request: web.Request) -> web.Response:
        self.record(request)
        if not self.authorized(request):
            return self.refused(request)
        if self.echo:
            auth = request.headers.get("Authorization", "")
            return web.Response(status=500, text=self.echoed(f"Authorization: {auth}"))
        if self.me_body is not None:
            return web.Response(body=self.me_body, content_type="application/json")
        return web.json_response(
            {
                "uri": "/users/1",
                "name": "Test",
                "upload_quota": {
                    "space": {
                        "free": self.free,
                        "max": 10 * 1024**3,
                        "used": 0,
                        "showing": "periodic",
                    }
                },
            }
        )

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.record(request, body=body)
        if not self.authorized(request):
            return self.refused(request)
        if body.get("upload", {}).get("approach") != "tus":
            return self.error(400, "only tus here")
        upload = self.new_upload(
            int(body["upload"]["size"]),
            {"name": body.get("name"), "description": body.get("description")},
        )
        link = f"{request.url.origin()}/vimeo/tus/{upload.id}"
        return web.json_response(
            {
                "uri": f"/videos/{upload.id}",
                "link": f"https://vimeo.com/{upload.id}",
                "name": body.get("name"),
                "upload": {"approach": "tus", "upload_link": link, "size": upload.size},
            },
            status=200,
        )

    def offset(self, upload: Upload, status: int) -> web.Response:
        return web.Response(
            status=status,
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": str(upload.held),
                "Upload-Length": str(upload.size),
                "Cache-Control": "no-store",
            },
        )

    async def head(self, request: web.Request) -> web.Response:
        self.record(request)
        upload = self.uploads.get(request.match_info["id"])
        if upload is None:
            return web.Response(status=404)
        return self.offset(upload, 200)

    async def terminate(self, request: web.Request) -> web.Response:
        """tus termination: the upload is gone (404 for it from now on)."""
        self.record(request)
        if request.headers.get("Tus-Resumable") != "1.0.0":
            return web.Response(status=400, text="not a tus 1.0.0 request")
        upload = self.uploads.pop(request.match_info["id"], None)
        if upload is None:
            return web.Response(status=404)
        self.ended.append(upload.id)
        return web.Response(status=204, headers={"Tus-Resumable": "1.0.0"})

    async def delete_video(self, request: web.Request) -> web.Response:
        self.record(request)
        if not self.authorized(request):
            return self.refused(request)
        self.ended.append(f"video {request.match_info['id']}")
        return web.Response(status=204)

    async def patch(self, request: web.Request) -> web.Response:
        upload = self.uploads.get(request.match_info["id"])
        self.record(request)
        if upload is None:
            return web.Response(status=404)
        h = request.headers
        if (
            h.get("Tus-Resumable") != "1.0.0"
            or h.get("Content-Type") != "application/offset+octet-stream"
        ):
            return web.Response(status=400, text="not a tus 1.0.0 PATCH")
        if int(h.get("Upload-Offset", -1)) != upload.held:
            return web.Response(status=409, text="Upload-Offset does not match")
        length = int(h["Content-Length"])
        if upload.held + length > upload.size:
            return web.Response(status=400, text="past Upload-Length")
        fault = await self.fault()
        if fault in ("503", "drop"):
            await read_into(request, upload, length // 2)
            if fault == "drop":
                return drop(request)
            return web.Response(status=503, text="Service Unavailable")
        if fault == "short":
            chunk = await discard(request, length)
            upload.append(chunk[: length // 2])
        else:
            await read_into(request, upload, length)
        if upload.held == upload.size:
            upload.finish()
            self.free -= upload.size
        return self.offset(upload, 204)


class Graph(Protocol):
    """Graph API chunked video upload (``upload_phase`` start, transfer, finish)."""

    def __init__(self, server: PlatformServer, prefix: str) -> None:
        super().__init__(server, prefix)
        self.app_secret: str | None = None
        self.chunk = 300_000  # the range size the server asks for (not a power of two)
        self.stuck = False  # answer every transfer with the first range again

    def routes(self) -> list:
        return [web.post("/graph/{version}/me/videos", self.videos)]

    @staticmethod
    def error(
        message: str,
        code: int,
        subcode: int | None = None,
        data: dict | None = None,
        status: int = 400,
    ) -> web.Response:
        error: dict[str, Any] = {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": "Atest",
        }
        if subcode:
            error["error_subcode"] = subcode
        if data is not None:
            error["error_data"] = data
        return web.json_response({"error": error}, status=status)

    def next_range(self, upload: Upload) -> dict:
        end = min(upload.size, upload.held + self.chunk)
        return {"start_offset": str(upload.held), "end_offset": str(end)}

    def transfer(self, upload: Upload, token: str, form: Any, fault: str | None) -> web.Response:
        """The transfer phase: append the range asked for and ask for the next."""
        if self.echo:
            proof = form.get("appsecret_proof")
            message = self.echoed(f"access_token={token}&appsecret_proof={proof}")
            return self.error(message, 2, status=500)
        if self.stuck:
            return web.json_response(self.next_range(upload))
        expected = self.next_range(upload)
        part = form["video_file_chunk"]
        part.file.seek(0)
        chunk = part.file.read()
        if fault == "mismatch" or form.get("start_offset") != expected["start_offset"]:
            return self.error(
                "The start offset of this chunk does not match the offset"
                " of the file on the server",
                6001,
                1363037,
                expected,
            )
        if len(chunk) != int(expected["end_offset"]) - upload.held:
            return self.error("chunk length does not match the range asked for", 100)
        upload.append(chunk)
        return web.json_response(self.next_range(upload))

    async def videos(self, request: web.Request) -> web.Response:
        fault = None
        if request.content_type == "multipart/form-data":
            fault = await self.fault()
            if fault in ("503", "drop"):
                self.record(request, fault=fault)
                await discard(request, int(request.headers["Content-Length"]) // 2)
                if fault == "drop":
                    return drop(request)
                return self.error("Service temporarily unavailable", 2, status=503)
        form = await request.post()
        fields = {
            k: (v if isinstance(v, str) else f"<file {len(v.file.read())} bytes>")
            for k, v in form.items()
        }
        self.record(request, form=fields)
        token = str(form.get("access_token", ""))
        if token not in self.tokens:
            return self.error("Invalid OAuth access token - Cannot parse access token", 190)
        if self.app_secret is not None:
            proof = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            if form.get("appsecret_proof") != proof:
                return self.error("Invalid appsecret_proof provided in the API argument", 100)
        phase = form.get("upload_phase")
        if phase == "start":
            if self.quota:
                return self.error("(#4) Application request limit reached", 4)
            upload = self.new_upload(
                int(form["file_size"]), {"version": request.match_info["version"]}
            )
            return web.json_response(
                {
                    "video_id": upload.id,
                    "upload_session_id": f"s{upload.id}",
                    **self.next_range(upload),
                }
            )
        upload = self.uploads.get(str(form.get("upload_session_id", ""))[1:])
        if upload is None:
            return self.error("Invalid upload session", 100)
        if phase == "transfer":
            return self.transfer(upload, token, form, fault)
        if phase == "cancel":
            del self.uploads[upload.id]
            self.ended.append(upload.id)
            return web.json_response({"success": True})
        if phase == "finish":
            if upload.held != upload.size:
                return self.error("the file is not complete", 100)
            upload.meta.update(
                {
                    k: form.get(k)
                    for k in ("title", "description", "privacy", "no_story")
                    if k in form
                }
            )
            upload.finish()
            return web.json_response({"success": True})
        return self.error("unknown upload_phase", 100)


class PlatformServer:
    """The three protocol servers on one loopback port; ``env`` points dragon at them."""

    def __init__(self, keep_bytes: bool = True) -> None:
        self.keep_bytes = keep_bytes
        self.youtube = YouTube(self, "yt")
        self.vimeo = Vimeo(self, "")
        self.graph = Graph(self, "10")
        try:
            import uvloop

            self.loop = uvloop.new_event_loop()
        except ImportError:
            self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self.url = f"http://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        self.stopping = asyncio.Event()  # ends stalled handlers when the server closes
        app = web.Application(client_max_size=256 * 1024**2)
        for protocol in (self.youtube, self.vimeo, self.graph):
            app.add_routes(protocol.routes())
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    @property
    def env(self) -> dict[str, str]:
        return {
            "DRAGON_YOUTUBE_API_URL": f"{self.url}/youtube",
            "DRAGON_VIMEO_API_URL": f"{self.url}/vimeo",
            "DRAGON_FACEBOOK_GRAPH_URL": f"{self.url}/graph",
        }

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stopping.set)
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)

    async def _close(self) -> None:
        await self.runner.cleanup()
        # End the handler tasks of connections still open before the loop stops.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
