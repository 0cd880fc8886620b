"""Queue annotations of status documents (dragon.engine.queue_position.QueueEstimates)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from dragon.engine.lanes import Lane
from dragon.engine.queue_position import QueueEstimates
from dragon.engine.runs import Run


@dataclass
class Queues:
    lanes: dict[str, Lane]
    runs: dict[str, Run]
    limits: dict[int, int] = field(default_factory=dict)


def test_a_document_read_before_its_task_began_takes_the_tasks_newer_one():
    """A status read gets the row while the task waits, the task begins before the queue
    is read: the answer says executing, as the task does, not queued without a position."""
    lane = Lane("batch", 1)
    began = {
        "status": "executing",
        "key": "k",
        "progress": 0.0,
        "events": {"queued": "2026-12-06T10:00:00+00:00", "started": "2026-12-06T10:00:05+00:00"},
    }
    run = Run("k", "video.convert", lane, begun=True, document=began)
    estimates = QueueEstimates(Queues({"batch": lane}, {"k": run}), database=None)  # type: ignore[arg-type]
    read = {
        "status": "queued",
        "key": "k",
        "progress": 0.0,
        "events": {"queued": "2026-12-06T10:00:00+00:00"},
        "stage": "downloading",
        "task_name": "video.convert",
    }
    asyncio.run(estimates.annotate([read]))
    assert read == {**began, "task_name": "video.convert"}
