"""Every Prometheus metric dragon exports, defined once, served by ``GET /metrics``.

The metrics live in their own registry (not prometheus_client's global one) so that each
server process reports exactly its own node: with several nodes, each one's ``/metrics``
is scraped on its own.

Labels never carry anything a client chose freely: ``task_name`` is a registered task name
(anything else is counted as ``other``), ``route`` is the route's template
(``/v2/storage/files/{path}``, never the raw path), and no label holds an account name, key
or secret. That keeps the series count bounded and the output safe to share.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Container
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from dragon.engine import classes
from dragon.net.fetcher import Download
from dragon.tasks.context import Fetcher

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

CONTENT_TYPE = CONTENT_TYPE_LATEST
OTHER = "other"  # the label of anything that is not a registered task name or a route
LANES = classes.LANES

TASKS = Counter(
    "dragon_tasks",
    "Tasks that ended, by task name and final status (success or error).",
    ("task_name", "status"),
    registry=REGISTRY,
)
TASK_DURATION = Histogram(
    "dragon_task_duration_seconds",
    "Run time of ended tasks, from start to end.",
    ("task_name",),
    registry=REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
QUEUE_DEPTH = Gauge(
    "dragon_queue_depth", "Tasks waiting in each lane's queue.", ("lane",), registry=REGISTRY
)
RUNNING = Gauge(
    "dragon_tasks_running", "Tasks executing now, by lane.", ("lane",), registry=REGISTRY
)
SUBSCRIBERS = Gauge(
    "dragon_stream_subscribers",
    "Open status streams, blocked requests and event feed followers.",
    registry=REGISTRY,
)
CALLBACKS = Counter(
    "dragon_callback_deliveries",
    "Callback delivery attempts by outcome: delivered, retry (will try again), failed"
    " (gave up), stopped (the receiver answered 410), refused (forbidden address).",
    ("outcome",),
    registry=REGISTRY,
)
FETCHED_BYTES = Counter(
    "dragon_fetched_bytes", "Bytes of source media downloaded by tasks.", registry=REGISTRY
)


def task_label(task_name: str, registered: Container[str]) -> str:
    """``task_name`` if it is registered, else ``other``: a label never holds user input."""
    return task_name if task_name in registered else OTHER


def task_ended(
    task_name: str,
    registered: Container[str],
    status: str,
    started_at: float | None,
    completed_at: float | None,
) -> None:
    """Count an ended task and, if it ran, its duration."""
    label = task_label(task_name, registered)
    TASKS.labels(label, status).inc()
    if started_at is not None and completed_at is not None:
        TASK_DURATION.labels(label).observe(max(0.0, completed_at - started_at))


def watch(
    queued: Callable[[str], int], running: Callable[[str], int], subscribers: Callable[[], int]
) -> None:
    """Read the live gauges from the server's scheduler and bus at each scrape."""
    for lane in LANES:
        QUEUE_DEPTH.labels(lane).set_function(functools.partial(queued, lane))
        RUNNING.labels(lane).set_function(functools.partial(running, lane))
    SUBSCRIBERS.set_function(subscribers)


class CountingFetcher:
    """The fetcher tasks download with, counting the bytes of each finished download."""

    def __init__(self, fetcher: Fetcher) -> None:
        self.fetcher = fetcher

    async def download(self, url: str, dest_dir: Path, *, max_bytes: int | None = None) -> Download:
        download = await self.fetcher.download(url, dest_dir, max_bytes=max_bytes)
        FETCHED_BYTES.inc(download.size)
        return download


def exposition() -> bytes:
    """The metrics in the Prometheus text format."""
    return generate_latest(REGISTRY)
