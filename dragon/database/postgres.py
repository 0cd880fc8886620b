"""The PostgreSQL backend: several ``dragon serve`` nodes share one database.

Same ``Database`` protocol as SQLite, with its own SQL and migrations. What differs:

- Connections come from an asyncpg pool created on first use in the server's loop;
  ``open`` migrates through a short-lived connection of its own, under an advisory lock so
  nodes starting together migrate once.
- Every committed change of a task sends ``NOTIFY dragon`` in its transaction (so it is
  delivered only after the commit). The payload is ``<kind> <origin> <key,key,...>``:
  ``n`` new queued tasks, ``c`` changed statuses. ``listen`` hands other nodes'
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
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, ParamSpec, TypeVar

import asyncpg
import orjson

from dragon.database.interface import AccountExists, Busy, Callback, DiskFull, Row, account_changes
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

# Each entry migrates the schema from version i to i + 1. Append; never edit a shipped one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE accounts (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        secret_hash BYTEA NOT NULL UNIQUE,
        api_key TEXT NOT NULL UNIQUE,
        webhook_secret TEXT NOT NULL,
        referrers TEXT NOT NULL DEFAULT '[]',
        max_active INTEGER NOT NULL DEFAULT 0,
        expiration_days INTEGER NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL,
        previous_webhook_secret TEXT,
        previous_webhook_secret_until DOUBLE PRECISION,
        create_rate DOUBLE PRECISION
    );
    CREATE TABLE tasks (
        key TEXT PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        task_name TEXT NOT NULL,
        params TEXT NOT NULL,
        status TEXT NOT NULL,
        progress DOUBLE PRECISION,
        result TEXT,
        error TEXT,
        error_code TEXT,
        queued_at DOUBLE PRECISION NOT NULL,
        started_at DOUBLE PRECISION,
        completed_at DOUBLE PRECISION,
        attempts INTEGER NOT NULL DEFAULT 0,
        owner TEXT,
        seq BIGSERIAL NOT NULL,
        diagnostics TEXT
    );
    CREATE INDEX tasks_active ON tasks(status, seq) WHERE status IN ('queued', 'executing');
    CREATE INDEX tasks_account ON tasks(account_id, status);
    CREATE INDEX tasks_completed ON tasks(completed_at) WHERE completed_at IS NOT NULL;
    CREATE TABLE files (
        id BIGSERIAL PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        task_key TEXT NOT NULL,
        output TEXT,
        name TEXT NOT NULL,
        store TEXT NOT NULL,
        location TEXT NOT NULL,
        url TEXT NOT NULL,
        size BIGINT NOT NULL,
        content_type TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION,
        UNIQUE (task_key, name)
    );
    CREATE UNIQUE INDEX files_output ON files(task_key, output);
    CREATE INDEX files_account ON files(account_id, store, task_key);
    CREATE INDEX files_expiry ON files(expires_at) WHERE expires_at IS NOT NULL;
    CREATE INDEX files_location ON files(location);
    CREATE INDEX files_url ON files(url);
    CREATE INDEX files_created ON files(account_id, store, created_at);
    CREATE TABLE usage (
        account_id BIGINT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        bytes BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE outbox (
        id BIGSERIAL PRIMARY KEY,
        task_key TEXT NOT NULL,
        account_id BIGINT NOT NULL,
        url TEXT NOT NULL,
        body BYTEA NOT NULL,
        webhook_id TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        last_status INTEGER,
        last_error TEXT,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX outbox_pending ON outbox(next_at) WHERE state = 'pending';
    CREATE INDEX outbox_task ON outbox(task_key);
    CREATE TABLE events (
        id BIGSERIAL PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        task_key TEXT NOT NULL,
        task_name TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        document TEXT NOT NULL
    );
    CREATE INDEX events_account ON events(account_id, id);
    CREATE TABLE event_horizon (pruned_through BIGINT NOT NULL);
    INSERT INTO event_horizon (pruned_through) VALUES (0);
    CREATE TABLE nodes (
        owner TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        seen_at DOUBLE PRECISION NOT NULL
    );
    """,
    # Bumped by every transaction that deletes tasks (retention, a deleted account) or
    # ends an ended task again: a poll answered from cached documents of ended tasks reads
    # this one number instead of their rows.
    """
    CREATE TABLE ended_changes (count BIGINT NOT NULL);
    INSERT INTO ended_changes (count) VALUES (0);
    """,
)

TASK_COLUMNS = (
    "key, account_id, task_name, params, status, progress, result, error, error_code, "
    "queued_at, started_at, completed_at, attempts, owner"
)
NOW = "extract(epoch from clock_timestamp())"
NUL = "\x00"

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
P = ParamSpec("P")
Render = Callable[[Row], Any]
Listener = Callable[[str, list[str]], None]


def storable(keys: list[str]) -> list[str]:
    """The keys a row can have: PostgreSQL text cannot hold NUL, so a key with one (sent
    by a client) matches nothing instead of failing the query."""
    return [key for key in keys if NUL not in key]


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _busy(method: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn a lost connection into ``Busy`` and a full disk (SQLSTATE 53100) into
    ``DiskFull`` (503 for requests, a retry for the scheduler)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except CONNECTION_ERRORS as exc:
            raise Busy(f"database unavailable: {exc.__class__.__name__}: {exc}") from exc
        except asyncpg.exceptions.DiskFullError as exc:
            raise DiskFull(f"the database's disk is full: {exc}") from exc
        except asyncpg.exceptions.CharacterNotInRepertoireError as exc:
            # Text from a request holding NUL, where no lookup above filtered it out.
            raise RequestError("body", "text cannot hold the NUL character (\\u0000)") from exc

    return wrapper


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


class PostgresDatabase:
    """``Database`` on PostgreSQL (see the module docstring)."""

    clustered = True

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

    async def _fetch(self, sql: str, *args: Any) -> list[Row]:
        return await (await self._p()).fetch(sql, *args)

    async def _fetchrow(self, sql: str, *args: Any) -> Row | None:
        return await (await self._p()).fetchrow(sql, *args)

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        return await (await self._p()).fetchval(sql, *args)

    async def _execute(self, sql: str, *args: Any) -> str:
        return await (await self._p()).execute(sql, *args)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> Any:
        async with (await self._p()).acquire() as conn, conn.transaction():
            yield conn

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

        def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
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

    @_busy
    async def claim_queued(
        self, owner: str, light: list[str], in_light: bool, limit: int, now: float, render: Render
    ) -> list[Row]:
        """Start up to ``limit`` queued tasks of one lane for ``owner`` (attempts counted,
        events recorded), oldest first and round-robin across accounts.

        ``FOR UPDATE SKIP LOCKED`` lets nodes claim at once without waiting for or
        taking each other's rows. ``light`` names the light lane's tasks; ``in_light``
        picks that lane or the other. A few more rows than ``limit`` are looked at so a
        busy account cannot fill the claim alone.
        """
        async with self._transaction() as c:
            candidates = await c.fetch(
                "SELECT key, account_id FROM tasks WHERE status = 'queued'"
                " AND (task_name = ANY($1)) = $2 ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED",
                light,
                in_light,
                limit * 4,
            )
            per_account: dict[int, list[str]] = {}
            for r in candidates:
                per_account.setdefault(r["account_id"], []).append(r["key"])
            picked: list[str] = []
            while len(picked) < limit and per_account:
                for account_id in list(per_account):
                    keys = per_account[account_id]
                    picked.append(keys.pop(0))
                    if not keys:
                        del per_account[account_id]
                    if len(picked) == limit:
                        break
            if not picked:
                return []
            rows = await c.fetch(
                "UPDATE tasks SET status = 'executing', started_at = $1,"
                " attempts = attempts + 1, owner = $2, progress = 0"
                f" WHERE key = ANY($3) RETURNING {TASK_COLUMNS}",
                now,
                owner,
                picked,
            )
            await self._notify(c, "c", [r["key"] for r in rows])
            await c.execute("SELECT pg_advisory_xact_lock($1)", EVENTS_LOCK)
            await c.executemany(
                "INSERT INTO events (account_id, task_key, task_name, created_at, document)"
                " VALUES ($1, $2, $3, $4, $5)",
                [(r["account_id"], r["key"], r["task_name"], now, dumps(render(r))) for r in rows],
            )
            order = {key: i for i, key in enumerate(picked)}
            return sorted(rows, key=lambda r: order[r["key"]])

    @_busy
    async def join(self, owner: str, name: str) -> None:
        """This node starts: an earlier process with the same node name is gone (names are
        unique in a cluster), so its running tasks can be taken back at once."""
        async with self._transaction() as c:
            await c.execute("DELETE FROM nodes WHERE name = $1 AND owner <> $2", name, owner)
            await c.execute(
                f"INSERT INTO nodes (owner, name, started_at, seen_at) VALUES ($1, $2, {NOW},"
                f" {NOW}) ON CONFLICT (owner) DO UPDATE SET seen_at = {NOW}",
                owner,
                name,
            )

    @_busy
    async def heartbeat(self, owner: str, name: str) -> None:
        """This node is alive (``owner`` is its boot id, ``name`` its node name)."""
        await self._execute(
            f"INSERT INTO nodes (owner, name, started_at, seen_at) VALUES ($1, $2, {NOW}, {NOW})"
            f" ON CONFLICT (owner) DO UPDATE SET seen_at = {NOW}",
            owner,
            name,
        )

    @_busy
    async def leave(self, owner: str) -> None:
        """This node stopped (cleanly): forget it."""
        await self._execute("DELETE FROM nodes WHERE owner = $1", owner)

    @_busy
    async def stale_tasks(self) -> list[Row]:
        """Executing tasks whose node has been silent for the lease (or is unknown)."""
        return await self._fetch(
            f"SELECT {TASK_COLUMNS} FROM tasks t WHERE status = 'executing' AND NOT EXISTS"
            " (SELECT 1 FROM nodes n WHERE n.owner = t.owner"
            f" AND n.seen_at > {NOW} - $1) ORDER BY seq",
            self.lease_seconds,
        )

    @_busy
    async def owned_tasks(self, owner: str, started_before: float) -> list[Row]:
        """Executing tasks ``owner`` started (or claimed) before ``started_before``."""
        return await self._fetch(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE status = 'executing' AND owner = $1"
            " AND started_at < $2 ORDER BY seq",
            owner,
            started_before,
        )

    @_busy
    async def tasks_by_keys(self, keys: list[str]) -> list[Row]:
        """Rows of ``keys`` whatever their account (for re-publishing other nodes' changes)."""
        return await self._fetch(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE key = ANY($1)", storable(keys)
        )

    @_busy
    async def try_exclusive(self, lock: int, run: Callable[[], Awaitable[T]]) -> T | None:
        """Run ``run()`` unless another node holds the advisory ``lock`` (then None)."""
        async with (await self._p()).acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock):
                return None
            try:
                return await run()
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", lock)

    # -- accounts -------------------------------------------------------------------------
    @_busy
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
        async with self._transaction() as c:
            try:
                account_id = await c.fetchval(
                    "INSERT INTO accounts (name, secret_hash, api_key, webhook_secret,"
                    " referrers, max_active, create_rate, created_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                    name,
                    secret_hash,
                    api_key,
                    webhook_secret,
                    dumps(referrers),
                    max_active,
                    create_rate,
                    time.time(),
                )
            except asyncpg.UniqueViolationError as exc:
                raise AccountExists(name) from exc
            await c.execute("INSERT INTO usage (account_id, bytes) VALUES ($1, 0)", account_id)
            return int(account_id)

    @_busy
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
        assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(changes, 2))
        status = await self._execute(
            f"UPDATE accounts SET {assignments} WHERE name = $1", name, *changes.values()
        )
        return status != "UPDATE 0"

    @_busy
    async def account_by_name(self, name: str) -> Row | None:
        return await self._fetchrow("SELECT * FROM accounts WHERE name = $1", name)

    @_busy
    async def account_by_secret_hash(self, secret_hash: bytes) -> Row | None:
        return await self._fetchrow("SELECT * FROM accounts WHERE secret_hash = $1", secret_hash)

    @_busy
    async def account_by_api_key(self, api_key: str) -> Row | None:
        if NUL in api_key:
            return None
        return await self._fetchrow("SELECT * FROM accounts WHERE api_key = $1", api_key)

    @_busy
    async def account_by_id(self, account_id: int) -> Row | None:
        return await self._fetchrow("SELECT * FROM accounts WHERE id = $1", account_id)

    @_busy
    async def list_accounts(self) -> list[Row]:
        return await self._fetch("SELECT * FROM accounts ORDER BY id")

    @_busy
    async def delete_account(self, name: str) -> bool:
        async with self._transaction() as c:
            await c.execute(
                "DELETE FROM outbox WHERE account_id = (SELECT id FROM accounts WHERE name = $1)",
                name,
            )
            if await c.execute("DELETE FROM accounts WHERE name = $1", name) == "DELETE 0":
                return False
            await c.execute("UPDATE ended_changes SET count = count + 1")
            return True

    @_busy
    async def rotate_webhook_secret(self, name: str, secret: str, keep_old_until: float) -> bool:
        return (
            await self._execute(
                "UPDATE accounts SET previous_webhook_secret = webhook_secret,"
                " previous_webhook_secret_until = $1, webhook_secret = $2 WHERE name = $3",
                keep_old_until,
                secret,
                name,
            )
            != "UPDATE 0"
        )

    @_busy
    async def set_expiration(self, account_id: int, days: int) -> None:
        await self._execute(
            "UPDATE accounts SET expiration_days = $1 WHERE id = $2", days, account_id
        )

    # -- tasks ----------------------------------------------------------------------------
    @_busy
    async def insert_tasks(
        self, rows: Iterable[dict[str, Any]], errbacks: Iterable[dict[str, Any]] = ()
    ) -> None:
        rows = list(rows)
        async with self._transaction() as c:
            await c.executemany(
                "INSERT INTO tasks (key, account_id, task_name, params, status, error,"
                " error_code, queued_at, completed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
                    )
                    for r in rows
                ],
            )
            events = [
                (r["account_id"], r["key"], r["task_name"], r["queued_at"], dumps(r["document"]))
                for r in rows
                if r.get("document") is not None
            ]
            for e in errbacks:
                await _insert_outbox(c, **e)
            await self._notify(c, "n", (r["key"] for r in rows if r["status"] == "queued"))
            await self._notify(c, "c", (r["key"] for r in rows if r["status"] != "queued"))
            if events:  # last: the events lock is held until the commit
                await c.execute("SELECT pg_advisory_xact_lock($1)", EVENTS_LOCK)
                await c.executemany(
                    "INSERT INTO events (account_id, task_key, task_name, created_at, document)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    events,
                )

    @_busy
    async def get_tasks(self, keys: list[str], account_id: int) -> list[Row]:
        return await self._fetch(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE key = ANY($1) AND account_id = $2",
            storable(keys),
            account_id,
        )

    @_busy
    async def ended_changes(self) -> int:
        return int(await self._fetchval("SELECT count FROM ended_changes"))

    @_busy
    async def task_ends(self, keys: list[str], account_id: int) -> list[Row]:
        return await self._fetch(
            "SELECT key, status, completed_at FROM tasks WHERE key = ANY($1) AND account_id = $2",
            storable(keys),
            account_id,
        )

    @_busy
    async def start_task(
        self, key: str, owner: str, now: float, render: Render | None = None
    ) -> Row | None:
        async with self._transaction() as c:
            # SKIP LOCKED: when another node is claiming the same task, give up at once
            # instead of waiting for its commit (the row read below then tells who won).
            row = await c.fetchrow(
                "UPDATE tasks SET status = 'executing', started_at = $1,"
                " attempts = attempts + 1, owner = $2, progress = 0 WHERE key = (SELECT key"
                " FROM tasks WHERE key = $3 AND status = 'queued' FOR UPDATE SKIP LOCKED)"
                f" RETURNING {TASK_COLUMNS}",
                now,
                owner,
                key,
            )
            if row is None:
                return await c.fetchrow(f"SELECT {TASK_COLUMNS} FROM tasks WHERE key = $1", key)
            await self._notify(c, "c", [key])
            if render is not None:
                await _insert_event(c, key, now, render(row))
            return row

    @_busy
    async def set_progress(
        self, updates: dict[str, float], documents: dict[str, Any] | None = None
    ) -> None:
        async with self._transaction() as c:
            await c.executemany(
                "UPDATE tasks SET progress = $1 WHERE key = $2 AND status = 'executing'",
                [(v, k) for k, v in updates.items()],
            )
            await self._notify(c, "c", updates)
            now = time.time()
            for key, document in (documents or {}).items():
                await _insert_event(c, key, now, document, executing=True)

    @_busy
    async def set_partial(self, key: str, result: Any, document: Any = None) -> None:
        async with self._transaction() as c:
            changed = await c.execute(
                "UPDATE tasks SET result = $1 WHERE key = $2 AND status = 'executing'",
                dumps(result),
                key,
            )
            if changed != "UPDATE 0":
                await self._notify(c, "c", [key])
                if document is not None:
                    await _insert_event(c, key, time.time(), document)

    @_busy
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
        async with self._transaction() as c:
            row = await c.fetchrow(
                # Both updates see the row as it was: ending it again counts as a change.
                "WITH again AS (UPDATE ended_changes SET count = count + 1 WHERE EXISTS"
                " (SELECT 1 FROM tasks WHERE key = $7 AND completed_at IS NOT NULL))"
                " UPDATE tasks SET status = $1, result = $2, error = $3, error_code = $4,"
                " completed_at = $5, progress = NULL, diagnostics = $6 WHERE key = $7"
                f" RETURNING {TASK_COLUMNS}",
                status,
                dumps(result) if result is not None else None,
                dumps(error) if error is not None else None,
                error_code,
                now,
                dumps(diagnostics) if diagnostics is not None else None,
                key,
            )
            if callback is not None and row is not None:
                await _insert_outbox(
                    c,
                    key,
                    row["account_id"],
                    callback.url,
                    callback.render(row),
                    f"msg_{key}",
                    callback.next_at,
                )
            await self._notify(c, "c", [key])
            if row is not None and render is not None:
                await _insert_event(c, key, now, render(row))
            return row

    @_busy
    async def requeue_task(self, key: str, render: Render | None = None) -> None:
        async with self._transaction() as c:
            row = await c.fetchrow(
                "UPDATE tasks SET status = 'queued', progress = NULL, result = NULL,"
                f" owner = NULL WHERE key = $1 AND status = 'executing' RETURNING {TASK_COLUMNS}",
                key,
            )
            if row is None:
                return
            await self._notify(c, "n", [key])
            await self._notify(c, "c", [key])
            if render is not None:
                await _insert_event(c, key, time.time(), render(row))

    @_busy
    async def unfinished_tasks(self) -> list[Row]:
        """Queued tasks, and executing ones whose node is gone (not those of live nodes)."""
        return await self._fetch(
            f"SELECT {TASK_COLUMNS} FROM tasks t WHERE status = 'queued' OR"
            " (status = 'executing' AND NOT EXISTS (SELECT 1 FROM nodes n"
            f" WHERE n.owner = t.owner AND n.seen_at > {NOW} - $1)) ORDER BY seq",
            self.lease_seconds,
        )

    @_busy
    async def prune_tasks(self, ended_before: float, limit: int) -> int:
        async with self._transaction() as c:
            keys = [
                r[0]
                for r in await c.fetch(
                    "SELECT key FROM tasks WHERE completed_at < $1 LIMIT $2", ended_before, limit
                )
            ]
            if keys:
                await c.execute(
                    "DELETE FROM outbox WHERE task_key = ANY($1) AND state != 'pending'", keys
                )
                await c.execute("DELETE FROM tasks WHERE key = ANY($1)", keys)
                await c.execute("UPDATE ended_changes SET count = count + 1")
            return len(keys)

    @_busy
    async def task_diagnostics(self, keys: list[str]) -> dict[str, Any]:
        rows = await self._fetch(
            "SELECT key, diagnostics FROM tasks WHERE key = ANY($1) AND diagnostics IS NOT NULL",
            keys,
        )
        return {r["key"]: orjson.loads(r["diagnostics"]) for r in rows}

    @_busy
    async def recent_run_times(self, task_name: str, limit: int) -> list[float]:
        rows = await self._fetch(
            "SELECT completed_at - started_at AS took FROM tasks WHERE completed_at IS NOT NULL"
            " AND task_name = $1 AND status = 'success' AND started_at IS NOT NULL"
            " ORDER BY completed_at DESC LIMIT $2",
            task_name,
            limit,
        )
        return [r["took"] for r in rows]

    @_busy
    async def count_active(self, account_id: int) -> int:
        return await self._fetchval(
            "SELECT COUNT(*) FROM tasks WHERE account_id = $1"
            " AND status IN ('queued', 'executing')",
            account_id,
        )

    # -- the event feed -------------------------------------------------------------------
    @_busy
    async def events_after(self, account_id: int, after: int, limit: int) -> list[Row]:
        return await self._fetch(
            "SELECT id, task_key, task_name, document FROM events"
            " WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            account_id,
            after,
            limit,
        )

    @_busy
    async def event_horizon(self) -> int:
        return await self._fetchval("SELECT pruned_through FROM event_horizon")

    @_busy
    async def prune_events(self, before: float, limit: int) -> int:
        async with self._transaction() as c:
            last = None
            for r in await c.fetch("SELECT id, created_at FROM events ORDER BY id LIMIT $1", limit):
                if r["created_at"] >= before:
                    break
                last = r["id"]
            if last is None:
                return 0
            status = await c.execute("DELETE FROM events WHERE id <= $1", last)
            await c.execute(
                "UPDATE event_horizon SET pruned_through = GREATEST(pruned_through, $1)", last
            )
            return int(status.split()[-1])

    # -- files and usage ------------------------------------------------------------------
    @_busy
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
        """A task run again stores its outputs again: the old row is replaced and its size
        taken off the usage, so nothing counts twice."""
        async with self._transaction() as c:
            old = await c.fetchrow(
                "DELETE FROM files WHERE task_key = $1 AND output = $2 RETURNING size, store",
                task_key,
                output,
            )
            if old and old["store"] == "persistent":
                await c.execute(
                    "UPDATE usage SET bytes = bytes - $1 WHERE account_id = $2",
                    old["size"],
                    account_id,
                )
            await c.execute(
                "INSERT INTO files (account_id, task_key, output, name, store, location, url,"
                " size, content_type, created_at, expires_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
            )
            if counted:
                await c.execute(
                    "UPDATE usage SET bytes = bytes + $1 WHERE account_id = $2", size, account_id
                )

    @_busy
    async def file_for_output(self, task_key: str, output: str) -> Row | None:
        return await self._fetchrow(
            "SELECT * FROM files WHERE task_key = $1 AND output = $2", task_key, output
        )

    @_busy
    async def file_by_location(self, location: str) -> Row | None:
        if NUL in location:
            return None
        return await self._fetchrow("SELECT * FROM files WHERE location = $1", location)

    @_busy
    async def list_files(
        self, account_id: int, task_key: str | None = None, urls: list[str] | None = None
    ) -> list[Row]:
        sql = "SELECT * FROM files WHERE account_id = $1 AND store = 'persistent'"
        args: list[Any] = [account_id]
        if urls is not None:
            sql += " AND url = ANY($2)"
            args.append(urls)
        elif task_key is not None:
            sql += " AND task_key = $2"
            args.append(task_key)
        return await self._fetch(sql + " ORDER BY task_key, name", *args)

    @_busy
    async def file_directories(self, account_id: int) -> list[str]:
        rows = await self._fetch(
            "SELECT DISTINCT task_key FROM files WHERE account_id = $1 AND store = 'persistent'"
            " ORDER BY task_key",
            account_id,
        )
        return [r["task_key"] for r in rows]

    @_busy
    async def delete_files(self, ids: list[int]) -> int:
        async with self._transaction() as c:
            rows = await c.fetch(
                "DELETE FROM files WHERE id = ANY($1) RETURNING account_id, size, store", ids
            )
            freed = 0
            for r in rows:
                if r["store"] == "persistent":
                    await c.execute(
                        "UPDATE usage SET bytes = bytes - $1 WHERE account_id = $2",
                        r["size"],
                        r["account_id"],
                    )
                    freed += r["size"]
            return freed

    @_busy
    async def usage(self, account_id: int) -> int:
        return (
            await self._fetchval("SELECT bytes FROM usage WHERE account_id = $1", account_id) or 0
        )

    @_busy
    async def expired_files(self, now: float, limit: int = 500) -> list[Row]:
        """Files past their own expiry or their account's expiration setting."""
        rows = list(
            await self._fetch("SELECT * FROM files WHERE expires_at <= $1 LIMIT $2", now, limit)
        )
        for account in await self._fetch(
            "SELECT id, expiration_days FROM accounts WHERE expiration_days > 0"
        ):
            if len(rows) >= limit:
                break
            rows += await self._fetch(
                "SELECT * FROM files WHERE account_id = $1 AND store = 'persistent'"
                " AND created_at <= $2 AND (expires_at IS NULL OR expires_at > $3) LIMIT $4",
                account["id"],
                now - account["expiration_days"] * 86400.0,
                now,
                limit - len(rows),
            )
        return rows

    # -- callback outbox ------------------------------------------------------------------
    @_busy
    async def due_deliveries(self, now: float, limit: int = 100) -> list[Row]:
        """Due deliveries, claimed for this node: pushed ``CLAIM_SECONDS`` ahead so no
        other node sends them meanwhile (``record_delivery`` then sets the real next try).
        Taken in turns across accounts, so one account's backlog does not hide another's."""
        async with self._transaction() as c:
            return await c.fetch(
                "WITH turns AS (SELECT id, ROW_NUMBER() OVER (PARTITION BY account_id"
                " ORDER BY next_at) AS turn FROM outbox WHERE state = 'pending'"
                " AND next_at <= $1),"
                " due AS (SELECT o.id, o.next_at FROM outbox o JOIN turns t ON t.id = o.id"
                " WHERE o.state = 'pending' AND o.next_at <= $1"
                " ORDER BY t.turn, o.next_at LIMIT $2 FOR UPDATE OF o SKIP LOCKED),"
                " claimed AS (UPDATE outbox o SET next_at = $1 + $3 FROM due"
                " WHERE o.id = due.id RETURNING o.*, due.next_at AS due_at)"
                " SELECT claimed.*, a.webhook_secret, CASE WHEN"
                " a.previous_webhook_secret_until > $1 THEN a.previous_webhook_secret END"
                " AS previous_webhook_secret FROM claimed JOIN accounts a"
                " ON a.id = claimed.account_id ORDER BY claimed.due_at",
                now,
                limit,
                CLAIM_SECONDS,
            )

    @_busy
    async def next_delivery_time(self) -> float | None:
        return await self._fetchval(
            "SELECT MIN(o.next_at) FROM outbox o JOIN accounts a ON a.id = o.account_id"
            " WHERE o.state = 'pending'"
        )

    @_busy
    async def record_delivery(
        self,
        delivery_id: int,
        state: str,
        attempts: int,
        next_at: float,
        last_status: int | None,
        last_error: str | None,
    ) -> None:
        await self._execute(
            "UPDATE outbox SET state = $1, attempts = $2, next_at = $3, last_status = $4,"
            " last_error = $5 WHERE id = $6",
            state,
            attempts,
            next_at,
            last_status,
            last_error,
            delivery_id,
        )

    @_busy
    async def release_deliveries(self, ids: list[int], now: float) -> None:
        await self._execute(
            "UPDATE outbox SET next_at = $1 WHERE id = ANY($2) AND state = 'pending'", now, ids
        )

    @_busy
    async def deliveries_for(self, keys: list[str]) -> list[Row]:
        return await self._fetch(
            "SELECT task_key, url, state, attempts, next_at, last_status, last_error, webhook_id"
            " FROM outbox WHERE task_key = ANY($1) ORDER BY id",
            keys,
        )


async def _insert_event(
    c: asyncpg.Connection, key: str, now: float, document: Any, executing: bool = False
) -> None:
    """Record a status change of ``key`` (only while it executes, if ``executing``).

    Ids are taken under the events lock, held until the commit, so they commit in id order
    and a feed cursor never skips a late commit. Callers record events last in their
    transaction, and the lock is taken by the insert itself, to hold it for the least time.
    """
    await c.execute(
        "INSERT INTO events (account_id, task_key, task_name, created_at, document)"
        " SELECT account_id, key, task_name, $1, $2 FROM tasks,"
        " (SELECT pg_advisory_xact_lock($4)) AS events_lock WHERE key = $3"
        + (" AND status = 'executing'" if executing else ""),
        now,
        dumps(document),
        key,
        EVENTS_LOCK,
    )


async def _insert_outbox(
    c: asyncpg.Connection,
    task_key: str,
    account_id: int,
    url: str,
    body: bytes,
    webhook_id: str,
    next_at: float,
) -> None:
    await c.execute(
        "INSERT INTO outbox (task_key, account_id, url, body, webhook_id, next_at, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        task_key,
        account_id,
        url,
        body,
        webhook_id,
        next_at,
        time.time(),
    )
