"""Unit tests of the core modules: db, bus, fair queue, auth helpers, settings, status."""

from __future__ import annotations

import asyncio
import base64
import re
import time

import pytest

from dragon.config import Settings
from dragon.database import sqlite as db
from dragon.database.interface import AccountExists
from dragon.database.sqlite import SQLiteDatabase
from dragon.engine import auth, documents
from dragon.engine.bus import Bus
from dragon.engine.lanes import FairQueue, Lane
from dragon.engine.rate_limits import TokenBuckets
from dragon.engine.service import new_key
from dragon.handlers.credentials import located_credentials


@pytest.fixture
async def database(tmp_path):
    d = SQLiteDatabase(tmp_path / "t.db")
    d.open()
    yield d
    d.close()


def insert(database, name):
    return database.insert_account(name, name.encode(), name, "", [], 0)


async def test_group_commit_shares_transactions(database, monkeypatch):
    commits = 0
    real = database._commit_batch

    def counting(conn, batch):
        nonlocal commits
        commits += 1
        real(conn, batch)

    monkeypatch.setattr(database, "_commit_batch", counting)
    await asyncio.gather(*(insert(database, f"a{i}") for i in range(200)))
    assert commits < 200
    assert len(await database.list_accounts()) == 200


async def test_a_failing_write_does_not_sink_its_batch(database):
    results = await asyncio.gather(
        insert(database, "x"), insert(database, "x"), insert(database, "y"), return_exceptions=True
    )
    assert isinstance(results[1], AccountExists)
    assert sorted(r["name"] for r in await database.list_accounts()) == ["x", "y"]


def test_migrations_are_idempotent(tmp_path):
    conn = db.connect(tmp_path / "m.db")
    assert db.migrate(conn) == len(db.MIGRATIONS)
    assert db.migrate(conn) == len(db.MIGRATIONS)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(db.MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_bus_overflow_closes_only_the_slow_subscriber():
    bus = Bus(queue_size=2)
    slow = bus.subscribe(["k"])
    fast = bus.subscribe(["k"])
    for i in range(3):
        bus.publish("k", {"key": "k", "n": i})
        if i < 2:
            assert (await fast.get()).doc["n"] == i
    assert slow.overflowed
    assert bus.size() == 1
    assert (await fast.get()).doc["n"] == 2
    fast.__exit__()
    assert bus.size() == 0


async def test_bus_encodes_a_change_once_for_all_its_subscribers():
    bus = Bus()
    subs = [bus.subscribe(["k"]) for _ in range(3)]
    bus.publish("k", {"key": "k", "status": "error", "error": "e", "error_code": "x"})
    changes = [await s.get() for s in subs]
    assert changes[0] is changes[1] is changes[2]
    assert changes[0].line(2) is changes[2].line(2)
    assert changes[0].line(2) == b'{"key":"k","status":"error","error":"e","error_code":"x"}\n'
    assert b'"result":"e"' in changes[1].line(1)


def test_fair_queue_serves_accounts_round_robin():
    q = FairQueue()
    for i in range(100):
        q.put(1, f"big{i}")
    q.put(2, "small0")
    q.put(2, "small1")
    order = [q.pop()[1] for _ in range(6)]
    assert order[:4] == ["big0", "small0", "big1", "small1"]
    assert q.size == 96


def sent(lane: Lane) -> list[tuple[int, str]]:
    """The new tasks the lane sends downloading now (``Lane.prefetch_next``)."""
    picked = []
    while (pick := lane.prefetch_next()) is not None:
        picked.append(pick)
    return picked


def test_an_account_cannot_take_the_last_slot_while_another_waits():
    async def scenario():
        lane = Lane("heavy", 2)  # prefetch: 3
        for i in range(5):
            lane.queue.put(1, f"a{i}")
        assert lane.take() is None  # a new task downloads first: it holds no slot yet
        assert sent(lane) == [(1, "a0"), (1, "a1"), (1, "a2")]  # a3, a4 wait
        a = {key: lane.come_back(1, key) for key in ("a0", "a1", "a2")}
        assert lane.take() is None
        assert a["a0"].done() and a["a1"].done()  # nobody else waits: both slots are A's
        assert sent(lane) == [(1, "a3"), (1, "a4")]  # two of its tasks started: room again
        lane.release(1)  # a0 ends
        lane.queue.put(2, "b0")
        lane.queue.put(2, "b1")
        assert sent(lane) == [(2, "b0"), (2, "b1")]
        b0, b1 = lane.come_back(2, "b0"), lane.come_back(2, "b1")
        assert lane.take() is None and b0.done() and not a["a2"].done()
        lane.release(2)
        lane.release(1)
        # B holds nothing now and A nothing: A's turn, then B's.
        assert lane.take() is None and a["a2"].done() and b1.done()

    asyncio.run(scenario())


def test_a_task_back_from_a_download_waits_its_accounts_turn():
    async def scenario():
        lane = Lane("batch", 1)
        lane.queue.put(1, "a")
        lane.queue.put(2, "b")
        assert sent(lane) == [(1, "a"), (2, "b")]
        a = lane.come_back(1, "a")
        assert lane.take() is None and a.done()
        b = lane.come_back(2, "b")
        lane.queue.put(1, "a2")
        assert sent(lane) == [(1, "a2")]
        a2 = lane.come_back(1, "a2")  # back before b's turn comes: it still waits for it
        lane.release(1)
        assert lane.take() is None and b.done() and not a2.done()
        lane.release(2)
        assert lane.take() is None and a2.done()

    asyncio.run(scenario())


def test_a_quiet_accounts_task_goes_before_the_busy_accounts_next():
    """Account 1 keeps the one slot busy with a backlog; account 2 asks for one task while
    a0 runs: it downloads at once and starts when a0 ends, before a1 (which was back from
    its download first)."""

    async def scenario():
        lane = Lane("batch", 1)
        for i in range(4):
            lane.queue.put(1, f"a{i}")
        assert sent(lane) == [(1, "a0"), (1, "a1")]
        a0, a1 = lane.come_back(1, "a0"), lane.come_back(1, "a1")
        assert lane.take() is None and a0.done()
        assert sent(lane) == [(1, "a2")]
        lane.queue.put(2, "b0")
        assert sent(lane) == [(2, "b0")]  # no slot is free: it downloads all the same
        b0 = lane.come_back(2, "b0")
        lane.release(1)
        assert lane.take() is None and b0.done() and not a1.done()
        lane.release(2)
        assert lane.take() is None and a1.done()

    asyncio.run(scenario())


def test_a_cancelled_key_leaves_the_queue():
    q = FairQueue()
    q.put(1, "a0")
    q.put(2, "b0")
    q.put(1, "a1")
    assert q.discard("b0") and not q.discard("b0")
    assert q.size == 2 and q.accounts() == [1]
    assert [q.pop()[1], q.pop()[1]] == ["a0", "a1"] and q.pop() is None


def test_an_account_downloads_no_more_than_its_prefetch_ahead():
    async def scenario():
        lane = Lane("batch", 1)  # prefetch: 2
        for i in range(5):
            lane.queue.put(1, f"a{i}")
        assert sent(lane) == [(1, "a0"), (1, "a1")]  # a2.. wait, downloading nothing
        a0 = lane.come_back(1, "a0")
        assert lane.take() is None and a0.done()
        assert sent(lane) == [(1, "a2")]

    asyncio.run(scenario())


def test_an_accounts_tasks_start_in_the_order_they_were_dispatched():
    async def scenario():
        lane = Lane("batch", 1)
        for key in ("a0", "a1"):
            lane.queue.put(1, key)
        assert sent(lane) == [(1, "a0"), (1, "a1")]
        younger = lane.come_back(1, "a1")  # a1's download ends first
        assert lane.take() is None and not younger.done()  # it waits for a0, the older
        older = lane.come_back(1, "a0")
        assert lane.take() is None and older.done() and not younger.done()
        lane.release(1)
        assert lane.take() is None and younger.done()

    asyncio.run(scenario())


def test_in_the_light_lane_a_fast_source_need_not_wait_for_a_slow_one():
    async def scenario():
        lane = Lane("light", 1, prefetch=False)
        for key in ("a0", "a1"):
            lane.queue.put(1, key)
        assert sent(lane) == []  # light work holds its slot from the start
        assert lane.take() == (1, "a0")
        lane.lend(1, "a0")
        assert lane.take() == (1, "a1")
        lane.lend(1, "a1")
        fast = lane.come_back(1, "a1")
        assert lane.take() is None and fast.done()

    asyncio.run(scenario())


def test_an_account_at_its_max_running_waits_while_slots_are_free():
    async def scenario():
        limits = {1: 1}
        lane = Lane("batch", 3, limit=lambda account: limits.get(account, 0))
        for i in range(3):
            lane.queue.put(1, f"a{i}")
        assert sent(lane) == [(1, "a0"), (1, "a1"), (1, "a2")]
        a = [lane.come_back(1, f"a{i}") for i in range(3)]
        # Two slots free, but account 1 runs its one task.
        assert lane.take() is None and a[0].done() and not a[1].done()
        lane.queue.put(2, "b0")
        assert sent(lane) == [(2, "b0")]
        b0 = lane.come_back(2, "b0")
        assert lane.take() is None and b0.done()
        limits.clear()
        assert lane.take() is None and a[1].done()

    asyncio.run(scenario())


def test_referrer_patterns():
    assert auth.referrer_allowed(("*",), None)
    assert not auth.referrer_allowed(("example.com",), None)
    assert auth.referrer_allowed(("https://*.example.com/*",), "https://a.example.com/x")
    assert auth.referrer_allowed(("*.example.com",), "https://a.example.com/x")
    assert not auth.referrer_allowed(("*.example.com",), "https://example.com.evil.test/")
    assert not auth.referrer_allowed(("example.com",), "https://evil.test/?example.com")
    # The path and query are the attacker's: they never count.
    assert not auth.referrer_allowed(("*.example.com",), "https://evil.test/x.example.com")
    assert not auth.referrer_allowed(
        ("https://*.example.com/*",), "https://evil.test/?https://a.example.com/x"
    )
    assert not auth.referrer_allowed(("https://*.example.com/*",), "http://a.example.com/")
    assert auth.referrer_allowed(("app.test:8080",), "http://app.test:8080/page")
    assert not auth.referrer_allowed(("app.test",), "null")


def test_credentials_sources():
    none = (None, "header")
    assert located_credentials({"Authorization": "secret ABC"}, {}, {}) == (
        ("ABC", "header"),
        none,
    )
    assert located_credentials({"Authorization": "Api-Key k"}, {}, {}) == (none, ("k", "header"))
    assert located_credentials({}, {"secret": "Q"}, {}) == (("Q", "querystring"), none)
    assert located_credentials({}, {}, {"api_key": "b", "secret": 3}) == (none, ("b", "body"))
    # The header wins over the body, which wins over the query string.
    assert located_credentials({"Authorization": "Secret H"}, {"secret": "Q"}, {"secret": "B"}) == (
        ("H", "header"),
        none,
    )
    assert located_credentials({}, {"secret": "Q"}, {"secret": "B"}) == (("B", "body"), none)


def test_keys_and_secrets_look_like_the_originals():
    key = auth.new_secret()
    assert len(key) == 26 and key.isupper()
    assert len(auth.new_api_key()) == 13


def test_settings_from_env_and_overrides():
    s = Settings.load(env={"DRAGON_PORT": "9000", "DRAGON_ALLOW_PRIVATE_URLS": "yes"}, port=None)
    assert s.port == 9000 and s.allow_private_urls is True
    assert Settings.load(env={"DRAGON_PORT": "9000"}, port=7000).port == 7000
    with pytest.raises(ValueError, match="DRAGON_PORT"):
        Settings.load(env={"DRAGON_PORT": "eighty"})
    with pytest.raises(ValueError, match="SYNCHRONOUS"):
        Settings.load(env={"DRAGON_SQLITE_SYNCHRONOUS": "OFF"})
    # A pre-signed URL lives 1 s to 7 days (S3's limit for signature version 4).
    assert Settings.load(env={"DRAGON_S3_PRESIGN_SECONDS": "604800"}).s3_presign_seconds == 604800
    for bad in ("0", "604801"):
        with pytest.raises(ValueError, match="DRAGON_S3_PRESIGN_SECONDS"):
            Settings.load(env={"DRAGON_S3_PRESIGN_SECONDS": bad})


def test_status_mask_hides_secrets_and_signatures():
    masked = documents.mask(
        {
            "access_token": "t",
            "name": "n",
            "consumer_secret": "s",
            "url": "https://b/o?X-Amz-Signature=1",
            "task_store": {"type": "youtube", "developer_key": "k"},
        }
    )
    assert masked["access_token"] == masked["consumer_secret"] == documents.MASK
    assert masked["name"] == "n"
    assert "Signature" not in masked["url"]
    assert masked["task_store"] == {"type": "youtube", "developer_key": documents.MASK}


def test_token_bucket():
    b = TokenBuckets(rate=10, burst=2)
    assert b.take("a") == 0 and b.take("a") == 0
    assert b.take("a") > 0
    time.sleep(0.15)
    assert b.take("a") == 0


async def test_a_rerun_replaces_its_outputs_instead_of_adding(database, tmp_path):
    from types import SimpleNamespace

    from dragon.stores import Stores
    from dragon.stores.backends import LocalBackend

    await database.insert_account("acct", b"h", "k", "w", [], 0)
    stores = Stores(
        database, LocalBackend(tmp_path / "files", "http://x"), Settings.load(env={}), None
    )
    ctx = SimpleNamespace(key="K" * 26, task_name="test.file", account_id=1)
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_bytes(b"x" * 10)
    second.write_bytes(b"y" * 30)
    store = stores.for_task(None)
    url1 = await store.put(ctx, "output", first, "text/plain")
    url2 = await store.put(ctx, "output", second, "text/plain")
    assert url1 == url2
    rows = await database.list_files(1)
    assert len(rows) == 1 and rows[0]["size"] == 30
    assert await database.usage(1) == 30
    assert (tmp_path / "files" / rows[0]["location"]).read_bytes() == b"y" * 30


def test_task_keys_have_the_original_shape_and_sort_by_creation_time():
    before = time.time_ns() // 1_000_000
    keys = [new_key() for _ in range(1000)]
    after = time.time_ns() // 1_000_000
    assert all(re.fullmatch(r"[A-Z2-7]{26}", k) for k in keys)
    assert len(set(keys)) == len(keys)
    raw = [base64.b32decode(k + "======") for k in keys]
    millis = [int.from_bytes(r[:6], "big") for r in raw]
    assert before <= min(millis) and max(millis) <= after
    assert millis == sorted(millis)
    # The other 10 bytes are random: the keys of one millisecond differ there.
    assert len({r[6:] for r in raw}) == len(raw)


async def test_ended_changes_counts_deletions_and_second_ends_only(database):
    account = await insert(database, "a")
    now = time.time()
    await database.insert_tasks(
        {
            "key": key,
            "account_id": account,
            "task_name": "hello",
            "params": {},
            "status": "queued",
            "queued_at": now - 100,
        }
        for key in ("K1", "K2")
    )
    await database.start_task("K1", "node", now - 99)
    await database.finish_task("K1", "success", {}, None, None, now - 98)
    assert await database.ended_changes() == 0  # a first end changes no ended task
    await database.finish_task("K1", "success", {}, None, None, now - 97)
    assert await database.ended_changes() == 1  # ended again: cached documents are stale
    assert await database.prune_tasks(now - 50, 100) == 1
    assert await database.ended_changes() == 2
    assert await database.prune_tasks(now - 50, 100) == 0  # nothing deleted, no change
    assert await database.ended_changes() == 2
    assert await database.delete_account("a")
    assert await database.ended_changes() == 3
    # Each of those commits counted here too (a reader checks this before the query).
    assert database.ended_changed_here == 3


async def test_the_ended_changes_count_is_read_again_after_a_change_here_or_a_while(
    database, tmp_path
):
    """Another process's change (a second database object on the same file) is read once
    the count is ``fresh`` seconds old; this process's own change at the next read."""
    account = await insert(database, "a")
    now = time.time()
    rows = [
        {"key": k, "account_id": account, "task_name": "hello", "params": {}, "status": "queued"}
        for k in ("K1", "K2")
    ]
    await database.insert_tasks([{**r, "queued_at": now - 100} for r in rows])
    for key in ("K1", "K2"):
        await database.start_task(key, "node", now - 99)
        await database.finish_task(key, "success", {}, None, None, now - 98)
    counts = documents.EndedChanges(database, fresh=0.3)
    assert await counts.read() == 0
    elsewhere = SQLiteDatabase(tmp_path / "t.db")
    elsewhere.open()
    try:
        await elsewhere.finish_task("K1", "success", {}, None, None, now - 97)  # ended again
        assert await database.ended_changes() == 1
        assert await counts.read() == 0  # fresh still: the query is not made
        await asyncio.sleep(0.35)
        assert await counts.read() == 1
    finally:
        elsewhere.close()
    await database.finish_task("K2", "success", {}, None, None, now - 96)  # here
    assert await counts.read() == 2  # at once, though the count is fresh
