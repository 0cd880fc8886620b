"""One record per task this node has queued or runs: ``Run``.

The scheduler keeps a ``Run`` for each key from the moment it is queued here until its
task has ended (or gone back to the queue at shut-down). Everything known about that task
on this node lives in it: where it waits or runs, its slot, the asyncio task running it,
its ``TaskContext``, its latest status document and the progress not yet written. The
others read the scheduler through small protocols, never its internals: the service
(``service.TaskQueue``), queue positions (``queue_position.Queues``), the cluster's
adoption of claimed tasks (``cluster.Member``) and the health check (``scheduler.Load``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from dragon.engine.lanes import Lane, Slot
from dragon.tasks.context import TaskContext


@dataclasses.dataclass(eq=False)
class Run:
    """A task queued on this node (``task`` is None) or running here."""

    key: str
    task_name: str  # "" for a key found in a lane without having been queued by name
    lane: Lane  # where it waits, then runs
    slot: Slot | None = None  # held from dispatch to the end (lent out while downloading)
    started: float = 0.0  # wall-clock time its work began (or its dispatch), for expected ends
    task: asyncio.Task[None] | None = None
    context: TaskContext | None = None  # while the task's code may run
    document: dict[str, Any] | None = None  # latest status document while executing
    pending_progress: float | None = None  # reported, not yet written (flushed together)
    won: bool = False  # its start moved the row to executing for this node (or found it so)
    # Its work has begun: it is ``executing``. Before that a dispatched task is ``waiting``
    # for this node (its inputs download, or it waits for its slot again) and says queued.
    begun: bool = False
    # The account of a second queueing of this key that the lane skipped because this run
    # held the key: if this run then loses the start, that queueing is served again.
    again: int | None = None
    # The task was cancelled while it ran here: its end is written already (by the cancel),
    # its run is stopped without writing one, and whatever it stored is removed.
    cancelled: bool = False
    # Its end is written: it no longer counts as executing, though its files and slot are
    # still being let go (``/healthz`` agrees with the documents).
    ended: bool = False

    @property
    def queued(self) -> bool:
        """Queued here, not dispatched yet."""
        return self.task is None

    @property
    def waiting(self) -> bool:
        """Not running its work yet, dispatched or not: its documents say queued."""
        return not self.begun

    @property
    def downloading(self) -> bool:
        """Its inputs are being fetched: dispatched, its work not begun, and its download
        runs or is about to (just dispatched). Back from it and asking for a slot, it is
        not: its inputs are in."""
        slot = self.slot
        if self.begun or slot is None:
            return False
        return slot.fetching or not (slot.came_back or slot.asking)
