"""The PostgreSQL backend: several ``dragon serve`` nodes share one database.

The rules of each operation are in ``dragon.database.operations``, shared with SQLite; this
module holds PostgreSQL's dialect of the queries (``POSTGRES_QUERIES``), the asyncpg driver
that awaits an operation's statements (inside a transaction for a write) and what only a
cluster needs. Its schema is ``dragon.database.postgres_schema``. What differs from SQLite:

- Connections come from an asyncpg pool created on first use in the server's loop;
  ``open`` migrates through a short-lived connection of its own, under an advisory lock so
  nodes starting together migrate once.
- Every committed change of a task sends ``NOTIFY dragon`` in its transaction (so it is
  delivered only after the commit). The payload is ``<kind> <origin> <key,key,...>``:
  ``n`` new queued tasks, ``c`` changed statuses, ``j`` a node joined. ``listen`` hands other nodes'
  notifications to the engine (``dragon.engine.cluster``), which queues new work and re-reads
  and publishes the documents to its own streams. A node ignores its own notifications.
- Event ids are taken under a transaction advisory lock, so they commit in id order and a
  feed cursor never skips an event committed late with a lower id.
- Nodes record heartbeats in ``nodes``; an executing task whose owner stayed silent for
  ``lease_seconds`` (or whose node restarted under the same name) is handed back by
  ``stale_tasks`` and ``unfinished_tasks``.
- A callback delivery is claimed (pushed ``CLAIM_SECONDS`` ahead) with ``FOR UPDATE SKIP
  LOCKED`` when a node takes it, so each attempt is sent by one node.
- A lost connection (database restarting) raises ``Busy``: the API answers 503 and the
  scheduler retries its writes until the pool reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from functools import partial
from typing import TypeVar

import asyncpg

from dragon.database.interface import Busy, DiskFull
from dragon.database.operations import ClusterOperations
from dragon.database.postgres_schema import MIGRATIONS
from dragon.database.queries import (
    COMMON_QUERIES,
    DELIVERY_COLUMNS,
    NEWEST_FIRST,
    TASK_COLUMNS,
    TASKS_PAGE,
    ended_slots,
)
from dragon.database.steps import Conflict, Notify, Op, Params, QueryMany, Step, run_async
from dragon.errors import RequestError

log = logging.getLogger("dragon.database")

CHANNEL = "dragon"
MIGRATE_LOCK = 0x647261676F6E01  # advisory lock ids ("dragon" + n)
EVENTS_LOCK = 0x647261676F6E02
CLAIM_SECONDS = 120.0  # a claimed callback delivery waits this long before another node retries
# Every query is short (point reads, claims, small batches). One that takes longer is stuck
# (a connection that died without saying so): it fails as a lost connection (``Busy``), so
# a request gets its 503 and the cluster's loops retry, instead of waiting on it.
QUERY_TIMEOUT = 15.0
NOTIFY_BYTES = 7000  # PostgreSQL's payload limit is 8000 bytes
NOW = "extract(epoch from clock_timestamp())"
NUL = "\x00"

INSERT_EVENT = "INSERT INTO events (account_id, task_key, task_name, created_at, document)"
# Event ids are taken under the events lock, held until the commit, so they commit in id
# order and a feed cursor never skips a late commit. The rules record events last in their
# transaction, and the insert itself takes the lock, to hold it for the least time.
EVENTS_LOCKED = f"(SELECT pg_advisory_xact_lock({EVENTS_LOCK})) AS events_lock"
# An executing task is another live node's while that node's heartbeat is within the lease.
NODE_ALIVE = f"SELECT 1 FROM nodes n WHERE n.owner = t.owner AND n.seen_at > {NOW} - :lease"
HEARTBEAT = (
    f"INSERT INTO nodes (owner, name, started_at, seen_at) VALUES (:owner, :name, {NOW}, {NOW})"
    f" ON CONFLICT (owner) DO UPDATE SET seen_at = {NOW}"
)

POSTGRES_QUERIES: dict[str, str] = {
    **COMMON_QUERIES,
    # A cast to an integer rounds here: the slot is the floor.
    **ended_slots("CAST(floor((completed_at - :start) / :bucket) AS INTEGER)"),
    "insert_task": "INSERT INTO tasks (key, account_id, task_name, params, status, error,"
    " error_code, queued_at, completed_at, lane, waiting_for) VALUES (:key, :account_id,"
    " :task_name, :params, :status, :error, :error_code, :queued_at, :completed_at, :lane,"
    " :waiting_for)",
    "insert_event": f"{INSERT_EVENT} SELECT :account_id, :task_key, :task_name, :created_at,"
    f" :document FROM {EVENTS_LOCKED}",
    "insert_task_event": f"{INSERT_EVENT} SELECT account_id, key, task_name, :created_at,"
    f" :document FROM tasks, {EVENTS_LOCKED} WHERE key = :key",
    "insert_executing_task_event": f"{INSERT_EVENT} SELECT account_id, key, task_name,"
    f" :created_at, :document FROM tasks, {EVENTS_LOCKED}"
    " WHERE key = :key AND status = 'executing'",
    "tasks_of_account": f"SELECT {TASK_COLUMNS} FROM tasks"
    " WHERE key = ANY(:keys) AND account_id = :account_id",
    "task_ends_of_account": "SELECT key, status, completed_at FROM tasks"
    " WHERE key = ANY(:keys) AND account_id = :account_id",
    # SKIP LOCKED: when another node is claiming the same task, give up at once instead of
    # waiting for its commit (the row read next then tells who won).
    "start_task": "UPDATE tasks SET status = 'executing', started_at = :now,"
    " attempts = attempts + 1, owner = :owner, progress = 0, stage = :stage"
    " WHERE key = (SELECT key"
    " FROM tasks WHERE key = :key AND status = 'queued' AND waiting_for IS NULL"
    f" FOR UPDATE SKIP LOCKED) RETURNING {TASK_COLUMNS}",
    # A create that waits for earlier tasks holds them (FOR SHARE) until its commit: an end
    # of one of them (an UPDATE) waits, then finds the new dependents; or the end came
    # first, and the create reads it ended. Either way no wait is left unreleased.
    "lock_inputs": "SELECT key, status FROM tasks WHERE key = ANY(:keys) ORDER BY key FOR SHARE",
    # Two producers of one dependent ending at once: the second waits for the first's
    # commit and reads the list it left.
    "waiting_dependents": "SELECT t.key, t.waiting_for FROM task_inputs i"
    " JOIN tasks t ON t.key = i.task_key WHERE i.input_key = ANY(:keys)"
    " AND t.status = 'queued' AND t.waiting_for IS NOT NULL ORDER BY t.key FOR UPDATE OF t",
    # Not the executing tasks of live nodes: they are running them.
    "tasks_page_of_name_status": f"{TASKS_PAGE} AND task_name = :task_name"
    f" AND status = :status{NEWEST_FIRST}",
    "unfinished_tasks": f"SELECT {TASK_COLUMNS} FROM tasks t WHERE status = 'queued' OR"
    f" (status = 'executing' AND NOT EXISTS ({NODE_ALIVE})) ORDER BY seq",
    "delete_settled_deliveries": "DELETE FROM outbox WHERE task_key = ANY(:keys)"
    " AND state != 'pending'",
    "delete_tasks": "DELETE FROM tasks WHERE key = ANY(:keys)",
    "diagnostics": "SELECT key, diagnostics FROM tasks WHERE key = ANY(:keys)"
    " AND diagnostics IS NOT NULL",
    "raise_event_horizon": "UPDATE event_horizon"
    " SET pruned_through = GREATEST(pruned_through, :last)",
    "listed_files_by_url": "SELECT * FROM files WHERE account_id = :account_id"
    " AND listed = TRUE AND url = ANY(:urls) ORDER BY task_key, name",
    "delete_files": "DELETE FROM files WHERE id = ANY(:ids) RETURNING account_id, size, counted",
    # Claimed for this node: pushed ``claim_seconds`` ahead so no other node sends them
    # meanwhile (``record_delivery`` then sets the real next try).
    "due_deliveries": "WITH turns AS (SELECT id, ROW_NUMBER() OVER (PARTITION BY account_id"
    " ORDER BY next_at) AS turn FROM outbox WHERE state = 'pending' AND next_at <= :now),"
    " due AS (SELECT o.id, o.next_at FROM outbox o JOIN turns t ON t.id = o.id"
    " WHERE o.state = 'pending' AND o.next_at <= :now"
    " ORDER BY t.turn, o.next_at LIMIT :limit FOR UPDATE OF o SKIP LOCKED),"
    " claimed AS (UPDATE outbox o SET next_at = :now + :claim_seconds FROM due"
    " WHERE o.id = due.id RETURNING o.*, due.next_at AS due_at)"
    f" SELECT {DELIVERY_COLUMNS} FROM claimed o JOIN accounts a ON a.id = o.account_id"
    " ORDER BY o.due_at",
    "release_deliveries": "UPDATE outbox SET next_at = :now WHERE id = ANY(:ids)"
    " AND state = 'pending'",
    "deliveries_for": "SELECT task_key, url, state, attempts, next_at, last_status,"
    " last_error, webhook_id FROM outbox WHERE task_key = ANY(:keys) ORDER BY id",
    # -- what only a cluster runs
    # ``FOR UPDATE SKIP LOCKED`` lets nodes claim at once without waiting for or taking
    # each other's rows.
    "claim_candidates": "SELECT key, account_id FROM tasks WHERE status = 'queued'"
    " AND waiting_for IS NULL AND COALESCE(lane, 'batch') = :lane ORDER BY seq LIMIT :limit"
    " FOR UPDATE SKIP LOCKED",
    "claim_tasks": "UPDATE tasks SET status = 'executing', started_at = :now,"
    " attempts = attempts + 1, owner = :owner, progress = 0,"
    " stage = CASE WHEN lane = 'light' THEN NULL ELSE 'waiting' END"
    f" WHERE key = ANY(:keys) RETURNING {TASK_COLUMNS}",
    "forget_node_name": "DELETE FROM nodes WHERE name = :name AND owner <> :owner",
    "heartbeat": HEARTBEAT,
    "peers": f"SELECT count(*) FROM nodes WHERE owner <> :owner AND seen_at > {NOW} - :lease",
    "leave": "DELETE FROM nodes WHERE owner = :owner",
    "stale_tasks": f"SELECT {TASK_COLUMNS} FROM tasks t WHERE status = 'executing'"
    f" AND NOT EXISTS ({NODE_ALIVE}) ORDER BY seq",
    "owned_tasks": f"SELECT {TASK_COLUMNS} FROM tasks WHERE status = 'executing'"
    " AND owner = :owner AND started_at < :started_before ORDER BY seq",
    "tasks_by_keys": f"SELECT {TASK_COLUMNS} FROM tasks WHERE key = ANY(:keys)",
    # A row another node is starting or ending is waited for, then judged as it is then.
    "cancel_tasks": "UPDATE tasks SET status = 'error', error = :error, error_code = :error_code,"
    " completed_at = :now, progress = NULL, result = NULL,"
    " started_at = CASE WHEN stage IS NULL THEN started_at END, stage = NULL WHERE key = ANY(:keys)"
    " AND account_id = :account_id AND status IN ('queued', 'executing')"
    f" RETURNING {TASK_COLUMNS}",
    "delete_uploads": "DELETE FROM uploads WHERE id = ANY(:ids)",
}

PARAMETER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """``:name`` parameters as asyncpg's ``$n``, and the names in ``$n`` order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    return PARAMETER.sub(number, sql), tuple(names)


COMPILED = {name: numbered(sql) for name, sql in POSTGRES_QUERIES.items()}

# What a lost or refused connection raises: the database is restarting or unreachable.
CONNECTION_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
    # A pooled connection the server dropped in the middle of an operation can refuse the
    # next one this way instead of with a connection error.
    asyncpg.exceptions.InternalClientError,
    asyncio.TimeoutError,
)

T = TypeVar("T")
Listener = Callable[[str, list[str]], None]


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """Turn a lost connection into ``Busy`` and a full disk (SQLSTATE 53100) into
    ``DiskFull`` (503 for requests, a retry for the scheduler)."""
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise Busy(f"database unavailable: {exc.__class__.__name__}: {exc}") from exc
    except asyncpg.exceptions.DiskFullError as exc:
        raise DiskFull(f"the database's disk is full: {exc}") from exc
    except asyncpg.exceptions.CharacterNotInRepertoireError as exc:
        # Text from a request holding NUL, where no lookup above filtered it out.
        raise RequestError("body", "text cannot hold the NUL character (\\u0000)") from exc


def searchable(args: list[object]) -> list[object] | None:
    """The arguments of a read as PostgreSQL can take them: text cannot hold NUL, so a key
    with one (sent by a client) matches nothing instead of failing the query. None when a
    single value holds one: the read finds nothing."""
    out: list[object] = []
    for arg in args:
        if isinstance(arg, str) and NUL in arg:
            return None
        if isinstance(arg, list):
            arg = [v for v in arg if not (isinstance(v, str) and NUL in v)]
        out.append(arg)
    return out


async def migrate(conn: asyncpg.Connection) -> int:
    """Bring the schema to the newest version under an advisory lock (one node migrates)."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATE_LOCK)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
        version = await conn.fetchval("SELECT MAX(version) FROM schema_version") or 0
        for i in range(version, len(MIGRATIONS)):
            async with conn.transaction():
                await conn.execute(MIGRATIONS[i])
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", i + 1)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATE_LOCK)
    return len(MIGRATIONS)


class PostgresDatabase(ClusterOperations):
    """``Database`` and ``ClusterDatabase`` on PostgreSQL (see the module docstring)."""

    def __init__(
        self, url: str, origin: str, lease_seconds: float = 30.0, pool_size: int = 10
    ) -> None:
        self.url = url
        self.origin = origin  # tags this node's notifications
        self.lease_seconds = lease_seconds
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._pool_lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def open(self) -> None:
        """Migrate on a thread of its own (the caller may be inside a running loop)."""
        failure: list[BaseException] = []

        async def run() -> None:
            conn = await asyncpg.connect(self.url, timeout=30)
            try:
                await migrate(conn)
            finally:
                await conn.close()

        def target() -> None:
            try:
                asyncio.run(run())
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)

        thread = threading.Thread(target=target, name="dragon-db-migrate")
        thread.start()
        thread.join()
        if failure:
            raise failure[0]

    def close(self) -> None:
        pool, loop, self._pool = self._pool, self._loop, None
        if self._listener is not None:
            self._listener.cancel()
        if pool is None or loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop and loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(asyncio.wait_for(pool.close(), 10), loop).result(
                    15
                )
        else:
            pool.terminate()

    async def _p(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._pool_lock is None:
            self._pool_lock = asyncio.Lock()
        async with self._pool_lock:
            if self._pool is None:
                self._loop = asyncio.get_running_loop()
                self._pool = await asyncpg.create_pool(
                    self.url,
                    min_size=1,
                    max_size=self.pool_size,
                    timeout=10,
                    command_timeout=QUERY_TIMEOUT,
                )
        return self._pool

    # -- running operations ---------------------------------------------------------------
    async def _write(self, op: Op[T]) -> T:
        with database_errors():
            async with (await self._p()).acquire() as conn, conn.transaction():
                return await run_async(op, partial(self._execute, conn, False))

    async def _write_one(self, op: Op[T]) -> T:
        """One statement: PostgreSQL runs it in a transaction of its own, without the round
        trips of BEGIN and COMMIT. A second statement would not be atomic with it: refused."""
        steps = 0

        async def once(conn: asyncpg.Connection, step: Step) -> object:
            nonlocal steps
            steps += 1
            if steps > 1:
                raise RuntimeError(f"{step} is a second statement of a one-statement write")
            return await self._execute(conn, False, step)

        with database_errors():
            async with (await self._p()).acquire() as conn:
                return await run_async(op, partial(once, conn))

    async def _read(self, op: Op[T]) -> T:
        with database_errors():
            async with (await self._p()).acquire() as conn:
                return await run_async(op, partial(self._execute, conn, True))

    async def _lookup(self, op: Op[T]) -> T:
        return await self._read(op)

    def _arguments(self, names: tuple[str, ...], params: Params) -> list[object]:
        """The ``$n`` arguments: the step's parameters, and this node's own (the lease)."""
        own = {"lease": self.lease_seconds, "claim_seconds": CLAIM_SECONDS}
        return [params[name] if name in params else own[name] for name in names]

    async def _execute(self, conn: asyncpg.Connection, reading: bool, step: Step) -> object:
        """Run one step of an operation on ``conn`` and return its result."""
        if isinstance(step, Notify):
            await self._notify(conn, step.kind, step.keys)
            return None
        sql, names = COMPILED[step.name]
        if isinstance(step, QueryMany):
            try:
                await conn.executemany(sql, [self._arguments(names, p) for p in step.params])
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(str(exc)) from exc
            return None
        args = self._arguments(names, step.params)
        if reading:
            found_args = searchable(args)
            if found_args is None:
                return [] if step.fetch == "rows" else 0 if step.fetch == "count" else None
            args = found_args
        try:
            if step.fetch == "rows":
                return [dict(r) for r in await conn.fetch(sql, *args)]
            if step.fetch == "row":
                one = await conn.fetchrow(sql, *args)
                return None if one is None else dict(one)
            if step.fetch == "value":
                return await conn.fetchval(sql, *args)
            status: str = await conn.execute(sql, *args)
            return int(status.rsplit(" ", 1)[-1])
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(str(exc)) from exc

    async def _notify(self, c: asyncpg.Connection, kind: str, keys: Iterable[str]) -> None:
        """Tell the other nodes, on commit, that ``keys`` changed (chunked to fit)."""
        chunk: list[str] = []
        size = 0
        for key in keys:
            if chunk and size + len(key) + 1 > NOTIFY_BYTES:
                await c.execute(
                    "SELECT pg_notify($1, $2)", CHANNEL, f"{kind} {self.origin} {','.join(chunk)}"
                )
                chunk, size = [], 0
            chunk.append(key)
            size += len(key) + 1
        if chunk:
            await c.execute(
                "SELECT pg_notify($1, $2)", CHANNEL, f"{kind} {self.origin} {','.join(chunk)}"
            )

    # -- cluster --------------------------------------------------------------------------
    async def listen(self, handler: Listener) -> None:
        """Call ``handler(kind, keys)`` for other nodes' notifications from now on,
        reconnecting after a lost connection; ``handler("r", [])`` after each reconnect
        (notifications may have been missed meanwhile, so the engine re-reads what it
        follows). Returns once the first ``LISTEN`` is in place."""
        listening = asyncio.get_running_loop().create_future()
        self._listener = asyncio.create_task(self._listen_forever(handler, listening))
        await listening

    async def _listen_forever(self, handler: Listener, listening: asyncio.Future[None]) -> None:
        delay = 0.1

        def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            kind, origin, keys = payload.split(" ", 2)
            if origin != self.origin:
                handler(kind, keys.split(","))

        while True:
            try:
                conn = await asyncpg.connect(self.url, timeout=10)
            except (*CONNECTION_ERRORS, asyncpg.PostgresError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.1
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _c, lost=lost: lost.set())
            try:
                await conn.add_listener(CHANNEL, on_notify)
                if listening.done():
                    log.info("database connection back: listening again")
                    if self._pool is not None:
                        # Idle pooled connections from before the loss may be dead too.
                        await self._pool.expire_connections()
                    handler("r", [])
                else:
                    listening.set_result(None)
                while not lost.is_set():
                    # A dead peer is not always reported: probe it now and then.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), 2.0)
                    if not lost.is_set():
                        await conn.fetchval("SELECT 1", timeout=5)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)
                raise
            except (*CONNECTION_ERRORS, asyncpg.PostgresError):
                log.warning("lost the database's notification connection; reconnecting")
            conn.terminate()

    async def try_exclusive(self, lock: int, run: Callable[[], Awaitable[T]]) -> T | None:
        """Run ``run()`` unless another node holds the advisory ``lock`` (then None)."""
        with database_errors():
            async with (await self._p()).acquire() as conn:
                if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock):
                    return None
                try:
                    return await run()
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", lock)
