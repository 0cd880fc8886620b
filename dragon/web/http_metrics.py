"""Counts and times every HTTP answer for ``/metrics``, labelled by route template.

The label is the template the request matched (``/storage/{location}``), never the raw
path, so task keys, file names and query strings (credentials included) never become
series. A request that matched no route is counted under ``other``.

The labelled series are looked up once per label set and kept here: prometheus_client's
``labels()`` validates and locks on every call, which on a status poll cost more than the
count itself. The label sets are bounded (routes, methods and status codes), so is the cache.
"""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import Counter, Histogram

from dragon.api.openapi import PUBLIC, documented, file_answer
from dragon.engine import metrics

METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))

_requests: dict[tuple[str, str, int], Counter] = {}  # (route, method, code) -> its counter
_latencies: dict[str, Histogram] = {}  # route -> its histogram


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
        _count(route_of(request), request.method, code, time.perf_counter() - start)


def _count(route: str, method: str, code: int, seconds: float) -> None:
    method = method if method in METHODS else metrics.OTHER
    counter = _requests.get((route, method, code))
    if counter is None:
        counter = _requests[route, method, code] = metrics.HTTP_REQUESTS.labels(
            route, method, str(code)
        )
    counter.inc()
    latency = _latencies.get(route)
    if latency is None:
        latency = _latencies[route] = metrics.HTTP_LATENCY.labels(route)
    latency.observe(seconds)


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
