"""One node among several sharing PostgreSQL: claims, heartbeats, leases and fan-out.

Each node keeps its own lanes and fair queues (``dragon.engine.lanes``) for the tasks it
creates; the database decides who runs a task (``start_task`` moves it from queued to
executing for one owner only; the others see it taken and move on). What this module adds:

- Claims: when another node announces new queued tasks, this node claims as many as it has
  idle slots, lane by lane (``claim_queued``: ``FOR UPDATE SKIP LOCKED``, oldest first,
  round-robin across accounts), and claims again every ``CLAIM_POLL`` while work may still
  wait. An idle node starts work at once, without waiting for a poll; each heartbeat also
  looks for queued work, in case a notification was lost.
- Heartbeats: the node records itself (boot id and ``DRAGON_NODE_NAME``) every third of
  ``DRAGON_LEASE_SECONDS``. Every node also looks, under an advisory lock so one at a time,
  for executing tasks whose node went silent for the lease, and starts them again through
  ``Scheduler.recover`` (attempts counted, ``interrupted`` after the maximum).
- Fan-out: other nodes' notifications of changed tasks are re-read from the database and
  published on this node's bus, for the keys this node's streams and blocked requests follow;
  notifications wake the event feed's followers.
- Cancels: a task running here that another node cancelled (the notification of its end) is
  stopped here, without writing its end again (``Member.stop_cancelled``).
- After a lost database connection the node re-reads everything it follows (notifications
  sent meanwhile are lost) and claims whatever is queued; each heartbeat also starts the
  tasks a claim gave it whose answer the lost connection swallowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from dragon.config import Settings
from dragon.database.interface import Busy, ClusterDatabase, Row
from dragon.engine import documents
from dragon.engine.bus import Bus
from dragon.engine.lanes import Lane
from dragon.engine.runs import Run
from dragon.errors import CANCELLED
from dragon.tasks import TaskSpec

log = logging.getLogger("dragon.engine.cluster")

RECLAIM_LOCK = 0x647261676F6E04
CLAIM_POLL = 0.05  # seconds between claims while queued work may be waiting
ORPHAN_AGE = 5.0  # seconds after which a claimed task no lane holds is started again


class Member(Protocol):
    """What the cluster needs of this node's scheduler: its lanes and runs, to claim as
    much as it has room for and to find claimed tasks it does not run."""

    boot_id: str
    settings: Settings
    bus: Bus
    registry: dict[str, TaskSpec]
    stopping: bool

    @property
    def lanes(self) -> Mapping[str, Lane]: ...
    @property
    def runs(self) -> Mapping[str, Run]: ...
    def enqueue(self, account_id: int, key: str, task_name: str, lane: str | None) -> None: ...
    async def recover(self, rows: Sequence[Row] | None = None) -> None: ...
    def stop_cancelled(self, key: str) -> None: ...


class Cluster:
    def __init__(self, scheduler: Member, database: ClusterDatabase) -> None:
        self.scheduler = scheduler
        self.db = database
        self.bus = scheduler.bus
        self.settings = scheduler.settings
        self.name = self.settings.node
        self._changed: set[str] = set()
        self._resync = False
        self._more = True  # queued work may wait in the database: claim when slots are free
        self._heard = False  # other nodes' notifications arrived since the last apply
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        # Other nodes alive (at the last heartbeat, plus those heard joining since): while
        # there are, this node sends no task to download ahead of a free slot, so that an
        # idle node can claim it instead (``Lane.prefetch_next``).
        self.peers = 0

    async def start(self) -> None:
        """Announce this node (before it claims anything) and start listening."""
        self.peers = await self.db.join(self.scheduler.boot_id, self.name)
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
        self._heard = True
        if kind == "n":
            self._more = True
        elif kind == "c":
            self._changed.update(keys)
        elif kind == "r":
            self._resync = True
        elif kind == "j":
            self.peers += 1
        self._wake.set()

    async def _apply_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._apply()
                if self._more:  # slots were full or the claim was: look again shortly
                    await asyncio.sleep(CLAIM_POLL)
                    self._wake.set()
            except Exception as exc:
                if not isinstance(exc, Busy):
                    log.exception("could not apply other nodes' changes; trying again")
                # The database is away, or the pass failed part-way: the changes it took
                # are re-read with everything followed, once the database answers.
                self._resync = True
                await asyncio.sleep(0.5)
                self._wake.set()

    async def _apply(self) -> None:
        if self._heard:
            self._heard = False
            self.bus.feed_changed()
        resync, self._resync = self._resync, False
        changed, self._changed = self._changed, set()
        if resync:
            self._more = True
            changed |= set(self.bus._subs)  # every key a stream or a blocked request follows
            changed |= self._running()  # and every task running here, in case one ended
        if self._more:
            await self._claim()
        followed = {key for key in changed if key in self.bus._subs}
        running = changed & self._running()
        if followed or running:
            for row in await self.db.tasks_by_keys(sorted(followed | running)):
                if row["key"] in running and row["error_code"] == CANCELLED:
                    self.scheduler.stop_cancelled(row["key"])
                if row["key"] in followed:
                    self.bus.publish(row["key"], documents.document(row))

    def _running(self) -> set[str]:
        """The keys whose tasks run on this node now (another node may cancel them)."""
        return {key for key, run in self.scheduler.runs.items() if not run.queued}

    async def _claim(self) -> None:
        """Claim as many queued tasks as this node has idle slots, lane by lane; they are
        ours when they reach the lane, which starts them at once. Tasks downloading their
        inputs here count as slots taken: a node claims no more than it will soon run."""
        scheduler = self.scheduler
        if scheduler.stopping:  # draining: leave the work to the other nodes
            self._more = False
            return
        more = False
        for name, lane in scheduler.lanes.items():
            spare = lane.capacity - lane.busy - lane.queue.size - lane.lent()
            if spare <= 0:
                more = True
                continue
            rows = await self.db.claim_queued(
                scheduler.boot_id, name, spare, time.time(), documents.document
            )
            for row in rows:
                scheduler.enqueue(row["account_id"], row["key"], row["task_name"], name)
            more = more or len(rows) == spare
        self._more = more

    # -- heartbeats and leases ------------------------------------------------------------
    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            try:
                self.peers = await self.db.heartbeat(self.scheduler.boot_id, self.name)
                # Look for queued work, and re-read what streams and blocked requests
                # follow, in case a notification was missed (a listener that reconnected
                # after a database restart hears nothing of what happened meanwhile).
                self._more = True
                self._resync = True
                self._wake.set()
                await self._adopt_orphans()
            except Busy as exc:
                log.warning("heartbeat failed: %s", exc)
            except Exception:  # the loop must outlive any failure: it keeps the node alive
                log.exception("heartbeat failed unexpectedly; trying again")

    async def _adopt_orphans(self) -> None:
        """Run the tasks the database says this node runs but this node does not know.

        A claim whose commit reached the database while its answer was lost (the connection
        dropped in between, as in a database restart) leaves tasks executing in this node's
        name that no lane holds; this node is alive, so no other node would ever take them.
        Only claims older than ``ORPHAN_AGE`` count: a younger one may still be on its way
        to the lanes. A task queued twice is harmless (``start_task`` decides, and a lane
        skips a key that is running).
        """
        scheduler = self.scheduler
        rows = await self.db.owned_tasks(scheduler.boot_id, time.time() - ORPHAN_AGE)
        orphans = [row for row in rows if row["key"] not in scheduler.runs]
        if orphans:
            log.warning("%d claimed tasks were not running here: starting them", len(orphans))
        for row in orphans:
            scheduler.enqueue(row["account_id"], row["key"], row["task_name"], row["lane"])

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
