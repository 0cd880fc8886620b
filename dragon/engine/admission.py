"""Admission by measured capacity: an account's backlog may not outgrow what the node drains.

The per-account create rate (``rate_limits``) is a fixed number, and it can be far above what
the database commits and the lanes run: on a cluster one account creating at its allowed rate
queued tens of thousands of tasks, and the commits of that backlog slowed every other
account's tasks. So creates are also admitted by what the node measurably does: a moving
estimate of the tasks it ends per second, taken while it has work queued (an idle node's
rate says nothing of its capacity). An account whose queued and executing tasks exceed what
the node ends in ``admission_seconds`` gets 429 with ``Retry-After`` until they drain;
below ``admission_min_backlog`` tasks it is always admitted, and a request is judged on the
backlog before it, so a batch as large as a request may be is never refused for its size.

The backlog is the database's count of the account's active tasks (all nodes). Between reads
the last count plus what was admitted since is an upper bound: below the bound no read is
needed; above it the count is read again, unless the last count itself was above the bound
less than ``REFRESH_SECONDS`` ago (a refused flood costs no read per request).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dragon.config import Settings
from dragon.engine import metrics
from dragon.errors import RateLimited

REFRESH_SECONDS = 0.5  # how stale an account's counted backlog may be near the bound
SAMPLE_SECONDS = 1.0  # the drain estimate takes one sample per this many seconds at most
HALF_LIFE_SECONDS = 5.0  # a sample's weight in the estimate halves in this time
MAX_RETRY_AFTER = 60.0


def tasks_ended() -> float:
    """Tasks this process has ended so far, from its ``dragon_tasks`` counter."""
    return sum(
        sample.value
        for metric in metrics.TASKS.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


class DrainRate:
    """A moving estimate of the tasks this node ends per second while it has work queued.

    ``ended`` counts every end, including tasks that ended at their create (invalid
    parameters), which never waited for capacity: ``not_drained`` takes those back out.
    """

    def __init__(self, ended: Callable[[], float], queued: Callable[[], int]) -> None:
        self._ended = ended
        self._queued = queued
        self._count = ended()
        self._at = time.monotonic()
        self._skipped = 0.0
        self.per_second = 0.0

    def not_drained(self, tasks: int) -> None:
        self._skipped += tasks

    def update(self) -> float:
        """Take a sample if one is due; return the estimate."""
        now = time.monotonic()
        elapsed = now - self._at
        if elapsed < SAMPLE_SECONDS:
            return self.per_second
        count = self._ended() - self._skipped
        if self._queued() > 0:  # busy: the ends measure what the node can do
            weight = 0.5 ** (elapsed / HALF_LIFE_SECONDS)
            sample = (count - self._count) / elapsed
            self.per_second = self.per_second * weight + sample * (1 - weight)
        self._count, self._at = count, now
        return self.per_second


@dataclass
class _Backlog:
    counted: int = 0  # active tasks in the database at the last read
    at: float = float("-inf")  # when it was read (monotonic)
    admitted: int = 0  # tasks admitted here, ever
    admitted_at_count: int = 0  # ``admitted`` when the last read started


class Admission:
    """Refuses an account's creates (429) while its backlog exceeds what the node drains."""

    def __init__(
        self,
        settings: Settings,
        count_active: Callable[[int], Awaitable[int]],
        queued: Callable[[], int],
        ended: Callable[[], float] = tasks_ended,
    ) -> None:
        self.seconds = settings.admission_seconds
        self.floor = settings.admission_min_backlog
        self._count_active = count_active
        self.drain = DrainRate(ended, queued)
        self._backlogs: dict[int, _Backlog] = {}

    def bound(self) -> float:
        """The backlog an account may have: what the node ends in ``seconds``, or the floor."""
        return max(float(self.floor), self.drain.update() * self.seconds)

    async def admit(self, account_id: int, tasks: int) -> None:
        """Admit ``tasks`` new queued tasks of the account, or raise ``RateLimited``."""
        if self.seconds <= 0 or not tasks:
            return
        backlog = self._backlogs.setdefault(account_id, _Backlog())
        bound = self.bound()
        upper = backlog.counted + backlog.admitted - backlog.admitted_at_count
        if upper >= bound and (
            backlog.counted < bound or time.monotonic() - backlog.at >= REFRESH_SECONDS
        ):
            backlog.at = time.monotonic()
            started = backlog.admitted
            backlog.counted = await self._count_active(account_id)
            backlog.admitted_at_count = started
            upper = backlog.counted + backlog.admitted - started
        if upper >= bound:
            rate = self.drain.per_second
            wait = (upper - bound) / rate + 1 if rate > 0 else self.seconds
            raise RateLimited(
                f"too many tasks waiting: {upper} of this account's tasks are queued or"
                f" executing, more than the server ends in {self.seconds:g} s; retry later",
                min(MAX_RETRY_AFTER, max(1.0, wait)),
            )
        backlog.admitted += tasks
