"""One node among several sharing PostgreSQL: heartbeats, leases and cross-node fan-out.

Each node keeps its own lanes and fair queues (``dragon.engine.lanes``); the database decides
who runs a task (``start_task`` moves it from queued to executing for one owner only, the
others see it taken and move on). What this module adds:

- Heartbeats: the node records itself (boot id and ``DRAGON_NODE_NAME``) every third of
  ``DRAGON_LEASE_SECONDS``. Every node also looks, under an advisory lock so one at a time,
  for executing tasks whose node went silent for the lease, and starts them again through
  ``Scheduler.recover`` (attempts counted, ``interrupted`` after the maximum).
- Wake-ups: other nodes' notifications of new queued tasks put them in this node's queues at
  once, so an idle node starts work without polling (a node with an empty queue still
  looks for queued work at each heartbeat, in case a notification was lost).
- Fan-out: other nodes' notifications of changed tasks are re-read from the database and
  published on this node's bus, for the keys this node's streams and blocked requests follow;
  every notification wakes the event feed's followers.
- After a lost database connection the node re-reads everything it follows (notifications
  sent meanwhile are lost) and queues whatever is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

from dragon.database.interface import Busy
from dragon.engine import documents

log = logging.getLogger("dragon.engine.cluster")

RECLAIM_LOCK = 0x647261676F6E04


class Cluster:
    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.db = scheduler.db
        self.bus = scheduler.bus
        self.settings = scheduler.settings
        self.name = self.settings.node
        self._new: set[str] = set()
        self._changed: set[str] = set()
        self._resync = False
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Announce this node (before it claims anything) and start listening."""
        await self.db.join(self.scheduler.boot_id, self.name)
        await self.db.listen(self._notified)
        self._loops = [
            asyncio.create_task(self._apply_forever()),
            asyncio.create_task(self._beat_forever()),
            asyncio.create_task(self._reclaim_forever()),
        ]
        log.info("node %s joined the cluster", self.name)

    async def stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        with contextlib.suppress(Busy):
            await self.db.leave(self.scheduler.boot_id)

    # -- notifications --------------------------------------------------------------------
    def _notified(self, kind: str, keys: list[str]) -> None:
        """Called by the database listener; the work is done in ``_apply`` (batched)."""
        if kind == "n":
            self._new.update(keys)
        elif kind == "c":
            self._changed.update(keys)
        elif kind == "r":
            self._resync = True
        self._wake.set()

    async def _apply_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._apply()
            except Busy:
                self._resync = True  # the database is away: redo everything once it is back
                await asyncio.sleep(0.5)
                self._wake.set()
            except Exception:
                log.exception("could not apply other nodes' changes")

    async def _apply(self) -> None:
        self.bus.feed_changed()
        resync, self._resync = self._resync, False
        new, self._new = self._new, set()
        changed, self._changed = self._changed, set()
        if resync:
            rows = await self.db.unfinished_tasks()
            self._enqueue([r for r in rows if r["status"] == "queued"])
            changed |= set(self.bus._subs)  # every key a stream or a blocked request follows
        if new:
            self._enqueue(await self.db.tasks_by_keys(sorted(new)))
        followed = [key for key in changed if key in self.bus._subs]
        if followed:
            for row in await self.db.tasks_by_keys(followed):
                self.bus.publish(row["key"], documents.document(row))

    def _enqueue(self, rows: list[Any]) -> None:
        for row in rows:
            if row["status"] == "queued" and row["key"] not in self.scheduler.running:
                self.scheduler.enqueue(row["account_id"], row["key"], row["task_name"])

    # -- heartbeats and leases ------------------------------------------------------------
    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            try:
                await self.db.heartbeat(self.scheduler.boot_id, self.name)
                if not self.scheduler.queued_count():
                    # Nothing queued here: look for work whose notification was missed.
                    self._enqueue(await self.db.queued_tasks(100))
            except Busy as exc:
                log.warning("heartbeat failed: %s", exc)

    async def _reclaim_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3 * random.uniform(0.8, 1.2))
            try:
                await self.db.try_exclusive(RECLAIM_LOCK, self._reclaim)
            except Busy:
                pass
            except Exception:
                log.exception("could not reclaim the tasks of silent nodes")

    async def _reclaim(self) -> None:
        rows = await self.db.stale_tasks()
        if rows:
            log.warning(
                "%d tasks ran on nodes silent for %.0f s: starting them again",
                len(rows),
                self.settings.lease_seconds,
            )
            await self.scheduler.recover(rows)
