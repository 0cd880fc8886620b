"""Output files of the local backend, at URLs that need no credentials.

The URL holds the task key and a random suffix, so it cannot be guessed from the key
alone. Each request checks the database: a file deleted through the storage API stops
being served at once, even if its bytes are still being removed. Range requests work
(aiohttp's FileResponse), so browsers can seek in videos.
"""

from __future__ import annotations

import re

from aiohttp import web

from dragon.api.openapi import PUBLIC, documented, errors, file_answer, path_parameter
from dragon.api.state import state
from dragon.errors import RequestError
from dragon.stores.backends import LocalBackend

# ``bytes=-0``: the last zero bytes, which RFC 9110 (14.1.1) calls unsatisfiable. aiohttp
# reads it as ``bytes=0-`` and would send the whole file as a 206.
EMPTY_SUFFIX_RANGE = re.compile(r"\s*bytes\s*=\s*-\s*0+\s*", re.I)


@documented(
    {
        "summary": "An output file of the local store (no credentials; Range works)",
        "operationId": "output_file",
        "tags": ["files"],
        "security": PUBLIC,
        "parameters": [path_parameter("location")],
        "responses": {
            "200": file_answer("*/*", binary=True),
            "206": {"description": "part of the file"},
            **errors(404, 416),
        },
    }
)
async def serve_file(request: web.Request) -> web.StreamResponse:
    location = request.match_info["location"]
    row = await state(request).db.file_by_location(location)
    if row is None:
        raise web.HTTPNotFound(reason="no such file")
    backend = state(request).stores.backend
    if not isinstance(backend, LocalBackend):  # S3 files are served by S3 itself
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
    return web.FileResponse(
        path,
        headers={
            "Content-Type": row["content_type"],
            "Cache-Control": "public, max-age=31536000, immutable",
            "Access-Control-Allow-Origin": "*",
        },
    )
