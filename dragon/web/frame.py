"""The one middleware every request passes: its answer to a failure, its count and time
for ``/metrics``, and a note of a body it left unread.

One middleware calling the three parts rather than three middlewares: each layer of
aiohttp's chain costs a partial call and a coroutine, about 2 us of a 40 us status poll.
"""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler

from dragon.handlers.errors import answer
from dragon.web.connections import forget_unread, note_unread
from dragon.web.http_metrics import TALLY, route_of


@web.middleware
async def frame(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    forget_unread(request)
    code = 500
    try:
        response = await answer(request, handler)
        code = response.status
        return response
    except web.HTTPException as exc:  # a redirect (errors below 400 are raised on)
        code = exc.status
        raise
    finally:
        TALLY.count(route_of(request), request.method, code, time.perf_counter() - start)
        note_unread(request)
