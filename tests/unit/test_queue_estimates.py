"""Queue annotations of status documents (dragon.engine.queue_position.QueueEstimates)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from dragon.engine.lanes import Lane, Slot
from dragon.engine.queue_position import QueueEstimates
from dragon.engine.runs import Run


@dataclass
class Queues:
    lanes: dict[str, Lane]
    runs: dict[str, Run]
    limits: dict[int, int] = field(default_factory=dict)


def queued(key: str) -> dict:
    return {"status": "queued", "key": key, "progress": 0.0, "events": {"queued": "t"}}


def test_a_document_read_before_its_task_began_is_named_for_a_second_read():
    """A status read gets the row while the task waits, the task begins before the queue
    is read: the document gets no position (the task is not in the queue), and the reader
    is told to read its row again rather than answer queued without a position."""
    lane = Lane("batch", 1)
    began = Run("began", "video.convert", lane, begun=True, document={"status": "executing"})
    waits = Run("waits", "video.convert", lane)
    lane.queue.put(1, "waits")
    estimates = QueueEstimates(
        Queues({"batch": lane}, {"began": began, "waits": waits}),
        database=None,  # type: ignore[arg-type]
    )
    estimates.run_times["video.convert"] = deque([1.0])  # its typical run time, known
    docs = [queued("began"), queued("waits"), queued("elsewhere")]
    asyncio.run(estimates.annotate(docs))
    assert "queue_position" not in docs[0] and docs[1]["queue_position"] == 1
    # Not "waits" (it has its position) nor "elsewhere" (not here: another node's, or a
    # chain's task waiting for its inputs).
    assert estimates.begun_since(docs) == ["began"]


def test_a_task_the_read_sees_executing_is_not_ahead_of_the_queue():
    """A task back from its download with its slot: its row is written executing before
    its run is marked begun. A read that got that row counts it as running, not as the
    next to start, so the queued task of the same read stands first; a read of the queued
    task alone still sees the other one about to start ahead of it."""
    lane = Lane("batch", 1)
    slot = Slot(lane, 1, "beginning", asyncio.Semaphore(1), lambda: None)
    slot.came_back = True
    beginning = Run("beginning", "video.convert", lane, slot=slot)
    waits = Run("waits", "video.convert", lane)
    lane.queue.put(1, "waits")
    estimates = QueueEstimates(
        Queues({"batch": lane}, {"beginning": beginning, "waits": waits}),
        database=None,  # type: ignore[arg-type]
    )
    estimates.run_times["video.convert"] = deque([1.0])
    both = [{"status": "executing", "key": "beginning", "progress": 0.0}, queued("waits")]
    asyncio.run(estimates.annotate(both))
    assert both[1]["queue_position"] == 1
    alone = [queued("waits")]
    asyncio.run(estimates.annotate(alone))
    assert alone[0]["queue_position"] == 2
