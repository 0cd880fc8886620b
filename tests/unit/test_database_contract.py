"""The ``Database`` contract, run against both backends: SQLite and a real PostgreSQL.

Every test takes ``db``, which is parametrized over the two backends (a fresh database per
test), so a rule holds on both or fails on one. The ``ClusterDatabase`` methods exist on
PostgreSQL only and run there. ``test_every_method_is_exercised`` fails when a protocol
method has no call in this module, so a new method cannot skip the contract.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest

from dragon.database.interface import AccountExists, Callback, ClusterDatabase, Database
from dragon.database.postgres import PostgresDatabase
from dragon.database.sqlite import SQLiteDatabase
from tests.support.postgres import PostgresCluster, postgres_bin

BACKENDS = ("sqlite", "postgres")
NOW = 1_700_000_000.0


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (make install)")
    cluster = PostgresCluster()
    yield cluster
    cluster.close()


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    database: SQLiteDatabase | PostgresDatabase
    if request.param == "sqlite":
        database = SQLiteDatabase(tmp_path / "contract.db")
    else:
        cluster = request.getfixturevalue("postgres")
        database = PostgresDatabase(cluster.new_database(), "origin-a", lease_seconds=30)
    database.open()
    yield database
    database.close()


@pytest.fixture
async def cluster_db(postgres: PostgresCluster) -> AsyncIterator[PostgresDatabase]:
    database = PostgresDatabase(postgres.new_database(), "origin-a", lease_seconds=30)
    database.open()
    yield database
    database.close()


async def account(db: Database, name: str = "acct") -> int:
    return await db.insert_account(name, name.encode(), f"key-{name}", f"whsec-{name}", [], 0)


def task(key: str, account_id: int, *, status: str = "queued", at: float = NOW, **extra):
    return {
        "key": key,
        "account_id": account_id,
        "task_name": extra.pop("task_name", "hello"),
        "params": {"p": key},
        "status": status,
        "queued_at": at,
        **extra,
    }


def document(row) -> dict:
    return {"key": row["key"], "status": row["status"]}


async def documents(db: Database, account_id: int) -> list[tuple[str, str]]:
    events = await db.events_after(account_id, 0, 100)
    return [(e["task_key"], orjson.loads(e["document"])["status"]) for e in events]


async def add_file(db: Database, account_id: int, key: str, output: str, size: int, **policy):
    listed, counted = policy.get("listed", True), policy.get("counted", True)
    await db.insert_file(
        account_id,
        key,
        output=output,
        name=f"{output}.bin",
        store=policy.get("store", "persistent"),
        location=f"{key}/{output}.bin",
        url=f"http://files/{key}/{output}.bin",
        size=size,
        content_type="application/octet-stream",
        now=policy.get("now", NOW),
        expires_at=policy.get("expires_at"),
        counted=counted,
        listed=listed,
    )


# -- accounts ---------------------------------------------------------------------------------
async def test_accounts_are_created_found_changed_and_unique(db: Database):
    first = await account(db, "a")
    second = await db.insert_account("b", b"hash-b", "key-b", "whsec-b", ["x.org"], 3, 2.5)
    assert second != first
    with pytest.raises(AccountExists):
        await account(db, "a")
    found = await db.account_by_secret_hash(b"hash-b")
    assert found is not None and found["name"] == "b" and found["max_active"] == 3
    assert orjson.loads(found["referrers"]) == ["x.org"] and found["create_rate"] == 2.5
    assert (await db.account_by_api_key("key-a"))["id"] == first
    assert (await db.account_by_id(second))["api_key"] == "key-b"
    assert (await db.account_by_name("a"))["id"] == first
    assert await db.account_by_name("nobody") is None
    assert [a["name"] for a in await db.list_accounts()] == ["a", "b"]
    assert await db.usage(first) == 0

    assert await db.update_account("b", referrers=["y.org"], max_active=7)
    changed = await db.account_by_name("b")
    assert orjson.loads(changed["referrers"]) == ["y.org"] and changed["max_active"] == 7
    assert changed["create_rate"] == 2.5  # untouched
    assert await db.update_account("b", create_rate=-1)
    assert (await db.account_by_name("b"))["create_rate"] is None  # back to the default
    assert await db.account_limits() == {}
    assert await db.update_account("b", max_running=2)
    assert await db.account_limits() == {second: 2}
    assert await db.update_account("b", max_running=0)  # no limit again
    assert await db.account_limits() == {}
    assert await db.update_account("b")  # nothing to change: it exists
    assert not await db.update_account("nobody", max_active=1)
    assert not await db.update_account("nobody")

    assert await db.rotate_webhook_secret("b", "whsec-new", NOW + 60)
    rotated = await db.account_by_name("b")
    assert rotated["webhook_secret"] == "whsec-new"
    assert rotated["previous_webhook_secret"] == "whsec-b"
    assert rotated["previous_webhook_secret_until"] == NOW + 60
    assert not await db.rotate_webhook_secret("nobody", "s", NOW)
    await db.set_expiration(first, 30)
    assert (await db.account_by_id(first))["expiration_days"] == 30


async def test_text_with_nul_matches_nothing(db: Database):
    """A client may send NUL in a key; PostgreSQL text cannot hold it: no row, no error."""
    owner = await account(db)
    await db.insert_tasks([task("K1", owner)])
    assert [r["key"] for r in await db.get_tasks(["K1", "K\x00"], owner)] == ["K1"]
    assert await db.account_by_api_key("key\x00") is None
    assert await db.file_by_location("K1/\x00") is None


# -- tasks ------------------------------------------------------------------------------------
async def test_create_start_finish_and_a_second_finish(db: Database):
    owner = await account(db)
    render_calls = []

    def render(row):
        render_calls.append(row["status"])
        return document(row)

    await db.insert_tasks(
        [task("K1", owner, document={"key": "K1", "status": "queued"}), task("K2", owner)]
    )
    assert sorted(r["key"] for r in await db.get_tasks(["K1", "K2", "K3"], owner)) == ["K1", "K2"]
    assert await db.get_tasks(["K1"], owner + 1000) == []
    assert await db.count_active(owner) == 2

    started = await db.start_task("K1", "node-1", NOW + 1, render)
    assert started is not None
    assert (started["status"], started["owner"], started["attempts"]) == ("executing", "node-1", 1)
    assert started["started_at"] == NOW + 1 and started["progress"] == 0
    again = await db.start_task("K1", "node-2", NOW + 2, render)  # not ours: already started
    assert again is not None and (again["owner"], again["attempts"]) == ("node-1", 1)
    assert await db.start_task("missing", "node-1", NOW) is None

    await db.set_progress({"K1": 40.0, "K2": 10.0}, {"K1": {"key": "K1", "status": "p"}})
    await db.set_partial("K1", {"part": 1}, {"key": "K1", "status": "partial"})
    await db.set_partial("K2", {"part": 1}, {"key": "K2", "status": "partial"})  # not executing
    row = (await db.get_tasks(["K1"], owner))[0]
    assert row["progress"] == 40.0 and orjson.loads(row["result"]) == {"part": 1}
    assert (await db.get_tasks(["K2"], owner))[0]["progress"] is None

    assert await db.ended_changes() == 0
    ended = await db.finish_task(
        "K1", "success", {"url": "u"}, None, None, NOW + 5, render=render, diagnostics=None
    )
    assert ended is not None and ended["status"] == "success" and ended["progress"] is None
    assert orjson.loads(ended["result"]) == {"url": "u"} and ended["completed_at"] == NOW + 5
    assert await db.ended_changes() == 0  # a first end changes no ended task
    assert sorted((r["key"], r["status"]) for r in await db.task_ends(["K1", "K2"], owner)) == [
        ("K1", "success"),
        ("K2", "queued"),
    ]
    await db.finish_task("K1", "error", None, {"m": 1}, "timeout", NOW + 6, render=render)
    assert await db.ended_changes() == 1  # a second end bumps the count
    assert await db.finish_task("missing", "success", {}, None, None, NOW) is None
    assert await db.ended_changes() == 1
    assert render_calls == ["executing", "success", "error"]
    assert await documents(db, owner) == [
        ("K1", "queued"),
        ("K1", "executing"),
        ("K1", "p"),
        ("K1", "partial"),
        ("K1", "success"),
        ("K1", "error"),
    ]
    assert await db.count_active(owner) == 1


async def test_finish_queues_the_callback_in_its_transaction(db: Database):
    owner = await account(db)
    await db.insert_tasks([task("K1", owner)])
    await db.start_task("K1", "node", NOW)
    callback = Callback("http://hook/", lambda row: orjson.dumps(document(row)), NOW + 1)
    await db.finish_task("K1", "success", {}, None, None, NOW, callback=callback)
    (delivery,) = await db.deliveries_for(["K1"])
    assert (delivery["url"], delivery["state"], delivery["attempts"]) == (
        "http://hook/",
        "pending",
        0,
    )
    assert delivery["webhook_id"] == "msg_K1" and delivery["next_at"] == NOW + 1
    (due,) = await db.due_deliveries(NOW + 2)
    assert orjson.loads(bytes(due["body"])) == {"key": "K1", "status": "success"}


async def test_diagnostics_and_run_times(db: Database):
    owner = await account(db)
    await db.insert_tasks([task(f"K{i}", owner) for i in range(3)])
    for i in range(3):
        await db.start_task(f"K{i}", "node", NOW + i)
    await db.finish_task("K0", "success", {}, None, None, NOW + 10)
    await db.finish_task("K1", "success", {}, None, None, NOW + 21)
    await db.finish_task("K2", "error", None, {}, "x", NOW + 30, diagnostics={"stage": "fetch"})
    assert await db.task_diagnostics(["K0", "K2"]) == {"K2": {"stage": "fetch"}}
    assert await db.recent_run_times("hello", 5) == [20.0, 10.0]  # newest first, successes
    assert await db.recent_run_times("hello", 1) == [20.0]


async def test_requeue_and_unfinished(db: Database):
    owner = await account(db)
    await db.insert_tasks([task("K1", owner, at=NOW), task("K2", owner, at=NOW + 1)])
    await db.insert_tasks([task("K3", owner, status="error", completed_at=NOW, error={"m": 1})])
    await db.start_task("K1", "node", NOW)
    await db.set_partial("K1", {"part": 1})
    assert [r["key"] for r in await db.unfinished_tasks()] == ["K1", "K2"]  # oldest first
    await db.requeue_task("K1", document)
    row = (await db.get_tasks(["K1"], owner))[0]
    assert (row["status"], row["owner"], row["result"], row["progress"]) == (
        "queued",
        None,
        None,
        None,
    )
    assert row["attempts"] == 1  # the attempt stays counted
    await db.requeue_task("K2", document)  # queued, not executing: nothing happens
    assert await documents(db, owner) == [("K1", "queued")]
    restarted = await db.start_task("K1", "node", NOW + 5)
    assert restarted is not None and restarted["attempts"] == 2


async def test_prune_tasks_takes_settled_deliveries_and_counts_a_change(db: Database):
    owner = await account(db)
    errback = {
        "task_key": "OLD1",
        "account_id": owner,
        "url": "http://hook/",
        "body": b"{}",
        "webhook_id": "msg_OLD1",
        "next_at": NOW,
    }
    await db.insert_tasks(
        [
            task("OLD1", owner, status="error", completed_at=NOW - 100, error={}),
            task("OLD2", owner, status="error", completed_at=NOW - 90, error={}),
            task("OLD3", owner, status="error", completed_at=NOW - 80, error={}),
            task("NEW", owner, status="error", completed_at=NOW, error={}),
            task("LIVE", owner),
        ],
        [errback, {**errback, "task_key": "OLD2", "webhook_id": "msg_OLD2"}],
    )
    (old1,) = [d for d in await db.due_deliveries(NOW + 1) if d["task_key"] == "OLD1"]
    await db.record_delivery(old1["id"], "delivered", 1, NOW, 200, None)
    assert await db.prune_tasks(NOW - 50, 2) == 2  # the limit holds
    assert await db.ended_changes() == 1
    assert await db.prune_tasks(NOW - 50, 10) == 1
    assert await db.ended_changes() == 2
    assert await db.prune_tasks(NOW - 50, 10) == 0
    assert await db.ended_changes() == 2  # nothing deleted, nothing changed
    assert sorted(r["key"] for r in await db.get_tasks(["OLD1", "NEW", "LIVE"], owner)) == [
        "LIVE",
        "NEW",
    ]
    # The delivered callback went with its task; the pending one stays to be sent.
    assert [d["task_key"] for d in await db.deliveries_for(["OLD1", "OLD2"])] == ["OLD2"]


# -- the event feed -----------------------------------------------------------------------
async def test_events_page_prune_and_horizon(db: Database):
    owner = await account(db)
    other = await account(db, "other")
    await db.insert_tasks(
        [
            task(f"K{i}", owner, at=NOW - 100 + i, document={"key": f"K{i}", "status": "q"})
            for i in range(5)
        ]
        + [task("X", other, at=NOW, document={"key": "X", "status": "q"})]
    )
    page = await db.events_after(owner, 0, 2)
    assert [e["task_key"] for e in page] == ["K0", "K1"] and page[0]["task_name"] == "hello"
    rest = await db.events_after(owner, page[-1]["id"], 10)
    assert [e["task_key"] for e in rest] == ["K2", "K3", "K4"]
    assert [e["task_key"] for e in await db.events_after(other, 0, 10)] == ["X"]
    assert await db.event_horizon() == 0
    assert await db.prune_events(NOW - 97.5, 2) == 2  # the limit holds
    assert await db.event_horizon() == page[-1]["id"]
    assert await db.prune_events(NOW - 97.5, 10) == 1
    assert await db.prune_events(NOW - 97.5, 10) == 0
    assert await db.event_horizon() == rest[0]["id"]
    assert [e["task_key"] for e in await db.events_after(owner, 0, 10)] == ["K3", "K4"]


# -- files and usage ------------------------------------------------------------------------
async def test_files_follow_their_own_listed_and_counted_policy(db: Database):
    owner = await account(db)
    await add_file(db, owner, "K1", "output", 100)  # listed and counted (persistent)
    await add_file(db, owner, "K1", "thumb", 5, listed=False, counted=False, store="volatile")
    await add_file(db, owner, "K2", "output", 30, listed=True, counted=False, store="shown")
    await add_file(db, owner, "K3", "output", 7, listed=False, counted=True, store="billed")
    listed = await db.list_files(owner)
    assert [(f["task_key"], f["output"]) for f in listed] == [("K1", "output"), ("K2", "output")]
    assert listed[0]["listed"] is True and listed[0]["counted"] is True
    assert listed[1]["counted"] is False and listed[1]["store"] == "shown"
    assert [f["size"] for f in await db.list_files(owner, task_key="K2")] == [30]
    by_url = await db.list_files(owner, urls=["http://files/K1/output.bin", "http://nope"])
    assert [f["size"] for f in by_url] == [100]
    assert await db.list_files(owner, urls=["http://files/K1/thumb.bin"]) == []
    assert await db.file_directories(owner) == ["K1", "K2"]
    assert await db.usage(owner) == 107

    # The same output stored again (a rerun) replaces the row and its usage.
    await add_file(db, owner, "K1", "output", 60)
    assert await db.usage(owner) == 67
    found = await db.file_for_output("K1", "output")
    assert found is not None and found["size"] == 60
    assert (await db.file_by_location("K3/output.bin"))["store"] == "billed"
    assert await db.file_for_output("K1", "missing") is None

    every = {f["output"] + f["task_key"]: f["id"] for f in await db.list_files(owner)}
    thumb = await db.file_for_output("K1", "thumb")
    billed = await db.file_for_output("K3", "output")
    freed = await db.delete_files([every["outputK1"], every["outputK2"], thumb["id"]])
    assert freed == 60  # only counted bytes are freed from usage
    assert await db.usage(owner) == 7
    assert await db.delete_files([billed["id"]]) == 7
    assert await db.usage(owner) == 0
    assert await db.list_files(owner) == [] and await db.file_directories(owner) == []


async def test_expired_files_by_date_and_by_account_expiration(db: Database):
    owner = await account(db)
    keeper = await account(db, "keeper")
    await db.set_expiration(owner, 1)
    day = 86400.0
    await add_file(db, owner, "K1", "gone", 1, listed=False, counted=False, expires_at=NOW - 1)
    await add_file(db, owner, "K1", "soon", 1, listed=False, counted=False, expires_at=NOW + 9)
    await add_file(db, owner, "K2", "old", 1, now=NOW - 2 * day)
    await add_file(db, owner, "K2", "new", 1, now=NOW - 10)
    await add_file(db, owner, "K3", "hidden", 1, now=NOW - 2 * day, listed=False, counted=True)
    await add_file(db, keeper, "K4", "old", 1, now=NOW - 2 * day)
    expired = await db.expired_files(NOW)
    assert sorted((f["task_key"], f["output"]) for f in expired) == [("K1", "gone"), ("K2", "old")]
    assert len(await db.expired_files(NOW, limit=1)) == 1


# -- callback outbox ------------------------------------------------------------------------
async def test_deliveries_due_recorded_and_released(db: Database):
    first = await account(db, "first")
    second = await account(db, "second")

    def errback(key: str, owner: int, at: float) -> dict:
        return {
            "task_key": key,
            "account_id": owner,
            "url": f"http://hook/{key}",
            "body": b"{}",
            "webhook_id": f"msg_{key}",
            "next_at": at,
        }

    await db.insert_tasks(
        [task(k, first, status="error", completed_at=NOW, error={}) for k in ("A1", "A2", "A3")]
        + [task("B1", second, status="error", completed_at=NOW, error={})],
        [errback("A1", first, NOW - 30), errback("A2", first, NOW - 20)]
        + [errback("A3", first, NOW + 50), errback("B1", second, NOW - 10)],
    )
    await db.rotate_webhook_secret("first", "whsec-new", NOW + 60)
    assert await db.next_delivery_time() == NOW - 30
    due = await db.due_deliveries(NOW, limit=2)
    # In turns across accounts: the second account's only delivery is not left behind.
    assert sorted(d["task_key"] for d in due) == ["A1", "B1"]
    a1 = next(d for d in due if d["task_key"] == "A1")
    assert a1["webhook_secret"] == "whsec-new" and a1["previous_webhook_secret"] == "whsec-first"
    assert bytes(a1["body"]) == b"{}" and a1["url"] == "http://hook/A1"
    b1 = next(d for d in due if d["task_key"] == "B1")
    assert b1["previous_webhook_secret"] is None

    await db.record_delivery(a1["id"], "delivered", 1, NOW, 200, None)
    await db.record_delivery(b1["id"], "pending", 1, NOW + 100, 500, "server error")
    states = {d["task_key"]: d for d in await db.deliveries_for(["A1", "B1"])}
    assert states["A1"]["state"] == "delivered" and states["A1"]["last_status"] == 200
    assert states["B1"]["last_error"] == "server error" and states["B1"]["next_at"] == NOW + 100

    if isinstance(db, PostgresDatabase):
        # Several nodes send: what one took is claimed, no other node takes it meanwhile.
        (a2,) = await db.due_deliveries(NOW)
        assert a2["task_key"] == "A2"
        assert await db.due_deliveries(NOW) == []
        await db.release_deliveries([a2["id"]], NOW)
    else:
        (a2,) = await db.due_deliveries(NOW)
        await db.release_deliveries([a2["id"]], NOW - 5)
    assert [d["task_key"] for d in await db.due_deliveries(NOW)] == ["A2"]
    await db.release_deliveries([a1["id"]], NOW - 99)  # delivered: not pending, untouched
    assert (await db.deliveries_for(["A1"]))[0]["next_at"] == NOW


async def test_deleting_an_account_takes_everything_of_it(db: Database):
    gone = await account(db, "gone")
    kept = await account(db, "kept")
    delivery = {
        "url": "http://hook/",
        "body": b"{}",
        "next_at": NOW,
    }
    await db.insert_tasks(
        [
            task("G1", gone, status="error", completed_at=NOW, error={}, document={"s": 1}),
            task("K1", kept, status="error", completed_at=NOW, error={}, document={"s": 1}),
        ],
        [
            {**delivery, "task_key": "G1", "account_id": gone, "webhook_id": "msg_G1"},
            {**delivery, "task_key": "K1", "account_id": kept, "webhook_id": "msg_K1"},
        ],
    )
    await add_file(db, gone, "G1", "output", 10)
    await add_file(db, kept, "K1", "output", 20)
    assert await db.delete_account("gone")
    assert await db.ended_changes() == 1
    assert await db.account_by_name("gone") is None
    assert await db.get_tasks(["G1"], gone) == []
    assert await db.deliveries_for(["G1"]) == []
    assert await db.file_for_output("G1", "output") is None
    assert await db.events_after(gone, 0, 10) == []
    assert await db.usage(gone) == 0
    # The other account keeps all of its own.
    assert [r["key"] for r in await db.get_tasks(["K1"], kept)] == ["K1"]
    assert len(await db.deliveries_for(["K1"])) == 1 and await db.usage(kept) == 20
    assert len(await db.events_after(kept, 0, 10)) == 1
    assert not await db.delete_account("gone")
    assert await db.ended_changes() == 1


# -- cancel ---------------------------------------------------------------------------------
async def test_cancel_ends_queued_and_executing_tasks_of_the_account_only(db: Database):
    owner = await account(db)
    other = await account(db, "other")
    await db.insert_tasks(
        [
            task("Q", owner, document={"key": "Q", "status": "queued"}),
            task("E", owner),
            task("D", owner),
            task("X", other),
            task("H", owner, params={"url_errback": "http://hook/"}),
        ]
    )
    await db.start_task("E", "node", NOW + 1)
    await db.start_task("D", "node", NOW + 1)
    await db.set_progress({"E": 40.0})
    await db.finish_task("D", "success", {"done": 1}, None, None, NOW + 2)

    def errback(row):
        params = orjson.loads(row["params"])
        url = params.get("url_errback")
        return Callback(url, lambda r: orjson.dumps(document(r)), NOW + 9) if url else None

    keys = ["Q", "E", "D", "X", "H", "missing", "K\x00"]
    ended = await db.cancel_tasks(keys, owner, NOW + 3, "stopped", errback, document)
    assert sorted(r["key"] for r in ended) == ["E", "H", "Q"]
    for r in ended:
        assert (r["status"], r["error_code"], r["completed_at"]) == ("error", "cancelled", NOW + 3)
        assert orjson.loads(r["error"]) == "stopped" and r["progress"] is None
    rows = {r["key"]: r for r in await db.get_tasks(["Q", "E", "D", "H"], owner)}
    assert rows["E"]["started_at"] == NOW + 1 and rows["Q"]["started_at"] is None
    assert rows["D"]["status"] == "success"  # ended already: as it was
    assert (await db.get_tasks(["X"], other))[0]["status"] == "queued"  # not the account's
    assert await db.count_active(owner) == 0
    # The errback is queued with the end, with the cancelled document as its body.
    (delivery,) = await db.deliveries_for(["Q", "E", "H"])
    assert (delivery["task_key"], delivery["url"]) == ("H", "http://hook/")
    (due,) = await db.due_deliveries(NOW + 10)
    assert orjson.loads(bytes(due["body"])) == {"key": "H", "status": "error"}
    assert sorted(k for k, status in await documents(db, owner) if status == "error") == [
        "E",
        "H",
        "Q",
    ]
    # Again: nothing left to cancel.
    assert await db.cancel_tasks(keys, owner, NOW + 4, "again", errback, document) == []
    assert await db.cancel_tasks([], owner, NOW + 4, "none", errback, document) == []
    # The run that was stopped may still try to write its end: a cancel stays.
    assert await db.finish_task("E", "success", {"late": 1}, None, None, NOW + 5) is None
    row = (await db.get_tasks(["E"], owner))[0]
    assert (row["status"], row["error_code"], row["result"]) == ("error", "cancelled", None)
    assert await db.start_task("Q", "node", NOW + 6) is not None  # the row, not started
    assert (await db.get_tasks(["Q"], owner))[0]["status"] == "error"
    await db.requeue_task("E")  # a stopping node hands back what it ran: not a cancelled task
    assert (await db.get_tasks(["E"], owner))[0]["status"] == "error"


async def test_task_files_are_every_file_of_the_task(db: Database):
    owner = await account(db)
    await add_file(db, owner, "K1", "output", 100)
    await add_file(db, owner, "K1", "preview", 5, listed=False, counted=False, store="volatile")
    await add_file(db, owner, "K2", "output", 30)
    files = await db.task_files("K1")
    assert sorted(f["output"] for f in files) == ["output", "preview"]
    assert await db.task_files("missing") == []


async def test_a_chain_waits_until_its_inputs_end_in_their_transactions(db: Database):
    owner = await account(db)
    await db.insert_tasks([task("DONE", owner)])
    await db.start_task("DONE", "node", NOW + 1)
    await db.finish_task("DONE", "success", {"output": "http://x/"}, None, None, NOW + 2)
    rows = [
        task("A", owner),
        task("B", owner),
        # Waits for A and B (and for DONE, which has ended: the insert finds it so).
        task(
            "C",
            owner,
            inputs=["A", "B", "DONE"],
            waiting_for=["A", "B", "DONE"],
            document={"key": "C", "status": "queued", "waiting_for": ["A", "B", "DONE"]},
        ),
        task(
            "L",
            owner,
            inputs=["DONE"],
            waiting_for=["DONE"],
            document={"key": "L", "status": "queued"},
        ),
    ]
    await db.insert_tasks(rows)
    assert rows[2]["waiting_for"] == ["A", "B"] and rows[2]["document"]["waiting_for"] == ["A", "B"]
    assert rows[3]["waiting_for"] is None  # its input had ended: it may start at once
    assert await db.start_task("L", "node", NOW + 3) is not None
    # C may not start while it waits (the database refuses, whoever asks).
    assert (await db.start_task("C", "node", NOW + 3))["status"] == "queued"
    assert [r["key"] for r in await db.unfinished_tasks()].count("C") == 1
    for key in ("A", "B"):
        await db.start_task(key, "node", NOW + 3)
    released: list = []
    await db.finish_task("A", "success", {}, None, None, NOW + 4, dependents=released)
    assert [(r["key"], orjson.loads(r["waiting_for"])) for r in released] == [("C", ["B"])]
    # The other input is cancelled: C waits for nothing more and may start (to fail).
    ended = await db.cancel_tasks(["B"], owner, NOW + 5, "stop", lambda r: None, document, released)
    assert [r["key"] for r in ended] == ["B"]
    assert [(r["key"], r["waiting_for"]) for r in released] == [("C", None)]
    assert (await db.start_task("C", "node", NOW + 6))["owner"] == "node"
    # A dependant's changes are events of the feed too (when the end records events, as
    # the cancel does): its creation, then its release.
    assert [k for k, _ in await documents(db, owner)].count("C") == 2


async def test_templates_are_per_account_replaced_by_name_and_deleted(db: Database):
    mine, theirs = await account(db, "a"), await account(db, "b")
    first = await db.put_template(mine, "card", "<movie>{{title}}</movie>", NOW)
    assert (first["name"], first["created_at"], first["updated_at"]) == ("card", NOW, NOW)
    await db.put_template(mine, "album", "<movie/>", NOW)
    again = await db.put_template(mine, "card", "<movie>{{name}}</movie>", NOW + 5)
    assert again["definition"] == "<movie>{{name}}</movie>"
    assert (again["created_at"], again["updated_at"]) == (NOW, NOW + 5)
    assert [t["name"] for t in await db.templates(mine)] == ["album", "card"]
    assert await db.templates(theirs) == [] and await db.template(theirs, "card") is None
    assert not await db.delete_template(theirs, "card")
    assert await db.delete_template(mine, "card") and not await db.delete_template(mine, "card")
    assert await db.template(mine, "card") is None
    assert (await db.template(mine, "album"))["definition"] == "<movie/>"


# -- several nodes (PostgreSQL) ---------------------------------------------------------------
async def test_uploads_count_against_the_limit_advance_from_their_offset_and_expire(
    db: Database,
):
    mine, theirs = await account(db, "a"), await account(db, "b")
    assert await db.insert_upload("u1", mine, 100, "name bmFtZQ==", NOW, NOW + 60, 150)
    # 100 unfinished + 60 > 150: refused, nothing written; another account has its own.
    assert not await db.insert_upload("u2", mine, 60, None, NOW, NOW + 60, 150)
    assert await db.upload("u2") is None
    assert await db.insert_upload("u3", theirs, 60, None, NOW, NOW + 30, 150)
    first = await db.upload("u1")
    assert first is not None and first["account_id"] == mine
    assert (first["length"], first["received"], first["completed_at"]) == (100, 0, None)
    assert first["metadata"] == "name bmFtZQ=="

    moved = await db.advance_upload("u1", 0, 40, NOW + 1, NOW + 999)
    assert moved is not None and moved["received"] == 40 and moved["completed_at"] is None
    # From a stale offset, or past the length: nothing moves.
    assert await db.advance_upload("u1", 0, 70, NOW + 2, NOW + 999) is None
    assert await db.advance_upload("u1", 40, 101, NOW + 2, NOW + 999) is None
    assert (await db.upload("u1"))["received"] == 40
    done = await db.advance_upload("u1", 40, 100, NOW + 3, NOW + 999)
    assert done is not None and done["received"] == 100
    assert done["completed_at"] == NOW + 3 and done["expires_at"] == NOW + 999
    assert await db.advance_upload("u1", 100, 100, NOW + 4, NOW + 999) is None
    # A finished upload no longer counts against the limit.
    assert await db.insert_upload("u2", mine, 150, None, NOW, NOW + 60, 150)

    expired = await db.expired_uploads(NOW + 61)
    assert [u["id"] for u in expired] == ["u3", "u2"]
    assert [u["id"] for u in await db.expired_uploads(NOW + 61, limit=1)] == ["u3"]
    assert await db.delete_uploads(["u3", "u2", "nothing"]) == 2
    assert await db.delete_uploads([]) == 0
    assert [u["id"] for u in await db.expired_uploads(NOW + 10_000)] == ["u1"]
    assert await db.delete_account("a")
    assert await db.upload("u1") is None


async def test_uploads_held_in_parts_move_from_their_offset_and_finish_apart(db: Database):
    mine = await account(db, "a")
    assert await db.insert_upload("p1", mine, 100, None, NOW, NOW + 60, 1000, "MULTI")
    first = await db.upload("p1")
    assert first is not None and (first["multipart"], first["parts"]) == ("MULTI", "[]")
    assert (first["pending_key"], first["next_part"]) == (None, 0)
    # Part numbers are handed out once each, ascending, whoever asks.
    assert [await db.number_upload_part("p1") for _ in range(3)] == [1, 2, 3]
    assert await db.number_upload_part("nothing") is None
    moved = await db.store_upload_parts("p1", 0, 70, '[[1, "e1", 60]]', "pending-a")
    assert moved is not None and moved["received"] == 70 and moved["pending_key"] == "pending-a"
    assert moved["parts"] == '[[1, "e1", 60]]'
    # From a stale offset, or past the length: nothing moves.
    assert await db.store_upload_parts("p1", 0, 80, "[]", "pending-b") is None
    assert await db.store_upload_parts("p1", 70, 101, "[]", None) is None
    # Whole, but not finished until the parts are joined: then finished once.
    whole = await db.store_upload_parts("p1", 70, 100, '[[1, "e1", 60], [3, "e3", 40]]', None)
    assert whole is not None and whole["completed_at"] is None and whole["pending_key"] is None
    done = await db.complete_upload("p1", NOW + 5, NOW + 999)
    assert done is not None and (done["completed_at"], done["expires_at"]) == (NOW + 5, NOW + 999)
    assert await db.complete_upload("p1", NOW + 6, NOW + 999) is None
    assert await db.store_upload_parts("p1", 100, 100, "[]", None) is None
    # Not whole: not finished.
    assert await db.insert_upload("p2", mine, 10, None, NOW, NOW + 60, 1000)
    assert (await db.upload("p2"))["multipart"] is None
    assert await db.complete_upload("p2", NOW, NOW) is None


async def test_list_tasks_newest_first_filtered_and_paged(db: Database):
    a, b = await account(db, "a"), await account(db, "b")
    # K0..K5 one second apart; K6 and K7 share K5's time (one batch), so seq breaks the tie.
    rows = [task(f"K{i}", a, at=NOW + i) for i in range(6)]
    rows += [task(f"K{i}", a, at=NOW + 5) for i in (6, 7)]
    rows[1].update(task_name="image.thumb")
    rows[4].update(task_name="image.thumb", status="error", error="bad", error_code="x")
    await db.insert_tasks([*rows, task("B0", b, at=NOW + 3)])
    await db.start_task("K2", "node", NOW + 10)
    await db.start_task("K3", "node", NOW + 10, waiting=True)  # held: shows queued
    await db.finish_task("K0", "success", {}, None, None, NOW + 11)

    async def keys(**filters) -> list[str]:
        return [r["key"] for r in await db.list_tasks(a, limit=100, **filters)]

    everything = ["K7", "K6", "K5", "K4", "K3", "K2", "K1", "K0"]
    assert await keys() == everything
    assert await keys(statuses=["queued"]) == ["K7", "K6", "K5", "K3", "K1"]
    assert await keys(statuses=["executing"]) == ["K2"]
    assert await keys(statuses=["error", "success"]) == ["K4", "K0"]
    assert await keys(task_name="image.thumb") == ["K4", "K1"]
    assert await keys(task_name="image.thumb", statuses=["queued"]) == ["K1"]
    assert await keys(task_name="nothing") == []
    assert await keys(after=NOW + 2, before=NOW + 5) == ["K4", "K3", "K2"]
    assert await keys(statuses=["queued"], before=NOW + 5) == ["K3", "K1"]
    assert [r["key"] for r in await db.list_tasks(b)] == ["B0"]
    listed = (await db.list_tasks(a, limit=1))[0]
    assert listed["task_name"] == "hello" and listed["seq"] > 0 and listed["queued_at"] == NOW + 5

    # Pages of 2 by the last row's (queued_at, seq): tasks created meanwhile (newer) do not
    # shift the pages after the first, and every task comes exactly once (the first page
    # ends inside the batch of K5 to K7).
    paged: list[str] = []
    cursor = None
    while True:
        page = await db.list_tasks(a, cursor=cursor, limit=2)
        paged += [r["key"] for r in page]
        if len(page) < 2:
            break
        cursor = (page[-1]["queued_at"], page[-1]["seq"])
        await db.insert_tasks([task(f"N{len(paged)}", a, at=NOW + 100)])
    assert paged == everything


async def test_claims_are_round_robin_per_lane_and_exclusive(cluster_db: PostgresDatabase):
    db = cluster_db
    first = await account(db, "first")
    second = await account(db, "second")
    await db.insert_tasks(
        [task(f"A{i}", first, at=NOW + i) for i in range(4)]
        + [
            task("B0", second, at=NOW + 10, lane="batch"),
            task("L0", first, at=NOW, task_name="probe", lane="light"),
            task("I0", first, at=NOW, lane="interactive"),
        ]
    )
    claimed = await db.claim_queued("node-1", "batch", 3, NOW + 20, document)
    assert [r["key"] for r in claimed] == ["A0", "B0", "A1"]  # A*: no lane (older rows)
    assert all(r["status"] == "executing" and r["owner"] == "node-1" for r in claimed)
    assert all(r["attempts"] == 1 and r["started_at"] == NOW + 20 for r in claimed)
    # Held for node-1, waiting for their work to begin: no event yet (still queued).
    assert all(r["stage"] == "waiting" for r in claimed)
    assert ("B0", "executing") not in await documents(db, second)
    light = await db.claim_queued("node-2", "light", 5, NOW + 21, document)
    assert [r["key"] for r in light] == ["L0"] and light[0]["stage"] is None
    assert ("L0", "executing") in await documents(db, first)
    assert await db.claim_queued("node-2", "light", 5, NOW + 21, document) == []
    assert [r["key"] for r in await db.claim_queued("node-2", "interactive", 5, NOW, document)] == [
        "I0"
    ]
    # A task claimed by one node is not started again by another.
    lost = await db.start_task("A0", "node-2", NOW + 22)
    assert lost is not None and lost["owner"] == "node-1"
    owned = await db.owned_tasks("node-1", NOW + 21)
    assert [r["key"] for r in owned] == ["A0", "A1", "B0"]  # in queue order
    assert await db.owned_tasks("node-1", NOW + 20) == []
    # The work of a waiting task begins on its own node only.
    assert await db.begin_work("B0", "node-2", NOW + 22, document) is None
    begun = await db.begin_work("B0", "node-1", NOW + 23, document)
    assert begun is not None and begun["stage"] is None and begun["started_at"] == NOW + 23
    assert await db.begin_work("B0", "node-1", NOW + 24, document) is None  # once
    assert ("B0", "executing") in await documents(db, second)
    found = await db.tasks_by_keys(["B0", "A3", "zz", "A\x00"])
    assert sorted(r["key"] for r in found) == ["A3", "B0"]


async def test_nodes_heartbeats_leases_and_stale_tasks(postgres: PostgresCluster):
    url = postgres.new_database()
    db = PostgresDatabase(url, "origin-a", lease_seconds=0.5)
    db.open()
    try:
        owner = await account(db)
        await db.insert_tasks([task("K1", owner), task("K2", owner)])
        assert await db.join("boot-1", "node-a") == 0  # the first node: no other alive
        await db.start_task("K1", "boot-1", NOW)
        await db.start_task("K2", "boot-2", NOW)  # a node that never joined
        assert [r["key"] for r in await db.stale_tasks()] == ["K2"]
        assert [r["key"] for r in await db.unfinished_tasks()] == ["K2"]
        await asyncio.sleep(0.7)  # boot-1 goes silent past the lease
        assert [r["key"] for r in await db.stale_tasks()] == ["K1", "K2"]
        assert await db.heartbeat("boot-1", "node-a") == 0
        assert [r["key"] for r in await db.stale_tasks()] == ["K2"]
        assert await db.join("boot-3", "node-a") == 0  # node-a restarted: boot-1 is gone
        assert [r["key"] for r in await db.stale_tasks()] == ["K1", "K2"]
        assert await db.heartbeat("boot-2", "node-b") == 1  # node-a (boot-3) is alive
        assert [r["key"] for r in await db.stale_tasks()] == ["K1"]
        await db.leave("boot-2")
        assert [r["key"] for r in await db.stale_tasks()] == ["K1", "K2"]
    finally:
        db.close()


async def test_other_nodes_hear_changes_and_locks_are_exclusive(postgres: PostgresCluster):
    url = postgres.new_database()
    mine, theirs = PostgresDatabase(url, "origin-a"), PostgresDatabase(url, "origin-b")
    mine.open()
    heard: list[tuple[str, list[str]]] = []
    got = asyncio.Event()

    def handler(kind: str, keys: list[str]) -> None:
        heard.append((kind, keys))
        got.set()

    try:
        await mine.listen(handler)
        owner = await account(theirs)
        await mine.insert_tasks([task("MINE", owner)])  # a node ignores its own news
        await theirs.insert_tasks([task("K1", owner), task("K2", owner)])
        await asyncio.wait_for(got.wait(), 10)
        assert heard == [("n", ["K1", "K2"])]
        got.clear()
        await theirs.join("boot-b", "node-b")  # a node that joins is heard of at once
        await asyncio.wait_for(got.wait(), 10)
        assert heard[-1] == ("j", ["boot-b"])

        held = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> str:
            held.set()
            await release.wait()
            return "ran"

        holder = asyncio.create_task(mine.try_exclusive(42, hold))
        await held.wait()
        assert await theirs.try_exclusive(42, lambda: asyncio.sleep(0, "other")) is None
        release.set()
        assert await holder == "ran"
        assert await theirs.try_exclusive(42, lambda: asyncio.sleep(0, "other")) == "other"
    finally:
        mine.close()
        theirs.close()


def test_every_method_is_exercised():
    """A protocol method with no call in this module fails here, so none escapes the
    contract."""
    source = Path(__file__).read_text()
    called = set(re.findall(r"\.(\w+)\(", source))
    methods = {
        name
        for protocol in (Database, ClusterDatabase)
        for name, member in inspect.getmembers(protocol)
        if inspect.iscoroutinefunction(member) and not name.startswith("_")
    }
    assert methods, "no protocol methods found"
    assert methods <= called, f"not exercised: {sorted(methods - called)}"


def test_both_backends_implement_the_protocol():
    for backend, protocol in ((SQLiteDatabase, Database), (PostgresDatabase, ClusterDatabase)):
        wanted = {n for n, m in inspect.getmembers(protocol) if inspect.iscoroutinefunction(m)}
        assert all(inspect.iscoroutinefunction(getattr(backend, n, None)) for n in wanted)


async def test_task_overview_counts_by_status_error_and_ended_slot(db: Database):
    owner = await account(db)
    other = await account(db, "other")
    await db.insert_tasks(
        [
            task("Q", owner),
            task("W", owner),  # held by a node, its work not begun: counted held
            task("R", owner),
            task("S1", owner),
            task("S2", owner, task_name="video.info"),
            task("E1", owner),
            task("X", other),
        ]
    )
    await db.start_task("W", "node", NOW + 1, waiting=True)
    await db.start_task("R", "node", NOW + 1)
    for key, seconds in (("S1", 2.0), ("S2", 4.0), ("E1", 30.0)):
        await db.start_task(key, "node", NOW + 1)
        failed = key.startswith("E")
        await db.finish_task(
            key,
            "error" if failed else "success",
            None if failed else {"ok": True},
            {"message": "no"} if failed else None,
            "timeout" if failed else None,
            NOW + 1 + seconds,
        )

    def read(**filters):
        return db.task_overview(
            owner,
            task_name=filters.get("task_name"),
            after=filters.get("after"),
            before=filters.get("before"),
            start=NOW,
            end=NOW + 60,
            bucket=10.0,
        )

    seen = await read()
    counts = {(r["status"], bool(r["held"])): r["n"] for r in seen["counts"]}
    assert counts == {
        ("queued", False): 1,
        ("executing", True): 1,
        ("executing", False): 1,
        ("success", False): 2,
        ("error", False): 1,
    }
    assert [(r["error_code"], r["n"]) for r in seen["errors"]] == [("timeout", 1)]
    ended = {(r["slot"], r["status"]): r for r in seen["ended"]}
    assert set(ended) == {(0, "success"), (3, "error")}
    assert ended[0, "success"]["n"] == 2
    assert ended[0, "success"]["mean"] == pytest.approx(3.0)
    assert ended[0, "success"]["longest"] == pytest.approx(4.0)
    named = await read(task_name="video.info")
    assert [(r["status"], r["n"]) for r in named["counts"]] == [("success", 1)]
    assert (await read(after=NOW + 100))["counts"] == []
