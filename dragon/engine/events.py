"""The account's event feed (``GET /v2/events``): every recorded status change, in order.

Each change is written to the ``events`` table in the transaction that makes it, so the
feed holds exactly what was committed, in commit order, and its cursor (the event's id)
only grows. What is recorded: a task's creation (queued, or already in error), its start,
each partial result, its progress each time it passes a multiple of 10 %, its end, and a
return to ``queued`` when a stopping server hands it back. Every progress tick would be
two rows a second per running task for a week; status streams still carry them all.

A reader catches up from its cursor by reading the table; a follower then waits on the
bus for the next commit (or ``RECHECK_SECONDS``) and reads again, so a slow follower
costs a flag, not a queue.
Events older than ``events_days`` are pruned by the sweeper; a cursor that points before
what was pruned gets ``CursorGone`` rather than a silent gap.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import orjson

from dragon.database.interface import Database, Row
from dragon.engine.bus import Bus
from dragon.errors import CursorGone

PAGE = 500
# A follower reads the table again after this long without a wake-up: changes committed by
# another node (PostgreSQL) or process reach it even if nothing woke this node's bus.
RECHECK_SECONDS = 2.0


def feed_line(row: Row) -> tuple[int, bytes]:
    """``(cursor, JSON)``: the recorded status document plus ``cursor`` and ``task_name``."""
    document = row["document"]
    tail = orjson.dumps({"task_name": row["task_name"], "cursor": row["id"]})
    return row["id"], f"{document[:-1]},{tail.decode()[1:]}".encode()


class EventFeed:
    def __init__(self, database: Database, bus: Bus, retention_days: float) -> None:
        self.db = database
        self.bus = bus
        self.retention_days = retention_days

    async def check(self, after: int) -> None:
        """Raise ``CursorGone`` if events after ``after`` were pruned."""
        horizon = await self.db.event_horizon()
        if after < horizon:
            raise CursorGone(
                f"cursor {after} is older than the event feed keeps: events are kept"
                f" {self.retention_days:g} days (DRAGON_EVENTS_DAYS) and those up to cursor"
                f" {horizon} were deleted; read the tasks' statuses, then follow the feed"
                " again without a cursor"
            )

    async def lines(
        self,
        account_id: int,
        after: int,
        follow: bool,
        heartbeat: float | None = None,
    ) -> AsyncGenerator[tuple[int, bytes] | None, None]:
        """Yield ``(cursor, line)`` after ``after``; without ``follow``, stop at the latest.

        A follower is also handed ``None`` every ``heartbeat`` seconds of silence (so the
        handler can keep the connection alive), and stops when the server closes. Call
        ``check`` first: this does not.
        """
        quiet = 0.0  # seconds without a change, for the heartbeat
        with self.bus.follow() as follower:
            while True:
                follower.changed.clear()  # before the read: a commit after it wakes us
                rows = await self.db.events_after(account_id, after, PAGE)
                for row in rows:
                    after, line = feed_line(row)
                    yield after, line
                if len(rows) == PAGE:
                    continue
                if not follow or self.bus.closed:
                    return
                if rows:
                    quiet = 0.0
                try:
                    async with asyncio.timeout(RECHECK_SECONDS):
                        await follower.changed.wait()
                except TimeoutError:
                    quiet += RECHECK_SECONDS
                    if heartbeat is not None and quiet >= heartbeat:
                        quiet = 0.0
                        yield None
                if self.bus.closed:
                    return
