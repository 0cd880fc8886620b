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


class RouteTally:
    """The answers of one route template: counts by method and status code, and answers
    per latency bucket (the last: over every bound) followed by their total seconds."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.latency = [0.0] * (len(BUCKETS) + 2)

    def count(self, method: str, code: int, seconds: float) -> None:
        key = (method if method in METHODS else metrics.OTHER, code)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.latency[bisect.bisect_left(BUCKETS, seconds)] += 1  # the first bound >= seconds
        self.latency[-1] += seconds


class HttpTally:
    """``dragon_http_requests`` and ``dragon_http_request_duration_seconds``: a
    ``RouteTally`` per route template, handed to the route's handler when it is added."""

    def __init__(self) -> None:
        self.routes: dict[str, RouteTally] = {}

    def route(self, template: str) -> RouteTally:
        return self.routes.setdefault(template, RouteTally())

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "dragon_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            labels=("route", "method", "code"),
        )
        for route, tally in self.routes.items():
            for (method, code), n in tally.requests.items():
                requests.add_metric([route, method, str(code)], n)
        yield requests
        latency = HistogramMetricFamily(
            "dragon_http_request_duration_seconds",
            "Time to answer a request (to the end of the body for streams), by route template.",
            labels=("route",),
        )
        for route, tally in self.routes.items():
            if not tally.requests:
                continue
            total = 0.0
            buckets: list[tuple[str, float]] = []
            for le, answers in zip(_LE, tally.latency, strict=False):  # cumulative
                total += answers
                buckets.append((le, total))
            latency.add_metric([route], buckets, tally.latency[-1])
        yield latency


TALLY = HttpTally()
metrics.REGISTRY.register(TALLY)


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
