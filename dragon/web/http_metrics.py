"""Counts and times every HTTP answer for ``/metrics``, labelled by route template.

The label is the template the request matched (``/storage/{location}``), never the raw
path, so task keys, file names and query strings (credentials included) never become
series. A request that matched no route is counted under ``other``.

The counts are plain numbers, turned into Prometheus families only when ``/metrics`` is
read (``HttpTally.collect``): prometheus_client's ``Counter.inc`` and
``Histogram.observe`` take a lock per call (and the histogram one per bucket it passes),
and on a status poll they cost 7 us of the request's 43. The label sets are bounded
(routes, methods and status codes), so are the tallies.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from aiohttp import web
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric

from dragon.api.openapi import PUBLIC, documented, file_answer
from dragon.engine import metrics

METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)
_LE = [*(repr(float(bound)) for bound in BUCKETS), "+Inf"]  # as prometheus_client writes them


class HttpTally:
    """``dragon_http_requests`` and ``dragon_http_request_duration_seconds``."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}  # (route, method, code) -> count
        # route -> answers per bucket (the last: over every bound), then their total seconds
        self.latency: dict[str, list[float]] = {}

    def count(self, route: str, method: str, code: int, seconds: float) -> None:
        key = (route, method if method in METHODS else metrics.OTHER, code)
        self.requests[key] = self.requests.get(key, 0) + 1
        row = self.latency.get(route)
        if row is None:
            row = self.latency[route] = [0.0] * (len(BUCKETS) + 2)
        row[bisect.bisect_left(BUCKETS, seconds)] += 1  # the first bound >= seconds
        row[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "dragon_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            labels=("route", "method", "code"),
        )
        for (route, method, code), n in self.requests.items():
            requests.add_metric([route, method, str(code)], n)
        yield requests
        latency = HistogramMetricFamily(
            "dragon_http_request_duration_seconds",
            "Time to answer a request (to the end of the body for streams), by route template.",
            labels=("route",),
        )
        for route, row in self.latency.items():
            total = 0.0
            buckets: list[tuple[str, float]] = []
            for le, answers in zip(_LE, row, strict=False):  # cumulative, as Prometheus has it
                total += answers
                buckets.append((le, total))
            latency.add_metric([route], buckets, row[-1])
        yield latency


TALLY = HttpTally()
metrics.REGISTRY.register(TALLY)


def route_of(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else metrics.OTHER


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
