"""The scheduler's cancel: one end, written by the cancel, whatever the stopped run does.

A real scheduler on SQLite with real stores on a local folder runs a task that stores an
output, then waits until the test lets it end. The cancel may come through this scheduler
(``Scheduler.cancel``), or be written by another node (``Database.cancel_tasks`` straight),
in which case the run only learns it when its own end is refused. Either way the task stays
cancelled, is never queued again (not even by a stopping server), and its output goes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from dragon.config import Settings
from dragon.database.sqlite import SQLiteDatabase
from dragon.engine import documents
from dragon.engine.bus import Bus
from dragon.engine.scheduler import Scheduler
from dragon.net.fetcher import Download
from dragon.stores import Stores
from dragon.stores.backends import LocalBackend
from dragon.tasks import TaskSpec
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema


class NoFetch:
    async def download(self, url: str, dest_dir: Path, *, max_bytes: int | None = None) -> Download:
        raise AssertionError("these tasks download nothing")


class Gate:
    """A task that stores an output, then waits until the test lets it end."""

    def __init__(self) -> None:
        self.stored: dict[str, asyncio.Event] = {}
        self.release: dict[str, asyncio.Event] = {}
        self.runs: list[str] = []
        self.cancelled: list[str] = []

    def events(self, key: str) -> tuple[asyncio.Event, asyncio.Event]:
        return (
            self.stored.setdefault(key, asyncio.Event()),
            self.release.setdefault(key, asyncio.Event()),
        )

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        stored, release = self.events(ctx.key)
        self.runs.append(ctx.key)
        path = ctx.tmpdir / "out.txt"
        path.write_text("made before the cancel")
        await ctx.output("output", path, "text/plain")
        stored.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(ctx.key)
            raise
        return {"ok": True}


@pytest.fixture
async def setup(tmp_path):
    database = SQLiteDatabase(tmp_path / "t.db")
    database.open()
    account = await database.insert_account("a", b"a", "a", "", [], 0)
    gate = Gate()
    spec = TaskSpec(name="gate", heavy=True, schema=TaskSchema(), run=gate.run, module=__name__)
    settings = Settings.load({}, data_dir=str(tmp_path), concurrency=1)
    stores = Stores(database, LocalBackend(settings.files_path, "http://files"), settings)
    scheduler = Scheduler(
        settings=settings,
        database=database,
        bus=Bus(),
        registry={"gate": spec},
        stores=stores,
        fetcher=NoFetch(),
    )
    await scheduler.start()
    yield scheduler, database, account, gate
    if not scheduler.stopping:
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


async def settled(condition: Callable[[], bool]) -> None:
    """Until ``condition()`` holds; fails after 10 s (a hang guard)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def ended(scheduler: Scheduler, key: str) -> None:
    """Until the run of ``key`` is over, its clean-up included."""
    run = scheduler.runs.get(key)
    if run is not None and run.task is not None:
        await asyncio.wait_for(asyncio.shield(run.task), 10)
    await settled(lambda: key not in scheduler.runs)


async def statuses(database: SQLiteDatabase, account: int, key: str) -> list[str]:
    events = await database.events_after(account, 0, 100)
    return [orjson.loads(e["document"])["status"] for e in events if e["task_key"] == key]


async def test_a_task_cancelled_while_the_server_stops_is_not_queued_again(setup, tmp_path):
    scheduler, database, account, gate = setup
    await queue(database, scheduler, account, "K1")
    stored, _ = gate.events("K1")
    await asyncio.wait_for(stored.wait(), 10)
    output = await database.file_for_output("K1", "output")
    assert output is not None and (tmp_path / "files" / output["location"]).exists()
    run = scheduler.runs["K1"]

    # The server stops, with a grace the task would outlast; it is cancelled meanwhile.
    stopping = asyncio.create_task(scheduler.stop(30))
    await asyncio.sleep(0.05)
    assert scheduler.stopping
    assert await scheduler.cancel(account, ["K1", "unknown"]) == 1
    await asyncio.wait_for(stopping, 10)  # the grace ended with the run, not after 30 s
    await asyncio.wait_for(asyncio.shield(run.task), 10)

    [row] = await database.get_tasks(["K1"], account)
    assert (row["status"], row["error_code"]) == ("error", "cancelled")
    assert gate.cancelled == ["K1"]
    assert await statuses(database, account, "K1") == ["queued", "executing", "error"]
    assert await database.task_files("K1") == []  # its output went, record and bytes
    assert not (tmp_path / "files" / output["location"]).exists()
    assert not (tmp_path / "tmp" / "K1").exists()
    assert await database.unfinished_tasks() == []  # nothing for the next start to run


async def test_a_run_whose_end_lost_to_a_cancel_elsewhere_removes_what_it_stored(setup, tmp_path):
    scheduler, database, account, gate = setup
    await queue(database, scheduler, account, "K1")
    stored, release = gate.events("K1")
    await asyncio.wait_for(stored.wait(), 10)
    output = await database.file_for_output("K1", "output")
    assert output is not None

    # Another node writes the cancel; this one hears nothing before its run ends.
    cancelled = await database.cancel_tasks(
        ["K1"], account, 5.0, "the task was cancelled", lambda row: None, documents.document
    )
    assert [r["key"] for r in cancelled] == ["K1"]
    release.set()
    await ended(scheduler, "K1")

    [row] = await database.get_tasks(["K1"], account)
    assert (row["status"], row["error_code"], row["result"]) == ("error", "cancelled", None)
    assert await statuses(database, account, "K1") == ["queued", "executing", "error"]
    assert await database.task_files("K1") == []
    assert not (tmp_path / "files" / output["location"]).exists()


async def test_a_cancelled_queued_task_never_starts(setup):
    scheduler, database, account, gate = setup
    await queue(database, scheduler, account, "K1")
    await queue(database, scheduler, account, "K2")
    stored, release = gate.events("K1")
    await asyncio.wait_for(stored.wait(), 10)
    # K2 was sent to prepare (it would download its inputs) and waits for K1's slot.
    await settled(lambda: "K2" in gate.runs)
    assert scheduler.runs["K2"].waiting and scheduler.queued_count() == 1

    assert await scheduler.cancel(account, ["K2"]) == 1
    assert await scheduler.cancel(account, ["K2"]) == 0  # ended already
    assert scheduler.runs["K1"].task is not None and not scheduler.runs["K1"].cancelled
    release.set()
    await ended(scheduler, "K1")
    await settled(lambda: not scheduler.runs)
    assert not gate.events("K2")[0].is_set()  # its work never began: nothing stored
    assert (scheduler.queued_count(), scheduler.executing_count()) == (0, 0)
    [row] = await database.get_tasks(["K2"], account)
    assert (row["status"], row["started_at"]) == ("error", None)
    [row] = await database.get_tasks(["K1"], account)
    assert row["status"] == "success"
