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

The rules of each operation are in ``dragon.database.operations``; this module holds what is
SQLite's own: its dialect of the queries (``SQLITE_QUERIES``: sets of values read from JSON
with ``json_each``, the task sequence, planner hints), and the threads that step an
operation synchronously. Its schema is ``dragon.database.sqlite_schema``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import re
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TypeVar, cast

import orjson

from dragon.database.interface import Busy, DiskFull
from dragon.database.operations import Operations
from dragon.database.queries import (
    COMMON_QUERIES,
    DELIVERY_COLUMNS,
    NEWEST_FIRST,
    TASK_COLUMNS,
    TASKS_PAGE,
    ended_slots,
)
from dragon.database.sqlite_schema import MIGRATIONS
from dragon.database.steps import Conflict, Notify, Op, Params, QueryMany, Step, run_sync

log = logging.getLogger("dragon.database")

IN_KEYS = "IN (SELECT value FROM json_each(:keys))"  # a list parameter arrives as JSON text
INSERT_EVENT = "INSERT INTO events (account_id, task_key, task_name, created_at, document)"

SQLITE_QUERIES: dict[str, str] = {
    **COMMON_QUERIES,
    # Times are never before ``start`` here: the cast's truncation is the floor.
    **ended_slots("CAST((completed_at - :start) / :bucket AS INTEGER)"),
    # The next sequence number is one past the largest (the tasks_seq index makes MAX one
    # step); the writer thread is the only writer, so no two tasks take the same.
    "insert_task": "INSERT INTO tasks (key, account_id, task_name, params, status, error,"
    " error_code, queued_at, completed_at, lane, waiting_for, seq) VALUES (:key, :account_id,"
    " :task_name, :params, :status, :error, :error_code, :queued_at, :completed_at, :lane,"
    " :waiting_for, (SELECT COALESCE(MAX(seq), 0) + 1 FROM tasks))",
    # One writer commits in order: event ids need no lock to commit in id order.
    "insert_event": f"{INSERT_EVENT} VALUES (:account_id, :task_key, :task_name, :created_at,"
    " :document)",
    "insert_task_event": f"{INSERT_EVENT} SELECT account_id, key, task_name, :created_at,"
    " :document FROM tasks WHERE key = :key",
    "insert_executing_task_event": f"{INSERT_EVENT} SELECT account_id, key, task_name,"
    " :created_at, :document FROM tasks WHERE key = :key AND status = 'executing'",
    # "+account_id" keeps the planner on the primary key: with the account's index it would
    # walk every task the account ever had.
    "tasks_of_account": f"SELECT {TASK_COLUMNS} FROM tasks WHERE key {IN_KEYS}"
    " AND +account_id = :account_id",
    "task_ends_of_account": f"SELECT key, status, completed_at FROM tasks WHERE key {IN_KEYS}"
    " AND +account_id = :account_id",
    "start_task": "UPDATE tasks SET status = 'executing', started_at = :now,"
    " attempts = attempts + 1, owner = :owner, progress = 0, stage = :stage"
    " WHERE key = :key AND status = 'queued' AND waiting_for IS NULL"
    f" RETURNING {TASK_COLUMNS}",
    # "+status": a name is the narrower filter, so the walk stays on the name's index
    # (without statistics the planner would take the status one, every success ever).
    "tasks_page_of_name_status": f"{TASKS_PAGE} AND task_name = :task_name"
    f" AND +status = :status{NEWEST_FIRST}",
    # One writer: nothing to lock. The inputs a create waits for, as they are now.
    "lock_inputs": f"SELECT key, status FROM tasks WHERE key {IN_KEYS}",
    "waiting_dependents": "SELECT t.key, t.waiting_for FROM task_inputs i"
    " JOIN tasks t ON t.key = i.task_key WHERE i.input_key IN (SELECT value FROM"
    " json_each(:keys)) AND t.status = 'queued' AND t.waiting_for IS NOT NULL",
    # One node: at start, every executing task was left by this node's earlier process.
    "unfinished_tasks": f"SELECT {TASK_COLUMNS} FROM tasks"
    " WHERE status IN ('queued', 'executing') ORDER BY seq",
    "delete_settled_deliveries": f"DELETE FROM outbox WHERE task_key {IN_KEYS}"
    " AND state != 'pending'",
    "delete_tasks": f"DELETE FROM tasks WHERE key {IN_KEYS}",
    "diagnostics": f"SELECT key, diagnostics FROM tasks WHERE key {IN_KEYS}"
    " AND diagnostics IS NOT NULL",
    "raise_event_horizon": "UPDATE event_horizon SET pruned_through = MAX(pruned_through, :last)",
    "listed_files_by_url": "SELECT * FROM files WHERE url IN (SELECT value FROM"
    " json_each(:urls)) AND +account_id = :account_id AND listed = TRUE ORDER BY task_key, name",
    "delete_files": "DELETE FROM files WHERE id IN (SELECT value FROM json_each(:ids))"
    " RETURNING account_id, size, counted",
    # Read, not claimed: this node is the only sender.
    "due_deliveries": "SELECT id, task_key, account_id, url, body, webhook_id, attempts,"
    " next_at, state, last_status, last_error, created_at, webhook_secret,"
    f" previous_webhook_secret FROM (SELECT {DELIVERY_COLUMNS}, ROW_NUMBER() OVER"
    " (PARTITION BY o.account_id ORDER BY o.next_at) AS turn FROM outbox o JOIN accounts a"
    " ON a.id = o.account_id WHERE o.state = 'pending' AND o.next_at <= :now)"
    " ORDER BY turn, next_at LIMIT :limit",
    "release_deliveries": "UPDATE outbox SET next_at = :now"
    " WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'pending'",
    "deliveries_for": "SELECT task_key, url, state, attempts, next_at, last_status,"
    f" last_error, webhook_id FROM outbox WHERE task_key {IN_KEYS} ORDER BY id",
    "cancel_tasks": "UPDATE tasks SET status = 'error', error = :error, error_code = :error_code,"
    " completed_at = :now, progress = NULL, result = NULL,"
    " started_at = CASE WHEN stage IS NULL THEN started_at END, stage = NULL"
    f" WHERE key {IN_KEYS}"
    " AND +account_id = :account_id AND status IN ('queued', 'executing')"
    f" RETURNING {TASK_COLUMNS}",
    "delete_uploads": "DELETE FROM uploads WHERE id IN (SELECT value FROM json_each(:ids))",
}


# Columns declared BOOLEAN (``files.listed``, ``files.counted``): SQLite keeps 0 and 1, rows
# give them back as bool. Converted here by name rather than by sqlite3's declared-type
# converters, which cost about a microsecond on every statement, rows or none.
BOOLEAN_COLUMNS = frozenset({"listed", "counted"})


def _records(names: list[str], found: list[tuple[object, ...]]) -> list[dict[str, object]]:
    """Rows as dicts of their columns (the names come from the statement, once for all)."""
    records = [dict(zip(names, values, strict=True)) for values in found]
    for name in BOOLEAN_COLUMNS.intersection(names):
        for record in records:
            record[name] = bool(record[name])
    return records


def connect(path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
    )
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


def _as_json(params: Params) -> Params:
    """Named parameters with every set as JSON text for ``json_each``."""
    return {
        name: orjson.dumps(value).decode() if isinstance(value, list) else value
        for name, value in params.items()
    }


# A set parameter this short is bound one placeholder a value (the planner then probes the
# primary key directly: about 4 us less per point read than reading the set from JSON);
# a longer one is read with ``json_each``, whatever its size.
SHORT_SET = 500
_JSON_SET = re.compile(r"\(SELECT value FROM json_each\(:(\w+)\)\)")


@functools.lru_cache(maxsize=2048)
def _spread(sql: str, sizes: tuple[tuple[str, int], ...]) -> str:
    """``sql`` with each named short set read as ``(:name_0, :name_1, ...)``."""
    size = dict(sizes)

    def placeholders(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in size:
            return found.group(0)
        return "(" + ",".join(f":{name}_{i}" for i in range(size[name])) + ")"

    return _JSON_SET.sub(placeholders, sql)


def bind(sql: str, params: Params) -> tuple[str, Params]:
    """The statement and named parameters as sqlite3 takes them: a set (a list) of up to
    ``SHORT_SET`` values becomes one placeholder a value, a longer one JSON text for
    ``json_each``; most steps have none and go through as they are."""
    for value in params.values():
        if isinstance(value, list):
            break
    else:
        return sql, params
    bound: dict[str, object] = {}
    sizes = []
    for name, value in params.items():
        if isinstance(value, list) and 0 < len(value) <= SHORT_SET:
            sizes.append((name, len(value)))
            bound.update((f"{name}_{i}", item) for i, item in enumerate(value))
        elif isinstance(value, list):
            bound[name] = orjson.dumps(value).decode()
        else:
            bound[name] = value
    return _spread(sql, tuple(sizes)), bound


def execute(conn: sqlite3.Connection, step: Step) -> object:
    """Run one step of an operation on ``conn`` and return its result (rows as dicts)."""
    if isinstance(step, Notify):
        return None  # no other node to tell
    sql = SQLITE_QUERIES[step.name]
    cursor = conn.cursor()  # plain tuples: zipped with the names below, cheaper than Row
    try:
        if isinstance(step, QueryMany):
            # One statement for every set: sets stay JSON here, whatever their size (the
            # steps of one statement share their shape, so the first one tells).
            sets = step.params
            if any(isinstance(v, list) for v in sets[0].values()):
                sets = [_as_json(p) for p in sets]
            cursor.executemany(sql, sets)
            return None
        cursor.execute(*bind(sql, step.params))
    except sqlite3.IntegrityError as exc:
        if "UNIQUE" in str(exc):
            raise Conflict(str(exc)) from exc
        raise
    if step.fetch == "count":
        return cursor.rowcount
    found = cursor.fetchall()  # to the end: a statement left running would hold its locks
    if step.fetch == "rows":
        if not found:
            return []  # the columns' names would cost more than the read
        return _records([column[0] for column in cursor.description], found)
    if not found:
        return None
    if step.fetch == "value":
        return found[0][0]
    return _records([column[0] for column in cursor.description], found[:1])[0]


T = TypeVar("T")
Write = Callable[[sqlite3.Connection], object]
# A queued write: the operation, the loop that waits for it, and its future.
Queued = tuple[Write, asyncio.AbstractEventLoop, "asyncio.Future[object]"]


class SQLiteDatabase(Operations):
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
    async def _write(self, op: Op[T]) -> T:
        """Queue ``op`` for the writer thread, which steps it inside its batch's transaction;
        the future resolves after the commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        self._queue.put((lambda conn: run_sync(op, partial(execute, conn)), loop, future))
        return cast(T, await future)

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
        outcomes: list[tuple[bool, object]] = []
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
        return await loop.run_in_executor(
            self._readers, lambda: run_sync(op, partial(execute, self._reader()))
        )

    async def _lookup(self, op: Op[T]) -> T:
        """Run an indexed point read on the calling thread (never a scan)."""
        conn = self._loop_conn
        if conn is None:
            conn = self._loop_conn = connect(self.path, self.synchronous)
        return run_sync(op, partial(execute, conn))


def _typed(exc: Exception) -> Exception:
    """SQLite's lock and full-disk failures as the protocol's ``Busy`` and ``DiskFull``."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError):
        if "locked" in text or "busy" in text:
            return Busy(text)
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or "disk is full" in text:
            return DiskFull(text)
    return exc


def _settle(future: asyncio.Future[object], ok: bool, value: object) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        assert isinstance(value, BaseException)  # a failed outcome holds its exception
        future.set_exception(value)
