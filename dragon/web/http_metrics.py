"""Counts and times every HTTP answer for ``/metrics``, labelled by route template.

The label is the template the request matched (``/storage/{location}``), never the raw
path, so task keys, file names and query strings (credentials included) never become
series. A request that matched no route is counted under ``other``.
"""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler

from dragon.api.openapi import PUBLIC, documented, file_answer
from dragon.engine import metrics

METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


def route_of(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else metrics.OTHER


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    except web.HTTPException as exc:
        code = exc.status
        raise
    finally:
        route = route_of(request)
        method = request.method if request.method in METHODS else metrics.OTHER
        metrics.HTTP_REQUESTS.labels(route, method, str(code)).inc()
        metrics.HTTP_LATENCY.labels(route).observe(time.perf_counter() - start)


@documented(
    {
        "summary": "This node's metrics (Prometheus text format)",
        "operationId": "metrics",
        "tags": ["server"],
        "security": PUBLIC,
        "responses": {"200": file_answer("text/plain", "metrics")},
    }
)
async def serve_metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: this node's metrics in the Prometheus text format."""
    return web.Response(body=metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE})
