"""Every query of the SQLite backend stays flat with history: none scans a large table.

A database with thousands of accounts' worth of ended tasks, files, deliveries and events
is built; then every public method of ``SQLiteDatabase`` runs once while a trace callback
records the SQL that reached SQLite. Each recorded statement is explained, and a plan that
walks a whole table (``SCAN tasks``, as opposed to ``SEARCH tasks USING INDEX``), or every
task an account ever had, fails the test. A method added to the backend without a call here
fails it too, so a new query cannot slip past the check. (No ANALYZE is run, as in
production: the planner must choose well without statistics.)
"""

from __future__ import annotations

import asyncio
import inspect
import re
import sqlite3
import time
from pathlib import Path

import pytest

from dragon.database import sqlite as backend
from dragon.database.interface import Callback
from dragon.database.sqlite import SQLiteDatabase

BIG_TABLES = ("tasks", "files", "outbox", "events", "uploads")
TASKS = 20_000


def fill(path: Path) -> None:
    """Ended tasks, their files and delivered callbacks, written straight with sqlite3."""
    conn = backend.connect(path)
    backend.migrate(conn)
    conn.execute("BEGIN")
    for account in (1, 2):
        conn.execute(
            "INSERT INTO accounts (id, name, secret_hash, api_key, webhook_secret, created_at)"
            " VALUES (?, ?, ?, ?, '', 0)",
            (account, f"a{account}", f"h{account}".encode(), f"k{account}"),
        )
        conn.execute("INSERT INTO usage (account_id, bytes) VALUES (?, 0)", (account,))
    now = time.time()
    conn.executemany(
        "INSERT INTO tasks (key, account_id, task_name, params, status, queued_at,"
        " completed_at, seq) VALUES (?, ?, 'hello', '{}', 'success', ?, ?, ?)",
        [
            (f"T{i:08d}", 1 + i % 2, now - 90 * 86400, now - 90 * 86400 + i, i + 1)
            for i in range(TASKS)
        ],
    )
    conn.executemany(
        "INSERT INTO files (account_id, task_key, output, name, store, location, url, size,"
        " content_type, created_at) VALUES (?, ?, 'output', ?, 'persistent', ?, ?, 10,"
        " 'text/plain', ?)",
        [
            (
                1 + i % 2,
                f"T{i:08d}",
                f"f{i}",
                f"T{i:08d}/f{i}",
                f"http://x/T{i:08d}/f{i}",
                now - 90 * 86400,
            )
            for i in range(0, TASKS, 2)
        ],
    )
    conn.executemany(
        "INSERT INTO outbox (task_key, account_id, url, body, webhook_id, next_at, state,"
        " created_at) VALUES (?, ?, 'http://r/', x'00', ?, ?, 'delivered', ?)",
        [(f"T{i:08d}", 1 + i % 2, f"msg_T{i:08d}", now, now) for i in range(0, TASKS, 4)],
    )
    conn.executemany(
        "INSERT INTO uploads (id, account_id, length, received, created_at, expires_at,"
        " completed_at) VALUES (?, ?, 10, 10, ?, ?, ?)",
        [(f"u{i}", 1 + i % 2, now, now + 86400, now) for i in range(0, TASKS, 2)],
    )
    conn.execute("COMMIT")
    conn.close()


def full_scans(conn: sqlite3.Connection, statement: str) -> list[str]:
    head = statement.lstrip().split(None, 1)[0].upper()
    if head not in ("SELECT", "UPDATE", "DELETE", "INSERT", "WITH"):
        return []
    if " LIMIT " in statement and " WHERE " not in statement:
        return []  # the first rows in key order: bounded by the limit, not by the table
    plan = conn.execute("EXPLAIN QUERY PLAN " + statement).fetchall()
    return [
        row[3]
        for row in plan
        if re.match(rf"SCAN ({'|'.join(BIG_TABLES)})\b(?! USING (COVERING )?INDEX)", row[3])
        # an account's every task, ended ones included, is history too
        or row[3].endswith("USING INDEX tasks_account_status (account_id=?)")
        # a page of tasks is a range of its index in the listing's order, not a sort
        or ("TEMP B-TREE" in row[3] and "ORDER BY queued_at DESC, seq DESC" in statement)
    ]


async def list_every_way(db: SQLiteDatabase, now: float) -> None:
    """A page of tasks by each of its filters and their pairs, with and without a cursor."""
    for filters in (
        {},
        {"statuses": ["error"]},
        {"statuses": ["queued", "executing"]},
        {"task_name": "hello"},
        {"task_name": "hello", "statuses": ["success", "queued"]},
        {"after": now - 86400, "before": now},
        {"statuses": ["success"], "after": now - 86400},
        {"task_name": "hello", "before": now - 86400},
    ):
        for cursor in (None, (now - 90 * 86400, 5000)):
            await db.list_tasks(1, cursor=cursor, limit=20, **filters)


async def overview_every_way(db: SQLiteDatabase, now: float) -> None:
    """The dashboard's counts and timeline, with and without a task name and times."""
    timeline = {"start": now - 3600, "end": now, "bucket": 60.0}
    await db.task_overview(1, task_name=None, after=None, before=None, **timeline)
    await db.task_overview(1, task_name="hello", after=now - 86400, before=now, **timeline)


async def exercise(db: SQLiteDatabase) -> set[str]:
    """Call every public method once; return the names called."""
    now = time.time()
    calls = {
        "insert_account": lambda: db.insert_account("new", b"hnew", "knew", "w", [], 0),
        "update_account": lambda: db.update_account("new", max_active=3, create_rate=5),
        "account_by_name": lambda: db.account_by_name("a1"),
        "account_by_secret_hash": lambda: db.account_by_secret_hash(b"h1"),
        "account_by_api_key": lambda: db.account_by_api_key("k1"),
        "account_by_id": lambda: db.account_by_id(1),
        "list_accounts": lambda: db.list_accounts(),
        "rotate_webhook_secret": lambda: db.rotate_webhook_secret("a1", "w2", now + 60),
        "set_expiration": lambda: db.set_expiration(1, 30),
        "insert_tasks": lambda: db.insert_tasks(
            [
                {
                    "key": "NEW1",
                    "account_id": 1,
                    "task_name": "hello",
                    "params": {},
                    "status": "queued",
                    "queued_at": now,
                }
            ]
        ),
        "get_tasks": lambda: db.get_tasks(["T00000001", "T00000003", "NEW1"], 1),
        "task_ends": lambda: db.task_ends(["T00000001", "T00000003", "NEW1"], 1),
        "ended_changes": lambda: db.ended_changes(),
        "start_task": lambda: db.start_task("NEW1", "node", now, waiting=True),
        "begin_work": lambda: db.begin_work("NEW1", "node", now),
        "account_limits": lambda: db.account_limits(),
        "set_progress": lambda: db.set_progress({"NEW1": 50.0}),
        "set_partial": lambda: db.set_partial("NEW1", {"x": 1}),
        "finish_task": lambda: db.finish_task(
            "NEW1",
            "success",
            {"x": 2},
            None,
            None,
            now,
            Callback("http://r/", lambda row: b"{}", now),
        ),
        "requeue_task": lambda: db.requeue_task("NEW1"),
        "unfinished_tasks": lambda: db.unfinished_tasks(),
        "count_active": lambda: db.count_active(1),
        "insert_file": lambda: db.insert_file(
            1,
            "NEW1",
            "output",
            "n",
            "persistent",
            "NEW1/n",
            "http://x/NEW1/n",
            5,
            "text/plain",
            now,
            None,
            True,
        ),
        "file_for_output": lambda: db.file_for_output("NEW1", "output"),
        "file_by_location": lambda: db.file_by_location("T00000002/f2"),
        "list_files": lambda: db.list_files(1, task_key="T00000002"),
        "file_directories": lambda: db.file_directories(1),
        "usage": lambda: db.usage(1),
        "expired_files": lambda: db.expired_files(now, 10),
        "due_deliveries": lambda: db.due_deliveries(now, 10),
        "next_delivery_time": lambda: db.next_delivery_time(),
        "record_delivery": lambda: db.record_delivery(1, "delivered", 1, now, 200, None),
        "deliveries_for": lambda: db.deliveries_for(["T00000004", "NEW1"]),
        "release_deliveries": lambda: db.release_deliveries([1, 2], now),
        "delete_files": lambda: db.delete_files([1, 2]),
        "prune_tasks": lambda: db.prune_tasks(now - 30 * 86400, 100),
        "delete_account": lambda: db.delete_account("new"),
        "cancel_tasks": lambda: db.cancel_tasks(
            ["T00000001", "NEW1"],
            1,
            now,
            "cancelled",
            lambda row: Callback("http://r/", lambda row: b"{}", now),
            lambda row: {},
        ),
        "task_files": lambda: db.task_files("T00000002"),
        "insert_upload": lambda: db.insert_upload("new", 1, 10, None, now, now + 60, 1000),
        "upload": lambda: db.upload("new"),
        "advance_upload": lambda: db.advance_upload("new", 0, 10, now, now + 60),
        "number_upload_part": lambda: db.number_upload_part("new"),
        "store_upload_parts": lambda: db.store_upload_parts("new", 10, 10, "[]", None),
        "complete_upload": lambda: db.complete_upload("new", now, now + 60),
        "expired_uploads": lambda: db.expired_uploads(now, 10),
        "delete_uploads": lambda: db.delete_uploads(["new", "u2"]),
        "put_template": lambda: db.put_template(1, "card", "<movie/>", now),
        "template": lambda: db.template(1, "card"),
        "templates": lambda: db.templates(1),
        "delete_template": lambda: db.delete_template(1, "card"),
        "list_tasks": lambda: list_every_way(db, now),
        "task_overview": lambda: overview_every_way(db, now),
    }
    optional = {
        "task_diagnostics": lambda: db.task_diagnostics(["T00000001"]),
        "recent_run_times": lambda: db.recent_run_times("hello", 20),
        "events_after": lambda: db.events_after(1, 0, 10),
        "event_horizon": lambda: db.event_horizon(),
        "prune_events": lambda: db.prune_events(now - 7 * 86400, 100),
    }
    for name, call in {**calls, **optional}.items():
        if hasattr(db, name):
            await call()
    return set(calls) | {n for n in optional if hasattr(db, n)}


@pytest.mark.timeout(300)
def test_no_query_scans_a_large_table(tmp_path, monkeypatch):
    path = tmp_path / "plans.db"
    fill(path)
    statements: list[str] = []
    real_connect = backend.connect

    def traced(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(backend, "connect", traced)
    db = SQLiteDatabase(path)
    db.open()
    try:
        called = asyncio.run(exercise(db))
    finally:
        db.close()
    public = {
        name
        for name, member in inspect.getmembers(SQLiteDatabase)
        if not name.startswith("_") and inspect.iscoroutinefunction(member)
    }
    assert public <= called, f"not exercised here: {sorted(public - called)}"
    explain = real_connect(path)
    scans = {s: found for s in dict.fromkeys(statements) if (found := full_scans(explain, s))}
    explain.close()
    assert not scans, "full scans:\n" + "\n".join(f"{v}: {k[:200]}" for k, v in scans.items())
