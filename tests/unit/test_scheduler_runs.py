"""The scheduler's one record per task (``Run``): what it holds from queueing to the end,
and what the rest of the engine reads of it (queue positions, health counts, progress)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dragon.config import Settings
from dragon.database.sqlite import SQLiteDatabase
from dragon.engine import documents
from dragon.engine.bus import Bus
from dragon.engine.scheduler import Scheduler
from dragon.net.fetcher import Download
from dragon.tasks import TaskSpec
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema


class NoFetch:
    async def download(self, url: str, dest_dir: Path, *, max_bytes: int | None = None) -> Download:
        raise AssertionError("these tasks download nothing")


class NoStores:
    def for_task(self, task_store: dict[str, Any] | None) -> Any:
        return None


class Gate:
    """A task that reports progress, then waits until the test lets it end."""

    def __init__(self) -> None:
        self.started: dict[str, asyncio.Event] = {}
        self.release: dict[str, asyncio.Event] = {}
        self.runs: list[str] = []

    def events(self, key: str) -> tuple[asyncio.Event, asyncio.Event]:
        return (
            self.started.setdefault(key, asyncio.Event()),
            self.release.setdefault(key, asyncio.Event()),
        )

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        started, release = self.events(ctx.key)
        self.runs.append(ctx.key)
        await ctx.begin()  # as a real task's first tool does
        ctx.progress(42)
        started.set()
        await release.wait()
        return {"ok": True}


@pytest.fixture
async def setup(tmp_path):
    database = SQLiteDatabase(tmp_path / "t.db")
    database.open()
    account = await database.insert_account("a", b"a", "a", "", [], 0)
    gate = Gate()
    spec = TaskSpec(name="gate", heavy=True, schema=TaskSchema(), run=gate.run, module=__name__)
    settings = Settings.load({}, data_dir=str(tmp_path), concurrency=1)
    scheduler = Scheduler(
        settings=settings,
        database=database,
        bus=Bus(),
        registry={"gate": spec},
        stores=NoStores(),
        fetcher=NoFetch(),
    )
    yield scheduler, database, account, gate
    await scheduler.stop(5)
    database.close()


async def queue(database: SQLiteDatabase, scheduler: Scheduler, account: int, key: str) -> None:
    row: dict[str, Any] = {
        "key": key,
        "account_id": account,
        "task_name": "gate",
        "params": {"task_name": "gate"},
        "status": "queued",
        "error": None,
        "error_code": None,
        "queued_at": 1.0,
        "completed_at": None,
        "started_at": None,
        "progress": None,
        "result": None,
    }
    row["document"] = documents.document(row)
    await database.insert_tasks([row])
    scheduler.enqueue(account, key, "gate", "batch")


async def test_a_run_is_one_record_from_queue_to_end(setup):
    scheduler, database, account, gate = setup
    await scheduler.start()
    await queue(database, scheduler, account, "K1")
    await queue(database, scheduler, account, "K2")
    started, release = gate.events("K1")
    await started.wait()

    first, second = scheduler.runs["K1"], scheduler.runs["K2"]
    assert not first.queued and first.slot is not None and first.slot.held
    assert first.context is not None and first.document is not None
    assert first.document["status"] == "executing"
    # One batch slot: K2 is sent to prepare (download its inputs) and waits for it.
    assert not second.queued and second.slot is not None and not second.slot.held
    assert second.waiting
    assert (scheduler.executing_count(), scheduler.queued_count()) == (1, 1)
    assert (scheduler.busy_in("batch"), scheduler.queued_in("batch")) == (1, 1)

    # Progress waits in the record until the flush writes and publishes it together.
    assert first.pending_progress == 42.0
    await scheduler._flush_progress()
    assert first.pending_progress is None
    assert scheduler.live_document("K1")["progress"] == 42.0
    [row] = await database.get_tasks(["K1"], account)
    assert row["progress"] == 42.0

    # A queued document gets its position from the records.
    docs = [{"key": "K2", "status": "queued"}, {"key": "K1", "status": "executing"}]
    await scheduler.estimates.annotate(docs)
    assert docs[0]["queue_position"] == 1 and "queue_position" not in docs[1]

    release.set()
    started, release = gate.events("K2")
    await started.wait()
    assert "K1" not in scheduler.runs  # the record goes with the end
    assert first.document is None and first.context is None and not first.slot.held
    [row] = await database.get_tasks(["K1"], account)
    assert row["status"] == "success"
    release.set()
    await scheduler.runs["K2"].task
    assert not scheduler.runs and scheduler.executing_count() == 0


async def test_a_task_queued_before_the_start_is_one_record_however_often_queued(setup):
    scheduler, database, account, gate = setup
    await queue(database, scheduler, account, "K1")
    assert scheduler.runs["K1"].queued  # nothing runs before the start
    await scheduler.start()  # recovery queues K1 a second time: one record, one run
    started, release = gate.events("K1")
    await started.wait()
    assert list(scheduler.runs) == ["K1"]
    release.set()
    await scheduler.runs["K1"].task
    await asyncio.sleep(0.05)
    assert gate.runs == ["K1"] and not scheduler.runs


async def test_a_key_queued_again_while_it_runs_keeps_its_record_and_runs_once(setup):
    scheduler, database, account, gate = setup
    await scheduler.start()
    await queue(database, scheduler, account, "K1")
    started, release = gate.events("K1")
    await started.wait()
    run = scheduler.runs["K1"]
    scheduler.enqueue(account, "K1", "gate", "batch")  # a cluster resync finds it queued again
    assert scheduler.runs["K1"] is run and not run.queued
    release.set()
    await run.task
    await asyncio.sleep(0.05)  # the lane hands the second entry out, start_task refuses it
    assert gate.runs == ["K1"]
    assert not scheduler.runs and scheduler.queued_count() == 0
