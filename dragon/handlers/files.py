"""Output files of the local backend, at URLs that need no credentials.

The URL holds the task key and a random suffix, so it cannot be guessed from the key
alone. Each request checks the database: a file deleted through the storage API stops
being served at once, even if its bytes are still being removed. Range requests work
(aiohttp's FileResponse), so browsers can seek in videos.
"""

from __future__ import annotations

from aiohttp import web

from dragon.web.state import state


async def serve_file(request: web.Request) -> web.StreamResponse:
    location = request.match_info["location"]
    row = await state(request).db.file_by_location(location)
    if row is None:
        raise web.HTTPNotFound(reason="no such file")
    backend = state(request).stores.backend
    try:
        path = backend.path(location)
    except (AttributeError, ValueError):
        raise web.HTTPNotFound(reason="no such file") from None
    if not path.is_file():
        raise web.HTTPNotFound(reason="no such file")
    return web.FileResponse(path, headers={
        "Content-Type": row["content_type"],
        "Cache-Control": "public, max-age=31536000, immutable",
        "Access-Control-Allow-Origin": "*",
    })
