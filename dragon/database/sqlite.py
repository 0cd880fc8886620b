"""The SQLite backend: WAL mode behind one writer thread with group commit.

Why a thread of our own rather than a connection per request: SQLite allows one writer at
a time, and ``synchronous=FULL`` makes each commit an fsync. Every write is queued to a
single writer thread that takes everything waiting, runs it in one ``BEGIN IMMEDIATE``
transaction and commits once, so concurrent creates share an fsync (group commit). A write
resolves its future only after the commit: callers never see, publish or acknowledge
uncommitted state. Reads go through a small pool of reader threads, each with its own
connection (WAL lets readers run beside the writer).

Point reads that an index bounds (credentials, a task's status, a store's earlier output)
run inline on the calling thread, the event loop included: a primary-key lookup in WAL mode
takes microseconds and never waits for the writer, and a thread hop costs more than the query.

This module implements ``dragon.database.interface.Database``; nothing else in dragon writes
SQL for SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from dragon.database.interface import AccountExists, Busy, Callback, DiskFull, Row, account_changes

log = logging.getLogger("dragon.database")

# Each entry migrates the schema from version i to i + 1. Append; never edit a shipped one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE accounts (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        secret_hash BLOB NOT NULL UNIQUE,
        api_key TEXT NOT NULL UNIQUE,
        webhook_secret TEXT NOT NULL,
        referrers TEXT NOT NULL DEFAULT '[]',
        max_active INTEGER NOT NULL DEFAULT 0,
        expiration_days INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE TABLE tasks (
        key TEXT PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        task_name TEXT NOT NULL,
        params TEXT NOT NULL,
        status TEXT NOT NULL,
        progress REAL,
        result TEXT,
        error TEXT,
        error_code TEXT,
        queued_at REAL NOT NULL,
        started_at REAL,
        completed_at REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        owner TEXT,
        seq INTEGER NOT NULL
    );
    CREATE INDEX tasks_active ON tasks(status, seq) WHERE status IN ('queued', 'executing');
    CREATE INDEX tasks_account ON tasks(account_id, status);
    """,
    """
    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        task_key TEXT NOT NULL,
        name TEXT NOT NULL,
        store TEXT NOT NULL,
        location TEXT NOT NULL,
        url TEXT NOT NULL,
        size INTEGER NOT NULL,
        content_type TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL,
        UNIQUE (task_key, name)
    );
    CREATE INDEX files_account ON files(account_id, store, task_key);
    CREATE INDEX files_expiry ON files(expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE usage (
        account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        bytes INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        task_key TEXT NOT NULL,
        account_id INTEGER NOT NULL,
        url TEXT NOT NULL,
        body BLOB NOT NULL,
        webhook_id TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        last_status INTEGER,
        last_error TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX outbox_pending ON outbox(next_at) WHERE state = 'pending';
    CREATE INDEX outbox_task ON outbox(task_key);
    """,
    """
    ALTER TABLE files ADD COLUMN output TEXT;
    CREATE UNIQUE INDEX files_output ON files(task_key, output);
    """,
    """
    ALTER TABLE accounts ADD COLUMN previous_webhook_secret TEXT;
    ALTER TABLE accounts ADD COLUMN previous_webhook_secret_until REAL;
    """,
    # Indexes that keep every query flat with months of history: the next sequence number,
    # ended tasks by age (retention), files by location (the file server), by URL (deletes)
    # and by age (account expiration); per-account create rates.
    """
    CREATE INDEX tasks_seq ON tasks(seq);
    CREATE INDEX tasks_completed ON tasks(completed_at) WHERE completed_at IS NOT NULL;
    CREATE INDEX files_location ON files(location);
    CREATE INDEX files_url ON files(url);
    CREATE INDEX files_created ON files(account_id, store, created_at);
    ALTER TABLE accounts ADD COLUMN create_rate REAL;
    """,
    # The event feed (/v2/events): one row per recorded status change, written in the
    # transaction of the change; ``id`` is the feed's cursor (AUTOINCREMENT: never reused,
    # even once pruning empties the table). ``event_horizon`` remembers the newest pruned
    # id, so a cursor older than retention is told so instead of silently skipping.
    # ``tasks.diagnostics``: why a failed task failed (stage, tool argv, stderr...).
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        task_key TEXT NOT NULL,
        task_name TEXT NOT NULL,
        created_at REAL NOT NULL,
        document TEXT NOT NULL
    );
    CREATE INDEX events_account ON events(account_id, id);
    CREATE TABLE event_horizon (pruned_through INTEGER NOT NULL);
    INSERT INTO event_horizon (pruned_through) VALUES (0);
    ALTER TABLE tasks ADD COLUMN diagnostics TEXT;
    """,
    # Deleting an account deletes its undelivered callbacks without a scan.
    """
    CREATE INDEX outbox_account ON outbox(account_id);
    """,
    # Bumped by every transaction that deletes tasks (retention, a deleted account) or
    # ends an ended task again: a poll answered from cached documents of ended tasks reads
    # this one number instead of their rows.
    """
    CREATE TABLE ended_changes (count INTEGER NOT NULL);
    INSERT INTO ended_changes (count) VALUES (0);
    """,
)

TASK_COLUMNS = (
    "key, account_id, task_name, params, status, progress, result, error, error_code, "
    "queued_at, started_at, completed_at, attempts, owner"
)


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def connect(path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; each step in its own transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for i in range(version, len(MIGRATIONS)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[i].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={i + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


T = TypeVar("T")
Op = Callable[[sqlite3.Connection], T]
# A queued write: the operation, the loop that waits for it, and its future.
Queued = tuple[Op[Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]
Render = Callable[[Row], Any]  # a changed row -> the status document its event records


class SQLiteDatabase:
    """``Database`` on one SQLite file (see the module docstring for the threads)."""

    def __init__(self, path: Path, synchronous: str = "FULL", readers: int = 2) -> None:
        self.path = path
        self.synchronous = synchronous
        self._queue: queue.SimpleQueue[Queued | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="dragon-db-read")
        self._local = threading.local()
        self._loop_conn: sqlite3.Connection | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path, self.synchronous)
        migrate(conn)
        self._writer = threading.Thread(
            target=self._write_loop, args=(conn,), name="dragon-db-write", daemon=True
        )
        self._writer.start()

    def close(self) -> None:
        if self._writer:
            self._queue.put(None)
            self._writer.join()
            self._writer = None
        self._readers.shutdown(wait=True)
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None

    # -- writes ---------------------------------------------------------------------------
    def _write(self, op: Op[T]) -> asyncio.Future[T]:
        """Queue ``op(conn)`` for the writer; the future resolves after its commit."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((op, loop, future))
        return future

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                conn.close()
                return
            batch = [first]
            stop = False
            # Take what is already waiting: one transaction, one fsync for all of them.
            while len(batch) < 500:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                self._commit_batch(conn, batch)
            except BaseException as exc:  # the writer must outlive any one batch
                if isinstance(exc, DiskFull):
                    log.error("database write failed: %s", exc)
                else:
                    log.exception("database write failed")
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                for _, loop, future in batch:
                    loop.call_soon_threadsafe(_settle, future, False, exc)
            if stop:
                conn.close()
                return

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[Queued]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            err = _typed(exc)
            for _, loop, future in batch:
                loop.call_soon_threadsafe(_settle, future, False, err)
            return
        for op, _, _ in batch:
            conn.execute("SAVEPOINT op")
            try:
                outcomes.append((True, op(conn)))
                conn.execute("RELEASE op")
            except Exception as exc:  # one bad op must not sink the others' commit
                if isinstance(_typed(exc), DiskFull):
                    # SQLite may have rolled the whole transaction back: fail the batch.
                    raise _typed(exc) from exc
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                outcomes.append((False, exc))
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            outcomes = [(False, _typed(exc))] * len(batch)
        for (ok, value), (_, loop, future) in zip(outcomes, batch, strict=True):
            loop.call_soon_threadsafe(_settle, future, ok, value)

    # -- reads ----------------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path, self.synchronous)
        return conn

    async def _read(self, op: Op[T]) -> T:
        """Run a read on a reader thread: for scans and anything not bounded by an index."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: op(self._reader()))

    def _lookup(self, op: Op[T]) -> T:
        """Run an indexed point read on the calling thread (never a scan)."""
        conn = self._loop_conn
        if conn is None:
            conn = self._loop_conn = connect(self.path, self.synchronous)
        return op(conn)

    # -- accounts -------------------------------------------------------------------------
    async def insert_account(
        self,
        name: str,
        secret_hash: bytes,
        api_key: str,
        webhook_secret: str,
        referrers: list[str],
        max_active: int,
        create_rate: float | None = None,
    ) -> int:
        def op(c: sqlite3.Connection) -> int:
            try:
                cur = c.execute(
                    "INSERT INTO accounts (name, secret_hash, api_key, webhook_secret,"
                    " referrers, max_active, create_rate, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        secret_hash,
                        api_key,
                        webhook_secret,
                        dumps(referrers),
                        max_active,
                        create_rate,
                        time.time(),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise AccountExists(name) from exc
            c.execute("INSERT INTO usage (account_id, bytes) VALUES (?, 0)", (cur.lastrowid,))
            return int(cur.lastrowid or 0)

        return await self._write(op)

    async def update_account(
        self,
        name: str,
        *,
        referrers: list[str] | None = None,
        max_active: int | None = None,
        create_rate: float | None = None,
    ) -> bool:
        changes = account_changes(referrers, max_active, create_rate)
        if not changes:
            return await self.account_by_name(name) is not None
        assignments = ", ".join(f"{column} = ?" for column in changes)
        return await self._write(
            lambda c: (
                c.execute(
                    f"UPDATE accounts SET {assignments} WHERE name = ?", (*changes.values(), name)
                ).rowcount
                > 0
            )
        )

    async def account_by_name(self, name: str) -> Row | None:
        return await self._read(
            lambda c: c.execute("SELECT * FROM accounts WHERE name = ?", (name,)).fetchone()
        )

    async def account_by_secret_hash(self, secret_hash: bytes) -> Row | None:
        return self._lookup(
            lambda c: c.execute(
                "SELECT * FROM accounts WHERE secret_hash = ?", (secret_hash,)
            ).fetchone()
        )

    async def account_by_api_key(self, api_key: str) -> Row | None:
        return self._lookup(
            lambda c: c.execute("SELECT * FROM accounts WHERE api_key = ?", (api_key,)).fetchone()
        )

    async def account_by_id(self, account_id: int) -> Row | None:
        return self._lookup(
            lambda c: c.execute("SELECT * FROM accounts WHERE id = ?", (account_id,)).fetchone()
        )

    async def list_accounts(self) -> list[Row]:
        return await self._read(
            lambda c: c.execute("SELECT * FROM accounts ORDER BY id").fetchall()
        )

    async def delete_account(self, name: str) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            c.execute(
                "DELETE FROM outbox WHERE account_id = (SELECT id FROM accounts WHERE name = ?)",
                (name,),
            )
            if c.execute("DELETE FROM accounts WHERE name = ?", (name,)).rowcount == 0:
                return False
            c.execute("UPDATE ended_changes SET count = count + 1")
            return True

        return await self._write(op)

    async def rotate_webhook_secret(self, name: str, secret: str, keep_old_until: float) -> bool:
        return await self._write(
            lambda c: (
                c.execute(
                    "UPDATE accounts SET previous_webhook_secret = webhook_secret,"
                    " previous_webhook_secret_until = ?, webhook_secret = ? WHERE name = ?",
                    (keep_old_until, secret, name),
                ).rowcount
                > 0
            )
        )

    async def set_expiration(self, account_id: int, days: int) -> None:
        await self._write(
            lambda c: c.execute(
                "UPDATE accounts SET expiration_days = ? WHERE id = ?", (days, account_id)
            )
        )

    # -- tasks ----------------------------------------------------------------------------
    async def insert_tasks(
        self, rows: Iterable[dict[str, Any]], errbacks: Iterable[dict[str, Any]] = ()
    ) -> None:
        def op(c: sqlite3.Connection) -> None:
            seq = c.execute("SELECT COALESCE(MAX(seq), 0) FROM tasks").fetchone()[0]
            c.executemany(
                "INSERT INTO tasks (key, account_id, task_name, params, status, error,"
                " error_code, queued_at, completed_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r["key"],
                        r["account_id"],
                        r["task_name"],
                        dumps(r["params"]),
                        r["status"],
                        dumps(r["error"]) if r.get("error") is not None else None,
                        r.get("error_code"),
                        r["queued_at"],
                        r.get("completed_at"),
                        seq + i + 1,
                    )
                    for i, r in enumerate(rows)
                ],
            )
            c.executemany(
                "INSERT INTO events (account_id, task_key, task_name, created_at, document)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        r["account_id"],
                        r["key"],
                        r["task_name"],
                        r["queued_at"],
                        dumps(r["document"]),
                    )
                    for r in rows
                    if r.get("document") is not None
                ],
            )
            for e in errbacks:
                _insert_outbox(c, **e)

        await self._write(op)

    async def get_tasks(self, keys: list[str], account_id: int) -> list[Row]:
        marks = ",".join("?" * len(keys))
        # "+account_id" keeps the planner on the primary key: with the account's index it
        # would walk every task the account ever had.
        return self._lookup(
            lambda c: c.execute(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE key IN ({marks}) AND +account_id = ?",
                (*keys, account_id),
            ).fetchall()
        )

    async def task_ends(self, keys: list[str], account_id: int) -> list[Row]:
        marks = ",".join("?" * len(keys))
        return self._lookup(
            lambda c: c.execute(
                "SELECT key, status, completed_at FROM tasks"
                f" WHERE key IN ({marks}) AND +account_id = ?",
                (*keys, account_id),
            ).fetchall()
        )

    async def ended_changes(self) -> int:
        return self._lookup(lambda c: c.execute("SELECT count FROM ended_changes").fetchone()[0])

    async def start_task(
        self, key: str, owner: str, now: float, render: Render | None = None
    ) -> Row | None:
        def op(c: sqlite3.Connection) -> Row | None:
            changed = c.execute(
                "UPDATE tasks SET status = 'executing', started_at = ?, attempts = attempts + 1,"
                " owner = ?, progress = 0 WHERE key = ? AND status = 'queued'",
                (now, owner, key),
            ).rowcount
            row = c.execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE key = ?", (key,)).fetchone()
            if changed and render is not None:
                _row_event(c, row, now, render(row))
            return row

        return await self._write(op)

    async def set_progress(
        self, updates: dict[str, float], documents: dict[str, Any] | None = None
    ) -> None:
        def op(c: sqlite3.Connection) -> None:
            c.executemany(
                "UPDATE tasks SET progress = ? WHERE key = ? AND status = 'executing'",
                [(v, k) for k, v in updates.items()],
            )
            now = time.time()
            for key, document in (documents or {}).items():
                _insert_event(c, key, now, document, executing=True)

        await self._write(op)

    async def set_partial(self, key: str, result: Any, document: Any = None) -> None:
        def op(c: sqlite3.Connection) -> None:
            changed = c.execute(
                "UPDATE tasks SET result = ? WHERE key = ? AND status = 'executing'",
                (dumps(result), key),
            ).rowcount
            if changed and document is not None:
                _insert_event(c, key, time.time(), document)

        await self._write(op)

    async def finish_task(
        self,
        key: str,
        status: str,
        result: Any,
        error: Any,
        error_code: str | None,
        now: float,
        callback: Callback | None = None,
        render: Render | None = None,
        diagnostics: Any = None,
    ) -> Row | None:
        def op(c: sqlite3.Connection) -> Row | None:
            c.execute(  # before the end is written: ending an ended task again is a change
                "UPDATE ended_changes SET count = count + 1 WHERE EXISTS"
                " (SELECT 1 FROM tasks WHERE key = ? AND completed_at IS NOT NULL)",
                (key,),
            )
            c.execute(
                "UPDATE tasks SET status = ?, result = ?, error = ?, error_code = ?,"
                " completed_at = ?, progress = NULL, diagnostics = ? WHERE key = ?",
                (
                    status,
                    dumps(result) if result is not None else None,
                    dumps(error) if error is not None else None,
                    error_code,
                    now,
                    dumps(diagnostics) if diagnostics is not None else None,
                    key,
                ),
            )
            row = c.execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE key = ?", (key,)).fetchone()
            if row is not None and render is not None:
                _row_event(c, row, now, render(row))
            if callback is not None and row is not None:
                _insert_outbox(
                    c,
                    key,
                    row["account_id"],
                    callback.url,
                    callback.render(row),
                    f"msg_{key}",
                    callback.next_at,
                )
            return row

        return await self._write(op)

    async def requeue_task(self, key: str, render: Render | None = None) -> None:
        def op(c: sqlite3.Connection) -> None:
            changed = c.execute(
                "UPDATE tasks SET status = 'queued', progress = NULL, result = NULL, owner = NULL"
                " WHERE key = ? AND status = 'executing'",
                (key,),
            ).rowcount
            if changed and render is not None:
                row = c.execute(
                    f"SELECT {TASK_COLUMNS} FROM tasks WHERE key = ?", (key,)
                ).fetchone()
                _row_event(c, row, time.time(), render(row))

        await self._write(op)

    async def unfinished_tasks(self) -> list[Row]:
        return await self._read(
            lambda c: c.execute(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE status IN ('queued', 'executing')"
                " ORDER BY seq"
            ).fetchall()
        )

    async def prune_tasks(self, ended_before: float, limit: int) -> int:
        def op(c: sqlite3.Connection) -> int:
            keys = [
                r[0]
                for r in c.execute(
                    "SELECT key FROM tasks WHERE completed_at < ? LIMIT ?", (ended_before, limit)
                )
            ]
            if keys:
                marks = ",".join("?" * len(keys))
                c.execute(
                    f"DELETE FROM outbox WHERE task_key IN ({marks}) AND state != 'pending'", keys
                )
                c.execute(f"DELETE FROM tasks WHERE key IN ({marks})", keys)
                c.execute("UPDATE ended_changes SET count = count + 1")
            return len(keys)

        return await self._write(op)

    async def task_diagnostics(self, keys: list[str]) -> dict[str, Any]:
        marks = ",".join("?" * len(keys))
        return await self._read(
            lambda c: {
                r[0]: orjson.loads(r[1])
                for r in c.execute(
                    f"SELECT key, diagnostics FROM tasks WHERE key IN ({marks})"
                    " AND diagnostics IS NOT NULL",
                    keys,
                )
            }
        )

    async def recent_run_times(self, task_name: str, limit: int) -> list[float]:
        return await self._read(
            lambda c: [
                r[0]
                for r in c.execute(
                    "SELECT completed_at - started_at FROM tasks WHERE completed_at IS NOT NULL"
                    " AND task_name = ? AND status = 'success' AND started_at IS NOT NULL"
                    " ORDER BY completed_at DESC LIMIT ?",
                    (task_name, limit),
                )
            ]
        )

    # -- the event feed -------------------------------------------------------------------
    async def events_after(self, account_id: int, after: int, limit: int) -> list[Row]:
        return await self._read(
            lambda c: c.execute(
                "SELECT id, task_key, task_name, document FROM events"
                " WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?",
                (account_id, after, limit),
            ).fetchall()
        )

    async def event_horizon(self) -> int:
        return self._lookup(
            lambda c: c.execute("SELECT pruned_through FROM event_horizon").fetchone()[0]
        )

    async def prune_events(self, before: float, limit: int) -> int:
        def op(c: sqlite3.Connection) -> int:
            # Pruning takes a prefix of the id order (ids grow with time), so every cursor
            # at or below the horizon has lost changes and every cursor above it has not.
            last = None
            for event_id, created_at in c.execute(
                "SELECT id, created_at FROM events ORDER BY id LIMIT ?", (limit,)
            ):
                if created_at >= before:
                    break
                last = event_id
            if last is None:
                return 0
            count = c.execute("DELETE FROM events WHERE id <= ?", (last,)).rowcount
            c.execute("UPDATE event_horizon SET pruned_through = MAX(pruned_through, ?)", (last,))
            return count

        return await self._write(op)

    async def count_active(self, account_id: int) -> int:
        return await self._read(
            lambda c: c.execute(
                "SELECT COUNT(*) FROM tasks"
                " WHERE account_id = ? AND status IN ('queued', 'executing')",
                (account_id,),
            ).fetchone()[0]
        )

    # -- files and usage ------------------------------------------------------------------
    async def insert_file(
        self,
        account_id: int,
        task_key: str,
        output: str,
        name: str,
        store: str,
        location: str,
        url: str,
        size: int,
        content_type: str,
        now: float,
        expires_at: float | None,
        counted: bool,
    ) -> None:
        """A task run again (after a crash) stores its outputs again under the same names:
        the old row is replaced and its size taken off the usage, so nothing counts twice."""

        def op(c: sqlite3.Connection) -> None:
            old = c.execute(
                "SELECT size, store FROM files WHERE task_key = ? AND output = ?",
                (task_key, output),
            ).fetchone()
            if old and old["store"] == "persistent":
                c.execute(
                    "UPDATE usage SET bytes = bytes - ? WHERE account_id = ?",
                    (old["size"], account_id),
                )
            c.execute("DELETE FROM files WHERE task_key = ? AND output = ?", (task_key, output))
            c.execute(
                "INSERT INTO files (account_id, task_key, output, name, store, location, url,"
                " size, content_type, created_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    account_id,
                    task_key,
                    output,
                    name,
                    store,
                    location,
                    url,
                    size,
                    content_type,
                    now,
                    expires_at,
                ),
            )
            if counted:
                c.execute(
                    "UPDATE usage SET bytes = bytes + ? WHERE account_id = ?", (size, account_id)
                )

        await self._write(op)

    async def file_for_output(self, task_key: str, output: str) -> Row | None:
        return self._lookup(
            lambda c: c.execute(
                "SELECT * FROM files WHERE task_key = ? AND output = ?", (task_key, output)
            ).fetchone()
        )

    async def file_by_location(self, location: str) -> Row | None:
        return await self._read(
            lambda c: c.execute("SELECT * FROM files WHERE location = ?", (location,)).fetchone()
        )

    async def list_files(
        self, account_id: int, task_key: str | None = None, urls: list[str] | None = None
    ) -> list[Row]:
        sql = "SELECT * FROM files WHERE account_id = ? AND store = 'persistent'"
        args: list[Any] = [account_id]
        if urls is not None:
            sql = (
                "SELECT * FROM files WHERE url IN ({}) AND +account_id = ? AND store = 'persistent'"
            ).format(",".join("?" * len(urls)))
            args = [*urls, account_id]
        elif task_key is not None:
            sql += " AND task_key = ?"
            args.append(task_key)
        sql += " ORDER BY task_key, name"
        return await self._read(lambda c: c.execute(sql, args).fetchall())

    async def file_directories(self, account_id: int) -> list[str]:
        return await self._read(
            lambda c: [
                r[0]
                for r in c.execute(
                    "SELECT DISTINCT task_key FROM files"
                    " WHERE account_id = ? AND store = 'persistent' ORDER BY task_key",
                    (account_id,),
                )
            ]
        )

    async def delete_files(self, ids: list[int]) -> int:
        def op(c: sqlite3.Connection) -> int:
            freed = 0
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                rows = c.execute(
                    f"SELECT account_id, size, store FROM files WHERE id IN ({marks})", chunk
                ).fetchall()
                for r in rows:
                    if r["store"] == "persistent":
                        c.execute(
                            "UPDATE usage SET bytes = bytes - ? WHERE account_id = ?",
                            (r["size"], r["account_id"]),
                        )
                        freed += r["size"]
                c.execute(f"DELETE FROM files WHERE id IN ({marks})", chunk)
            return freed

        return await self._write(op)

    async def usage(self, account_id: int) -> int:
        return await self._read(
            lambda c: (
                c.execute("SELECT bytes FROM usage WHERE account_id = ?", (account_id,)).fetchone()
                or [0]
            )[0]
        )

    async def expired_files(self, now: float, limit: int = 500) -> list[Row]:
        """Files past their own expiry or their account's expiration setting."""

        def op(c: sqlite3.Connection) -> list[Row]:
            rows = c.execute(
                "SELECT * FROM files WHERE expires_at <= ? LIMIT ?", (now, limit)
            ).fetchall()
            for account in c.execute(
                "SELECT id, expiration_days FROM accounts WHERE expiration_days > 0"
            ):
                if len(rows) >= limit:
                    break
                rows += c.execute(
                    "SELECT * FROM files WHERE account_id = ? AND store = 'persistent'"
                    " AND created_at <= ? AND (expires_at IS NULL OR expires_at > ?) LIMIT ?",
                    (
                        account["id"],
                        now - account["expiration_days"] * 86400.0,
                        now,
                        limit - len(rows),
                    ),
                ).fetchall()
            return rows

        return await self._read(op)

    # -- callback outbox ------------------------------------------------------------------
    async def due_deliveries(self, now: float, limit: int = 100) -> list[Row]:
        # In turns across accounts (each one's oldest first, then each one's second...), so
        # one account's backlog cannot fill the batch and hide another's deliveries.
        return await self._read(
            lambda c: c.execute(
                "SELECT * FROM (SELECT o.*, a.webhook_secret,"
                " CASE WHEN a.previous_webhook_secret_until > ?"
                " THEN a.previous_webhook_secret END AS previous_webhook_secret,"
                " ROW_NUMBER() OVER (PARTITION BY o.account_id ORDER BY o.next_at) AS turn"
                " FROM outbox o JOIN accounts a ON a.id = o.account_id"
                " WHERE o.state = 'pending' AND o.next_at <= ?) ORDER BY turn, next_at LIMIT ?",
                (now, now, limit),
            ).fetchall()
        )

    async def next_delivery_time(self) -> float | None:
        return await self._read(
            lambda c: c.execute(
                "SELECT MIN(o.next_at) FROM outbox o JOIN accounts a ON a.id = o.account_id"
                " WHERE o.state = 'pending'"
            ).fetchone()[0]
        )

    async def record_delivery(
        self,
        delivery_id: int,
        state: str,
        attempts: int,
        next_at: float,
        last_status: int | None,
        last_error: str | None,
    ) -> None:
        await self._write(
            lambda c: c.execute(
                "UPDATE outbox SET state = ?, attempts = ?, next_at = ?, last_status = ?,"
                " last_error = ? WHERE id = ?",
                (state, attempts, next_at, last_status, last_error, delivery_id),
            )
        )

    async def release_deliveries(self, ids: list[int], now: float) -> None:
        marks = ",".join("?" * len(ids))
        await self._write(
            lambda c: c.execute(
                f"UPDATE outbox SET next_at = ? WHERE id IN ({marks}) AND state = 'pending'",
                (now, *ids),
            )
        )

    async def deliveries_for(self, keys: list[str]) -> list[Row]:
        marks = ",".join("?" * len(keys))
        return await self._read(
            lambda c: c.execute(
                "SELECT task_key, url, state, attempts, next_at, last_status, last_error,"
                f" webhook_id FROM outbox WHERE task_key IN ({marks}) ORDER BY id",
                keys,
            ).fetchall()
        )


def _typed(exc: Exception) -> Exception:
    """SQLite's lock and full-disk failures as the protocol's ``Busy`` and ``DiskFull``."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError):
        if "locked" in text or "busy" in text:
            return Busy(text)
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or "disk is full" in text:
            return DiskFull(text)
    return exc


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _insert_event(
    c: sqlite3.Connection, key: str, now: float, document: Any, executing: bool = False
) -> None:
    """Record a status change of ``key`` (only while it executes, if ``executing``)."""
    c.execute(
        "INSERT INTO events (account_id, task_key, task_name, created_at, document)"
        " SELECT account_id, key, task_name, ?, ? FROM tasks WHERE key = ?"
        + (" AND status = 'executing'" if executing else ""),
        (now, dumps(document), key),
    )


def _row_event(c: sqlite3.Connection, row: Row, now: float, document: Any) -> None:
    """Record a status change of the task whose ``row`` the transaction just read."""
    c.execute(
        "INSERT INTO events (account_id, task_key, task_name, created_at, document)"
        " VALUES (?, ?, ?, ?, ?)",
        (row["account_id"], row["key"], row["task_name"], now, dumps(document)),
    )


def _insert_outbox(
    c: sqlite3.Connection,
    task_key: str,
    account_id: int,
    url: str,
    body: bytes,
    webhook_id: str,
    next_at: float,
) -> None:
    c.execute(
        "INSERT INTO outbox (task_key, account_id, url, body, webhook_id, next_at, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (task_key, account_id, url, body, webhook_id, next_at, time.time()),
    )
