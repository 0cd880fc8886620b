"""What every request passes through: its answer to a failure, CORS, its count and time for
``/metrics``, and a note of a body it left unread.

Each route's handler is wrapped once, when it is added (``Routes``), rather than run behind
an aiohttp middleware: aiohttp puts one of its own in front of any middleware, and a layer
costs a partial and a coroutine per request, 1.5 us of a 40 us status poll. A request no
route takes reaches ``unrouted``, a catch-all added last, so it gets the same treatment.
"""

from __future__ import annotations

import functools
import time

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from dragon.engine import metrics
from dragon.handlers.errors import (
    ANSWER_CORS_HEADERS,
    answer_cors_headers,
    cors_headers,
    failure_response,
    http_error_response,
    preflight_response,
)
from dragon.web.connections import forget_unread, note_unread
from dragon.web.http_metrics import TALLY

CATCH_ALL = "/{path:.*}"


def framed(handler: Handler, route: str, cors: dict[str, str]) -> Handler:
    """``handler`` answering every failure in the documented shape, with the CORS headers
    ``cors`` on its answers, counted under the route template ``route``."""
    tally = TALLY.route(route)

    @functools.wraps(handler)  # its docstring and OpenAPI declaration stay readable
    async def frame(request: web.Request) -> web.StreamResponse:
        start = time.perf_counter()
        forget_unread(request)
        code = 500
        try:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                if exc.status < 400:  # a redirect: aiohttp sends it
                    code = exc.status
                    raise
                response = http_error_response(exc)
            except Exception as exc:
                response = failure_response(request, exc)
            if not response.prepared:  # a stream sent its own with its head
                response.headers.update(cors)
            code = response.status
            return response
        finally:
            tally.count(request.method, code, time.perf_counter() - start)
            note_unread(request)

    return frame


async def unrouted(request: web.Request) -> web.StreamResponse:
    """A request no route takes: a CORS preflight is answered, else 405 (naming the methods
    the path takes) or 404."""
    if request.method == hdrs.METH_OPTIONS:
        return preflight_response(request.path)
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        match, methods = await resource.resolve(request)
        if match is None:  # the one that matches is the catch-all
            allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


class Routes:
    """Adds routes to an aiohttp router, each handler ``framed``; ``close`` adds the
    catch-all, last."""

    def __init__(self, router: web.UrlDispatcher) -> None:
        self.router = router

    def add(self, method: str, path: str, handler: Handler) -> None:
        resource = self.router.add_resource(path)  # the previous one again, for its path
        # An OPTIONS handler's answer is the path's answer to a preflight too.
        cors = cors_headers(path) if method == hdrs.METH_OPTIONS else answer_cors_headers(path)
        resource.add_route(method, framed(handler, resource.canonical, cors))

    def get(self, path: str, handler: Handler) -> None:
        self.add(hdrs.METH_HEAD, path, handler)
        self.add(hdrs.METH_GET, path, handler)

    def post(self, path: str, handler: Handler) -> None:
        self.add(hdrs.METH_POST, path, handler)

    def delete(self, path: str, handler: Handler) -> None:
        self.add(hdrs.METH_DELETE, path, handler)

    def close(self) -> None:
        resource = self.router.add_resource(CATCH_ALL)
        resource.add_route(hdrs.METH_ANY, framed(unrouted, metrics.OTHER, ANSWER_CORS_HEADERS))
