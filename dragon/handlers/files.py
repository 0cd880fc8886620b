"""Output files at URLs on this server that need no credentials: ``/storage/<location>``.

The URL holds the task key and a random suffix, so it cannot be guessed from the key
alone. Each request checks the database: only a file dragon recorded as an output is
answered, and a file deleted through the storage API stops being served at once, even if
its bytes are still being removed.

On local disk the file is sent here, Range requests included (aiohttp's FileResponse), so
browsers can seek in videos. In an S3 bucket (docs/scaling.md) the answer is a redirect to a
pre-signed GET of that object, signed now, so the bucket may stay private and the URL
outlives every signature; the client sends its Range header again to the bucket. HEAD gets
a pre-signed HEAD (a signature covers the method). Streaming playlists are the exception:
they are sent from here, because players in browsers (hls.js, dash.js) resolve the
relative URLs inside a playlist (its renditions, its segments) against the URL they
finally read it from. Read from a signed bucket URL, those would be unsigned bucket URLs,
which a private bucket refuses; read from here, they are output URLs of this server again,
each redirected in turn.

The redirect never goes anywhere but the configured bucket, and only for a location the
files table holds, so this route opens no other key of the bucket and is no open redirect.
Any node answers for any output: the files table is shared.
"""

from __future__ import annotations

import re

from aiohttp import web

from dragon.api.openapi import PUBLIC, STRING, documented, errors, file_answer, path_parameter
from dragon.api.state import state
from dragon.database.rows import FileRow
from dragon.errors import RequestError
from dragon.stores.backends import LocalBackend
from dragon.stores.s3 import S3Backend, S3Failed

# ``bytes=-0``: the last zero bytes, which RFC 9110 (14.1.1) calls unsatisfiable. aiohttp
# reads it as ``bytes=0-`` and would send the whole file as a 206.
EMPTY_SUFFIX_RANGE = re.compile(r"\s*bytes\s*=\s*-\s*0+\s*", re.I)

# Content types of the playlists and manifests whose relative URLs a player resolves
# (HLS, DASH): sent from this server, not redirected (see above).
PLAYLISTS = frozenset(
    {
        "application/vnd.apple.mpegurl",
        "application/x-mpegurl",
        "audio/mpegurl",
        "audio/x-mpegurl",
        "application/dash+xml",
    }
)
MAX_RELAYED_BYTES = 8 * 1024 * 1024  # a playlist larger than this is redirected like any file
OUTPUT_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "Access-Control-Allow-Origin": "*",
}


@documented(
    {
        "summary": "An output file (no credentials): sent from local disk (Range works), or a"
        " redirect to a pre-signed GET of its S3 object",
        "description": "With S3 storage, GET answers 302 to a pre-signed URL of the object"
        " (HEAD to a pre-signed HEAD), signed at each request and valid for"
        " DRAGON_S3_PRESIGN_SECONDS; send Range to the new location. HLS and DASH"
        " playlists are answered here (200) so their relative URLs stay on this server.",
        "operationId": "output_file",
        "tags": ["files"],
        "security": PUBLIC,
        "parameters": [path_parameter("location")],
        "responses": {
            "200": file_answer("*/*", binary=True),
            "206": {"description": "part of the file"},
            "302": {
                "description": "S3 storage: a pre-signed URL of the object, valid for a while",
                "headers": {"Location": {"schema": STRING}},
            },
            **errors(404, 416, 503),
        },
    }
)
async def serve_file(request: web.Request) -> web.StreamResponse:
    location = request.match_info["location"]
    row = await state(request).db.file_by_location(location)
    if row is None:
        raise web.HTTPNotFound(reason="no such file")
    backend = state(request).stores.backend
    if isinstance(backend, S3Backend):
        try:
            return await _from_bucket(request, backend, row)
        except S3Failed:
            raise RequestError(
                "storage",
                "the file's storage did not answer; retry shortly",
                "server",
                status=503,
                headers={"Retry-After": "5"},
            ) from None
    if not isinstance(backend, LocalBackend):
        raise web.HTTPNotFound(reason="no such file")
    try:
        path = backend.path(location)
    except ValueError:
        raise web.HTTPNotFound(reason="no such file") from None
    if not path.is_file():
        raise web.HTTPNotFound(reason="no such file")
    if EMPTY_SUFFIX_RANGE.fullmatch(request.headers.get("Range", "")):
        raise RequestError(
            "range",
            "the range bytes=-0 selects no byte",
            "header",
            status=416,
            headers={"Content-Range": f"bytes */{path.stat().st_size}"},
        )
    return web.FileResponse(path, headers={"Content-Type": row["content_type"], **OUTPUT_HEADERS})


async def _from_bucket(request: web.Request, backend: S3Backend, row: FileRow) -> web.Response:
    """A redirect to the object, signed now; or, for a playlist, its bytes."""
    if (
        request.method == "GET"
        and row["content_type"].lower() in PLAYLISTS
        and row["size"] <= MAX_RELAYED_BYTES
    ):
        return await _relay(backend, row)
    signed = await backend.presigned(row["location"], request.method)
    # A client may keep the redirect for half the signature's life: a browser that shows
    # the same output again then asks the bucket for the same URL, which it has cached.
    keep = backend.presign_seconds // 2
    return web.Response(
        status=302,
        headers={
            "Location": signed,
            "Cache-Control": f"private, max-age={keep}",
            "Access-Control-Allow-Origin": "*",
        },
    )


async def _relay(backend: S3Backend, row: FileRow) -> web.Response:
    """The object's bytes, read whole before answering, so a failing bucket is a clean 503
    rather than a cut answer (a playlist is a few kilobytes)."""
    body = await backend.read(row["location"])
    return web.Response(body=body, headers={"Content-Type": row["content_type"], **OUTPUT_HEADERS})
