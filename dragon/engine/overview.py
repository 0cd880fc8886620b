"""An account's overview: what the dashboard's tiles and small charts show, in one read.

Counted by the database (grouped queries on the indexes the listing uses), never from the
event feed: the feed forgets after its retention and the page holds only what it loaded, so
the tiles' numbers are the ones ``GET /v2/tasks`` pages through. Statuses are counted as
documents show them (a task its node holds before its work begins is queued).

The lanes' queues and busy slots are this node's (the scheduler's own counts, as
``/metrics`` exports them): with several nodes, each answers for itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from dragon.database.interface import Database
from dragon.database.rows import EndedSlotRow, OverviewRows
from dragon.engine import classes

STATUSES = ("queued", "executing", "success", "error")
ENDED = ("success", "error")


class LaneLoad(Protocol):
    """What the overview reads of the scheduler."""

    def queued_in(self, lane: str) -> int: ...
    def busy_in(self, lane: str) -> int: ...
    def slots_in(self, lane: str) -> int: ...


@dataclass(frozen=True)
class Window:
    """The timeline's span: ``buckets`` slots of equal length ending at ``end``."""

    seconds: float
    buckets: int
    end: float

    @property
    def start(self) -> float:
        return self.end - self.seconds

    @property
    def bucket(self) -> float:
        return self.seconds / self.buckets


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def status_counts(found: OverviewRows) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for r in found["counts"]:
        shown = "queued" if r["status"] == "executing" and r["held"] else r["status"]
        if shown in counts:
            counts[shown] += r["n"]
    return counts


def error_counts(found: OverviewRows) -> dict[str, int]:
    """By error code, the most frequent first (a task without a code counts as ``error``)."""
    codes: dict[str, int] = {}
    for r in found["errors"]:
        code = r["error_code"] or "error"
        codes[code] = codes.get(code, 0) + r["n"]
    return dict(sorted(codes.items(), key=lambda kv: (-kv[1], kv[0])))


def timeline(ended: list[EndedSlotRow], window: Window) -> list[dict[str, Any]]:
    """One entry per slot, empty ones included: how many tasks ended in each status, and
    the mean and longest run time of those that ran (None when none did)."""
    slots: list[dict[str, Any]] = [
        {
            "start": iso(window.start + i * window.bucket),
            **dict.fromkeys(ENDED, 0),
            "mean_seconds": None,
            "max_seconds": None,
        }
        for i in range(window.buckets)
    ]
    runs = [0] * window.buckets  # tasks that ran, and their run times summed, per slot
    ran = [0.0] * window.buckets
    for r in ended:
        i = r["slot"]
        if not 0 <= i < window.buckets or r["status"] not in ENDED:
            continue
        slots[i][r["status"]] += r["n"]
        if r["mean"] is not None and r["longest"] is not None:
            runs[i] += r["n"]
            ran[i] += r["mean"] * r["n"]
            slots[i]["max_seconds"] = max(slots[i]["max_seconds"] or 0.0, r["longest"])
    for i, slot in enumerate(slots):
        if runs[i]:
            slot["mean_seconds"] = ran[i] / runs[i]
    return slots


def lanes(load: LaneLoad) -> list[dict[str, Any]]:
    return [
        {
            "lane": lane,
            "queued": load.queued_in(lane),
            "running": load.busy_in(lane),
            "slots": load.slots_in(lane),
        }
        for lane in classes.LANES
    ]


async def overview(
    db: Database,
    load: LaneLoad,
    account_id: int,
    *,
    task_name: str | None = None,
    after: float | None = None,
    before: float | None = None,
    window: Window | None = None,
) -> dict[str, Any]:
    """The overview document of ``GET /v2/tasks/summary`` (docs/api.md)."""
    window = window or Window(3600.0, 60, time.time())
    found = await db.task_overview(
        account_id,
        task_name=task_name,
        after=after,
        before=before,
        start=window.start,
        end=window.end,
        bucket=window.bucket,
    )
    counts = status_counts(found)
    return {
        "counts": counts,
        "total": sum(counts.values()),
        "error_codes": error_counts(found),
        "timeline": {
            "start": iso(window.start),
            "end": iso(window.end),
            "bucket_seconds": window.bucket,
            "slots": timeline(found["ended"], window),
        },
        "lanes": lanes(load),
    }
