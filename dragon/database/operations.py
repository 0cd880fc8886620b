"""The database's rules, written once for every backend: what each ``Database`` method does.

Each method here builds an operation (a generator of ``dragon.database.steps`` steps: named
queries and notifications, no SQL) and hands it to the backend as a write, a read or a
lookup. The backend owns everything else: the SQL text of each named query in its dialect
(RETURNING, SKIP LOCKED, advisory locks...), binding, and how it runs an operation:

- ``_write``: one transaction. SQLite queues it to its writer thread, which runs several
  writes in one ``BEGIN IMMEDIATE`` and one fsync (group commit); PostgreSQL awaits each
  statement inside a transaction on a pooled connection.
- ``_read``: reads that may touch many rows (SQLite: a reader thread; PostgreSQL: a pooled
  connection, no explicit transaction).
- ``_lookup``: point reads an index bounds (SQLite runs them inline on the calling thread:
  cheaper than a thread hop; PostgreSQL as ``_read``).

So a rule (what a finish does to ``ended_changes``, which deliveries a pruned task takes
along, which files count in usage) is changed in one place and holds on both backends;
``tests/unit/test_database_contract.py`` checks them against both.

Store policy lives in the files' ``listed`` and ``counted`` columns, written from the store
class when the file is recorded: no query here names a store.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypedDict, TypeVar

import orjson

from dragon.database.interface import AccountExists, Callback, Render
from dragon.database.rows import (
    AccountRow,
    DeliveryRow,
    DeliveryStateRow,
    EndedSlotRow,
    ErrorCountRow,
    EventRow,
    FileRow,
    ListedTaskRow,
    OverviewRows,
    StatusCountRow,
    TaskEndRow,
    TaskRow,
    TemplateRow,
    UploadRow,
)
from dragon.database.steps import Conflict, Op, count, many, notify, row, rows, value
from dragon.errors import CANCELLED

T = TypeVar("T")


class LimitRow(TypedDict):
    """An account's most tasks running at once on one node."""

    id: int
    max_running: int


class QueuedRow(TypedDict):
    """A claim's candidate: a queued task and whose it is."""

    key: str
    account_id: int


# How each status a document shows is stored: (status column, held) pairs, where held says
# whether the row has a stage (its node holds it before its work begins: executing in its
# row, queued in its documents); None: either.
STORED_STATUSES: dict[str, tuple[tuple[str, bool | None], ...]] = {
    "queued": (("queued", None), ("executing", True)),
    "executing": (("executing", False),),
    "success": (("success", None),),
    "error": (("error", None),),
}
# Above every listed task's place: the first page's cursor (seq is a 64-bit integer). Finite
# (seconds since the epoch never come near), so every driver and trace binds it as a number.
NEWEST = (1e300, 2**63 - 1)


def dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def json_or_none(value: object) -> str | None:
    return None if value is None else dumps(value)


class Operations(ABC):
    """Every ``Database`` method, over the backend's ``_write``, ``_read`` and ``_lookup``."""

    ended_changed_here = 0  # this process's commits that moved ``ended_changes``

    @abstractmethod
    async def _write(self, op: Op[T]) -> T:
        """Run ``op`` in one transaction; resolve after its commit."""

    async def _write_one(self, op: Op[T]) -> T:
        """Run a write of one statement, atomic by itself: a backend for which an explicit
        transaction costs round trips (PostgreSQL's BEGIN and COMMIT) leaves it out."""
        return await self._write(op)

    @abstractmethod
    async def _read(self, op: Op[T]) -> T:
        """Run a read that may touch many rows, off the event loop's thread if it blocks."""

    @abstractmethod
    async def _lookup(self, op: Op[T]) -> T:
        """Run a point read an index bounds, as cheaply as the backend can."""

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
        def op() -> Op[int]:
            try:
                account_id = yield from value(
                    int,
                    "insert_account",
                    name=name,
                    secret_hash=secret_hash,
                    api_key=api_key,
                    webhook_secret=webhook_secret,
                    referrers=dumps(referrers),
                    max_active=max_active,
                    create_rate=create_rate,
                    created_at=time.time(),
                )
            except Conflict as exc:
                raise AccountExists(name) from exc
            assert account_id is not None  # RETURNING id of the row just inserted
            yield from count("insert_usage", account_id=account_id)
            return account_id

        return await self._write(op())

    async def update_account(
        self,
        name: str,
        *,
        referrers: list[str] | None = None,
        max_active: int | None = None,
        create_rate: float | None = None,
        max_running: int | None = None,
    ) -> bool:
        """Only the given settings change; a negative ``create_rate`` is stored as NULL (the
        server's default)."""
        if referrers is None and max_active is None and create_rate is None and max_running is None:
            return await self.account_by_name(name) is not None

        def op() -> Op[bool]:
            changed = yield from count(
                "update_account",
                name=name,
                referrers=None if referrers is None else dumps(referrers),
                max_active=max_active,
                max_running=max_running,
                set_rate=create_rate is not None,
                create_rate=None if create_rate is None or create_rate < 0 else create_rate,
            )
            return changed > 0

        return await self._write_one(op())

    async def account_by_secret_hash(self, secret_hash: bytes) -> AccountRow | None:
        return await self._lookup(
            row(AccountRow, "account_by_secret_hash", secret_hash=secret_hash)
        )

    async def account_by_api_key(self, api_key: str) -> AccountRow | None:
        return await self._lookup(row(AccountRow, "account_by_api_key", api_key=api_key))

    async def account_by_id(self, account_id: int) -> AccountRow | None:
        return await self._lookup(row(AccountRow, "account_by_id", account_id=account_id))

    async def account_by_name(self, name: str) -> AccountRow | None:
        return await self._read(row(AccountRow, "account_by_name", name=name))

    async def list_accounts(self) -> list[AccountRow]:
        return await self._read(rows(AccountRow, "accounts"))

    async def delete_account(self, name: str) -> bool:
        """Its tasks, files, usage and events go by cascade; its callbacks are deleted here
        (the outbox has no foreign key to accounts). Deleting tasks is a change of ended
        tasks (``ended_changes``)."""

        def op() -> Op[bool]:
            yield from count("delete_account_deliveries", name=name)
            if not (yield from count("delete_account", name=name)):
                return False
            yield from count("count_ended_change")
            return True

        deleted = await self._write(op())
        self.ended_changed_here += deleted
        return deleted

    async def rotate_webhook_secret(self, name: str, secret: str, keep_old_until: float) -> bool:
        def op() -> Op[bool]:
            changed = yield from count(
                "rotate_webhook_secret", name=name, secret=secret, keep_old_until=keep_old_until
            )
            return changed > 0

        return await self._write_one(op())

    async def set_expiration(self, account_id: int, days: int) -> None:
        await self._write_one(count("set_expiration", account_id=account_id, days=days))

    # -- tasks ----------------------------------------------------------------------------
    async def insert_tasks(
        self, rows: Iterable[dict[str, Any]], errbacks: Iterable[dict[str, Any]] = ()
    ) -> None:
        """Tasks, then errbacks, then notifications, then events (last: PostgreSQL holds its
        events lock from the first event to the commit)."""
        tasks = list(rows)

        def op() -> Op[None]:
            yield from _held_inputs(tasks)
            yield from many(
                "insert_task",
                [
                    {
                        "key": r["key"],
                        "account_id": r["account_id"],
                        "task_name": r["task_name"],
                        "params": dumps(r["params"]),
                        "status": r["status"],
                        "error": json_or_none(r.get("error")),
                        "error_code": r.get("error_code"),
                        "queued_at": r["queued_at"],
                        "completed_at": r.get("completed_at"),
                        "lane": r.get("lane"),
                        "waiting_for": json_or_none(r.get("waiting_for") or None),
                    }
                    for r in tasks
                ],
            )
            yield from many(
                "insert_task_input",
                [
                    {"task_key": r["key"], "input_key": key}
                    for r in tasks
                    for key in dict.fromkeys(r.get("inputs") or ())
                ],
            )
            yield from many("insert_delivery", [{**e, "created_at": time.time()} for e in errbacks])
            startable = [r for r in tasks if r["status"] == "queued" and not r.get("waiting_for")]
            yield from notify("n", [r["key"] for r in startable])
            yield from notify("c", [r["key"] for r in tasks if r["status"] != "queued"])
            yield from many(
                "insert_event",
                [
                    {
                        "account_id": r["account_id"],
                        "task_key": r["key"],
                        "task_name": r["task_name"],
                        "created_at": r["queued_at"],
                        "document": dumps(r["document"]),
                    }
                    for r in tasks
                    if r.get("document") is not None
                ],
            )

        await self._write(op())

    async def get_tasks(self, keys: list[str], account_id: int) -> list[TaskRow]:
        return await self._lookup(
            rows(TaskRow, "tasks_of_account", keys=keys, account_id=account_id)
        )

    async def list_tasks(
        self,
        account_id: int,
        *,
        statuses: Sequence[str] = (),
        task_name: str | None = None,
        after: float | None = None,
        before: float | None = None,
        cursor: tuple[float, int] | None = None,
        limit: int = 50,
    ) -> list[ListedTaskRow]:
        """One query per stored status wanted (each a range of its index, at most ``limit``
        rows), merged newest first. ``before`` joins the cursor as ``(before, 0)``: no task
        has seq 0, so that bound is exactly ``queued_at < before``."""
        bound = min(cursor or NEWEST, NEWEST if before is None else (before, 0))
        common: dict[str, object] = {
            "account_id": account_id,
            "before_at": bound[0],
            "before_seq": bound[1],
            "after": -1e300 if after is None else after,
            "limit": limit,
        }
        if task_name is not None:
            common["task_name"] = task_name
        named = "_name" if task_name is not None else ""
        wanted = [stored for s in dict.fromkeys(statuses) for stored in STORED_STATUSES[s]]

        def op() -> Op[list[ListedTaskRow]]:
            if not wanted:
                query = "tasks_page_of_name" if named else "tasks_page"
                return (
                    yield from rows(ListedTaskRow, query, **common, any_stage=True, waiting=False)
                )
            found: list[ListedTaskRow] = []
            for status, held in wanted:
                found += yield from rows(
                    ListedTaskRow,
                    f"tasks_page_of{named}_status",
                    **common,
                    status=status,
                    any_stage=held is None,
                    waiting=bool(held),
                )
            found.sort(key=lambda r: (r["queued_at"], r["seq"]), reverse=True)
            return found[:limit]

        return await self._read(op())

    async def task_overview(
        self,
        account_id: int,
        *,
        task_name: str | None,
        after: float | None,
        before: float | None,
        start: float,
        end: float,
        bucket: float,
    ) -> OverviewRows:
        """Three grouped reads: counts, errors, ended slots."""
        named = "_of_name" if task_name is not None else ""
        name = {} if task_name is None else {"task_name": task_name}
        queued = {
            "account_id": account_id,
            "after": -1e300 if after is None else after,
            "before": 1e300 if before is None else before,
            **name,
        }

        def op() -> Op[OverviewRows]:
            counts = yield from rows(StatusCountRow, f"task_counts{named}", **queued)
            errors = yield from rows(ErrorCountRow, f"error_counts{named}", **queued)
            ended = yield from rows(
                EndedSlotRow,
                f"ended_slots{named}",
                account_id=account_id,
                start=start,
                end=end,
                bucket=bucket,
                **name,
            )
            return {"counts": counts, "errors": errors, "ended": ended}

        return await self._read(op())

    async def task_ends(self, keys: list[str], account_id: int) -> list[TaskEndRow]:
        return await self._lookup(
            rows(TaskEndRow, "task_ends_of_account", keys=keys, account_id=account_id)
        )

    async def ended_changes(self) -> int:
        return await self._lookup(value(int, "ended_changes")) or 0

    async def start_task(
        self,
        key: str,
        owner: str,
        now: float,
        render: Render | None = None,
        *,
        waiting: bool = False,
    ) -> TaskRow | None:
        """The row as it is now: ours if it was queued (and, on PostgreSQL, not being
        claimed by another node at this instant); otherwise whoever's it is. ``waiting``:
        its work begins later (``begin_work``); until then it shows as queued, and no
        event is recorded (nothing a reader sees changed)."""

        def op() -> Op[TaskRow | None]:
            stage = "waiting" if waiting else None
            started = yield from row(
                TaskRow, "start_task", key=key, owner=owner, now=now, stage=stage
            )
            if started is None:
                return (yield from row(TaskRow, "task", key=key))
            yield from notify("c", [key])
            if render is not None and not waiting:
                yield from count("insert_event", **event(started, now, render(started)))
            return started

        return await self._write(op())

    async def begin_work(
        self, key: str, owner: str, now: float, render: Render | None = None
    ) -> TaskRow | None:
        """A task ``owner`` holds ``waiting`` begins its work: executing from ``now``.
        None if it is not (or no longer) ``owner``'s waiting task."""

        def op() -> Op[TaskRow | None]:
            begun = yield from row(TaskRow, "begin_work", key=key, owner=owner, now=now)
            if begun is None:
                return None
            yield from notify("c", [key])
            if render is not None:
                yield from count("insert_event", **event(begun, now, render(begun)))
            return begun

        return await self._write(op())

    async def account_limits(self) -> dict[int, int]:
        """``{account id: max_running}`` of the accounts with a limit."""

        def op() -> Op[dict[int, int]]:
            found = yield from rows(LimitRow, "account_limits")
            return {r["id"]: r["max_running"] for r in found}

        return await self._read(op())

    async def set_progress(
        self, updates: dict[str, float], documents: dict[str, Any] | None = None
    ) -> None:
        def op() -> Op[None]:
            yield from many("set_progress", [{"key": k, "progress": v} for k, v in updates.items()])
            yield from notify("c", list(updates))
            now = time.time()
            yield from many(
                "insert_executing_task_event",
                [
                    {"key": key, "created_at": now, "document": dumps(document)}
                    for key, document in (documents or {}).items()
                ],
            )

        await self._write(op())

    async def set_partial(self, key: str, result: object, document: object = None) -> None:
        def op() -> Op[None]:
            if not (yield from count("set_partial", key=key, result=dumps(result))):
                return
            yield from notify("c", [key])
            if document is not None:
                yield from count(
                    "insert_task_event", key=key, created_at=time.time(), document=dumps(document)
                )

        await self._write(op())

    async def finish_task(
        self,
        key: str,
        status: str,
        result: object,
        error: object,
        error_code: str | None,
        now: float,
        callback: Callback | None = None,
        render: Render | None = None,
        diagnostics: object = None,
        dependents: list[TaskRow] | None = None,
    ) -> TaskRow | None:
        again = 0

        def op() -> Op[TaskRow | None]:
            nonlocal again
            # Before the end is written: ending an ended task again is a change.
            again = yield from count("count_end_again", key=key)
            ended = yield from row(
                TaskRow,
                "finish_task",
                key=key,
                status=status,
                result=json_or_none(result),
                error=json_or_none(error),
                error_code=error_code,
                completed_at=now,
                diagnostics=json_or_none(diagnostics),
                cancelled=CANCELLED,
            )
            if ended is None:
                return None
            if callback is not None:
                yield from count(
                    "insert_delivery",
                    task_key=key,
                    account_id=ended["account_id"],
                    url=callback.url,
                    body=callback.render(ended),
                    webhook_id=f"msg_{key}",
                    next_at=callback.next_at,
                    created_at=time.time(),
                )
            released = yield from _release([key])
            yield from notify("c", [key])
            if render is not None:
                yield from count("insert_event", **event(ended, now, render(ended)))
                yield from many("insert_event", [event(r, now, render(r)) for r in released])
            if dependents is not None:
                dependents[:] = released
            return ended

        ended = await self._write(op())
        self.ended_changed_here += bool(again)
        return ended

    async def requeue_task(self, key: str, render: Render | None = None) -> None:
        def op() -> Op[None]:
            requeued = yield from row(TaskRow, "requeue_task", key=key)
            if requeued is None:
                return
            yield from notify("n", [key])
            yield from notify("c", [key])
            if render is not None:
                yield from count("insert_event", **event(requeued, time.time(), render(requeued)))

        await self._write(op())

    async def unfinished_tasks(self) -> list[TaskRow]:
        """Queued tasks, and executing ones no live runner holds (all of them on a single
        node: it just started)."""
        return await self._read(rows(TaskRow, "unfinished_tasks"))

    async def prune_tasks(self, ended_before: float, limit: int) -> int:
        def op() -> Op[int]:
            found = yield from rows(
                TaskEndRow, "ended_tasks", ended_before=ended_before, limit=limit
            )
            keys = [r["key"] for r in found]
            if keys:
                yield from count("delete_settled_deliveries", keys=keys)
                yield from count("delete_tasks", keys=keys)
                yield from count("count_ended_change")
            return len(keys)

        pruned = await self._write(op())
        self.ended_changed_here += bool(pruned)
        return pruned

    async def count_active(self, account_id: int) -> int:
        return await self._read(value(int, "count_active", account_id=account_id)) or 0

    async def task_diagnostics(self, keys: list[str]) -> dict[str, Any]:
        def op() -> Op[dict[str, Any]]:
            found = yield from rows(dict[str, str], "diagnostics", keys=keys)
            return {r["key"]: orjson.loads(r["diagnostics"]) for r in found}

        return await self._read(op())

    async def recent_run_times(self, task_name: str, limit: int) -> list[float]:
        def op() -> Op[list[float]]:
            found = yield from rows(dict[str, float], "run_times", task_name=task_name, limit=limit)
            return [r["took"] for r in found]

        return await self._read(op())

    # -- the event feed -------------------------------------------------------------------
    async def events_after(self, account_id: int, after: int, limit: int) -> list[EventRow]:
        return await self._read(
            rows(EventRow, "events_after", account_id=account_id, after=after, limit=limit)
        )

    async def event_horizon(self) -> int:
        return await self._lookup(value(int, "event_horizon")) or 0

    async def prune_events(self, before: float, limit: int) -> int:
        def op() -> Op[int]:
            # Pruning takes a prefix of the id order (ids grow with time), so every cursor
            # at or below the horizon has lost changes and every cursor above it has not.
            last = None
            for r in (yield from rows(dict[str, float], "oldest_events", limit=limit)):
                if r["created_at"] >= before:
                    break
                last = int(r["id"])
            if last is None:
                return 0
            deleted = yield from count("delete_events_through", last=last)
            yield from count("raise_event_horizon", last=last)
            return deleted

        return await self._write(op())

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
        listed: bool = True,
    ) -> None:
        """A task run again (after a crash) stores its outputs again under the same names:
        the old row is replaced and its size taken off the usage if it counted, so nothing
        counts twice. ``listed`` and ``counted`` are the store's policy, kept with the file
        so that every later query (listing, usage, deletion) follows it."""

        def op() -> Op[None]:
            old = yield from row(
                dict[str, int], "delete_output_file", task_key=task_key, output=output
            )
            if old is not None and old["counted"]:
                yield from count("add_usage", account_id=account_id, bytes=-old["size"])
            yield from count(
                "insert_file",
                account_id=account_id,
                task_key=task_key,
                output=output,
                name=name,
                store=store,
                location=location,
                url=url,
                size=size,
                content_type=content_type,
                created_at=now,
                expires_at=expires_at,
                listed=listed,
                counted=counted,
            )
            if counted:
                yield from count("add_usage", account_id=account_id, bytes=size)

        await self._write(op())

    async def file_for_output(self, task_key: str, output: str) -> FileRow | None:
        return await self._lookup(row(FileRow, "file_for_output", task_key=task_key, output=output))

    async def file_by_location(self, location: str) -> FileRow | None:
        return await self._read(row(FileRow, "file_by_location", location=location))

    async def list_files(
        self, account_id: int, task_key: str | None = None, urls: list[str] | None = None
    ) -> list[FileRow]:
        if urls is not None:
            query = rows(FileRow, "listed_files_by_url", account_id=account_id, urls=urls)
        elif task_key is not None:
            query = rows(FileRow, "listed_files_of_task", account_id=account_id, task_key=task_key)
        else:
            query = rows(FileRow, "listed_files", account_id=account_id)
        return await self._read(query)

    async def file_directories(self, account_id: int) -> list[str]:
        def op() -> Op[list[str]]:
            found = yield from rows(dict[str, str], "listed_directories", account_id=account_id)
            return [r["task_key"] for r in found]

        return await self._read(op())

    async def delete_files(self, ids: list[int]) -> int:
        """The bytes of counted files come off their accounts' usage; returns them."""

        def op() -> Op[int]:
            freed = 0
            for r in (yield from rows(dict[str, int], "delete_files", ids=ids)):
                if r["counted"]:
                    yield from count("add_usage", account_id=r["account_id"], bytes=-r["size"])
                    freed += r["size"]
            return freed

        return await self._write(op())

    async def usage(self, account_id: int) -> int:
        return await self._read(value(int, "usage", account_id=account_id)) or 0

    async def expired_files(self, now: float, limit: int = 500) -> list[FileRow]:
        """Files past their own expiry, then listed files past their account's expiration
        days (an account's expiration covers what it sees in its storage)."""

        def op() -> Op[list[FileRow]]:
            found = yield from rows(FileRow, "files_past_expiry", now=now, limit=limit)
            for account in (yield from rows(dict[str, int], "expiring_accounts")):
                if len(found) >= limit:
                    break
                found += yield from rows(
                    FileRow,
                    "files_past_account_expiration",
                    account_id=account["id"],
                    created_before=now - account["expiration_days"] * 86400.0,
                    now=now,
                    limit=limit - len(found),
                )
            return found

        return await self._read(op())

    # -- callback outbox ------------------------------------------------------------------
    async def due_deliveries(self, now: float, limit: int = 100) -> list[DeliveryRow]:
        """In turns across accounts (each one's oldest first, then each one's second...), so
        one account's backlog cannot fill the batch and hide another's deliveries. Where
        several nodes send (PostgreSQL) the query also claims them for a while."""
        return await self._read(rows(DeliveryRow, "due_deliveries", now=now, limit=limit))

    async def next_delivery_time(self) -> float | None:
        return await self._read(value(float, "next_delivery_time"))

    async def record_delivery(
        self,
        delivery_id: int,
        state: str,
        attempts: int,
        next_at: float,
        last_status: int | None,
        last_error: str | None,
    ) -> None:
        await self._write_one(
            count(
                "record_delivery",
                id=delivery_id,
                state=state,
                attempts=attempts,
                next_at=next_at,
                last_status=last_status,
                last_error=last_error,
            )
        )

    async def release_deliveries(self, ids: list[int], now: float) -> None:
        await self._write_one(count("release_deliveries", ids=ids, now=now))

    async def deliveries_for(self, keys: list[str]) -> list[DeliveryStateRow]:
        return await self._read(rows(DeliveryStateRow, "deliveries_for", keys=keys))

    # -- cancel ---------------------------------------------------------------------------
    async def cancel_tasks(
        self,
        keys: list[str],
        account_id: int,
        now: float,
        error: object,
        errback: Callable[[TaskRow], Callback | None],
        render: Render,
        dependents: list[TaskRow] | None = None,
    ) -> list[TaskRow]:
        """End the account's queued and executing tasks among ``keys`` in ``error`` with
        ``error_code`` ``cancelled``, as any end is written: each one's errback (what
        ``errback(row)`` gives) queued, notified, its event recorded, in one transaction.
        Ended tasks, other accounts' and unknown keys are left as they are; returns the rows
        it ended. A key holding NUL names no task (PostgreSQL text cannot hold one)."""
        keys = [key for key in keys if "\x00" not in key]

        def op() -> Op[list[TaskRow]]:
            ended = yield from rows(
                TaskRow,
                "cancel_tasks",
                keys=keys,
                account_id=account_id,
                now=now,
                error=dumps(error),
                error_code=CANCELLED,
            )
            created = time.time()
            deliveries = []
            for r in ended:
                hook = errback(r)
                if hook is not None:
                    deliveries.append(
                        {
                            "task_key": r["key"],
                            "account_id": r["account_id"],
                            "url": hook.url,
                            "body": hook.render(r),
                            "webhook_id": f"msg_{r['key']}",
                            "next_at": hook.next_at,
                            "created_at": created,
                        }
                    )
            yield from many("insert_delivery", deliveries)
            released = yield from _release([r["key"] for r in ended])
            yield from notify("c", [r["key"] for r in ended])
            yield from many("insert_event", [event(r, now, render(r)) for r in ended + released])
            if dependents is not None:
                dependents[:] = released
            return ended

        if not keys:
            return []
        return await self._write(op())

    async def task_files(self, task_key: str) -> list[FileRow]:
        """Every file ``task_key`` recorded, whatever its store. Read in the order of the
        writes: the record of an output that a cancelled run was storing is committed
        before this reads, so it is found too."""
        return await self._write(rows(FileRow, "task_files", task_key=task_key))

    # -- resumable uploads ----------------------------------------------------------------
    async def insert_upload(
        self,
        upload_id: str,
        account_id: int,
        length: int,
        metadata: str | None,
        now: float,
        expires_at: float,
        most_pending: int,
        multipart: str | None = None,
    ) -> bool:
        """The account's unfinished bytes are summed in the transaction that adds the new
        upload, so two creates at once cannot both slip under the limit (SQLite's one
        writer; PostgreSQL may let a pair through at the same instant, bounded by one
        upload's size)."""

        def op() -> Op[bool]:
            pending = yield from value(int, "pending_upload_bytes", account_id=account_id)
            if (pending or 0) + length > most_pending:
                return False
            yield from count(
                "insert_upload",
                id=upload_id,
                account_id=account_id,
                length=length,
                metadata=metadata,
                created_at=now,
                expires_at=expires_at,
                multipart=multipart,
                parts=None if multipart is None else "[]",
            )
            return True

        return await self._write(op())

    async def upload(self, upload_id: str) -> UploadRow | None:
        return await self._lookup(row(UploadRow, "upload", id=upload_id))

    async def advance_upload(
        self, upload_id: str, offset: int, received: int, now: float, kept_until: float
    ) -> UploadRow | None:
        """Moved only from ``offset``: a writer that lost a race (or resumed from an older
        offset) changes nothing. The upload is finished in the same transaction as its
        last byte."""

        def op() -> Op[UploadRow | None]:
            moved = yield from row(
                UploadRow, "advance_upload", id=upload_id, offset=offset, received=received
            )
            if moved is None or moved["received"] < moved["length"]:
                return moved
            return (
                yield from row(
                    UploadRow, "complete_upload", id=upload_id, now=now, kept_until=kept_until
                )
            )

        return await self._write(op())

    async def store_upload_parts(
        self, upload_id: str, offset: int, received: int, parts: str, pending_key: str | None
    ) -> UploadRow | None:
        return await self._write_one(
            row(
                UploadRow,
                "store_upload_parts",
                id=upload_id,
                offset=offset,
                received=received,
                parts=parts,
                pending_key=pending_key,
            )
        )

    async def number_upload_part(self, upload_id: str) -> int | None:
        return await self._write_one(value(int, "number_upload_part", id=upload_id))

    async def complete_upload(
        self, upload_id: str, now: float, kept_until: float
    ) -> UploadRow | None:
        return await self._write_one(
            row(UploadRow, "complete_upload", id=upload_id, now=now, kept_until=kept_until)
        )

    async def delete_uploads(self, upload_ids: list[str]) -> int:
        return await self._write_one(count("delete_uploads", ids=upload_ids))

    async def expired_uploads(self, now: float, limit: int = 500) -> list[UploadRow]:
        return await self._read(rows(UploadRow, "expired_uploads", now=now, limit=limit))

    # -- templates ------------------------------------------------------------------------
    async def put_template(
        self, account_id: int, name: str, definition: str, now: float
    ) -> TemplateRow:
        def op() -> Op[TemplateRow]:
            stored = yield from row(
                TemplateRow,
                "put_template",
                account_id=account_id,
                name=name,
                definition=definition,
                now=now,
            )
            assert stored is not None  # an upsert always returns its row
            return stored

        return await self._write_one(op())

    async def template(self, account_id: int, name: str) -> TemplateRow | None:
        return await self._lookup(row(TemplateRow, "template", account_id=account_id, name=name))

    async def templates(self, account_id: int) -> list[TemplateRow]:
        return await self._read(rows(TemplateRow, "templates", account_id=account_id))

    async def delete_template(self, account_id: int, name: str) -> bool:
        deleted = count("delete_template", account_id=account_id, name=name)
        return bool(await self._write_one(deleted))


class ClusterOperations(Operations):
    """What several nodes sharing one database add (``ClusterDatabase``)."""

    clustered = True

    async def join(self, owner: str, name: str) -> int:
        """An earlier process with the same node name is gone (names are unique in a
        cluster), so its running tasks can be taken back at once. The other nodes hear
        of this one at once: a node with peers leaves them the work it cannot start."""

        def op() -> Op[int]:
            yield from count("forget_node_name", name=name, owner=owner)
            yield from notify("j", [owner])
            return (yield from _beat(owner, name))

        return await self._write(op())

    async def heartbeat(self, owner: str, name: str) -> int:
        return await self._write(_beat(owner, name))

    async def leave(self, owner: str) -> None:
        await self._write_one(count("leave", owner=owner))

    async def claim_queued(
        self, owner: str, lane: str, limit: int, now: float, render: Render
    ) -> list[TaskRow]:
        """Start up to ``limit`` queued tasks of ``lane`` for ``owner`` (attempts counted),
        oldest first and round-robin across accounts. Those of the light lane are executing
        (an event recorded); the others are held ``waiting`` until their work begins. A few
        more rows than ``limit`` are looked at so a busy account cannot fill the claim
        alone."""

        def op() -> Op[list[TaskRow]]:
            candidates = yield from rows(QueuedRow, "claim_candidates", lane=lane, limit=limit * 4)
            picked = round_robin(candidates, limit)
            if not picked:
                return []
            claimed = yield from rows(TaskRow, "claim_tasks", keys=picked, owner=owner, now=now)
            yield from notify("c", [r["key"] for r in claimed])
            yield from many(
                "insert_event", [event(r, now, render(r)) for r in claimed if r["stage"] is None]
            )
            order = {key: i for i, key in enumerate(picked)}
            return sorted(claimed, key=lambda r: order[r["key"]])

        return await self._write(op())

    async def stale_tasks(self) -> list[TaskRow]:
        """Executing tasks whose node has been silent for the lease (or is unknown)."""
        return await self._read(rows(TaskRow, "stale_tasks"))

    async def owned_tasks(self, owner: str, started_before: float) -> list[TaskRow]:
        return await self._read(
            rows(TaskRow, "owned_tasks", owner=owner, started_before=started_before)
        )

    async def tasks_by_keys(self, keys: list[str]) -> list[TaskRow]:
        return await self._read(rows(TaskRow, "tasks_by_keys", keys=keys))


ENDED = ("success", "error")


def _held_inputs(tasks: list[dict[str, Any]]) -> Op[None]:
    """Hold the earlier tasks that new ``tasks`` wait for until the commit, and take those
    found ended already off their ``waiting_for`` (and off the ``document`` recorded as
    their first event): an end either commits first and is read here, or waits for this
    commit and then releases the new rows (``_release``)."""
    new = {r["key"] for r in tasks}
    earlier = sorted({k for r in tasks for k in r.get("waiting_for") or () if k not in new})
    if not earlier:
        return
    found = yield from rows(dict[str, str], "lock_inputs", keys=earlier)
    pending = new | {f["key"] for f in found if f["status"] not in ENDED}
    for r in tasks:
        if r.get("waiting_for"):
            _wait_only_for(r, pending)


def _wait_only_for(task: dict[str, Any], pending: set[str]) -> None:
    """Take the inputs not in ``pending`` off a new task's ``waiting_for`` and document."""
    left = [k for k in task["waiting_for"] if k in pending]
    task["waiting_for"] = left or None
    document = task.get("document")
    if isinstance(document, dict):
        if left:
            document["waiting_for"] = left
        else:
            document.pop("waiting_for", None)


def _release(ended: list[str]) -> Op[list[TaskRow]]:
    """The queued tasks waiting for any of the ``ended`` tasks wait for them no longer:
    their rows as they are now. Those that wait for nothing more are announced as new
    queued work, so any node may claim them."""
    if not ended:
        return []
    found = yield from rows(dict[str, str], "waiting_dependents", keys=ended)
    gone = set(ended)
    waiting = {r["key"]: r["waiting_for"] for r in found}
    changed: list[TaskRow] = []
    for key, text in waiting.items():
        before = orjson.loads(text)
        left = [k for k in before if k not in gone] if isinstance(before, list) else []
        updated = yield from row(
            TaskRow, "set_waiting_for", key=key, waiting_for=dumps(left) if left else None
        )
        if updated is not None:
            changed.append(updated)
    yield from notify("n", [r["key"] for r in changed if r["waiting_for"] is None])
    yield from notify("c", [r["key"] for r in changed])
    return changed


def round_robin(candidates: list[QueuedRow], limit: int) -> list[str]:
    """Up to ``limit`` keys, one per account in turn, each account's oldest first."""
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
    return picked


def event(task: TaskRow, now: float, document: object) -> dict[str, object]:
    """The ``insert_event`` parameters of a status change of ``task``."""
    return {
        "account_id": task["account_id"],
        "task_key": task["key"],
        "task_name": task["task_name"],
        "created_at": now,
        "document": dumps(document),
    }


def _beat(owner: str, name: str) -> Op[int]:
    """Record that ``owner`` is alive; how many other nodes are."""
    yield from count("heartbeat", owner=owner, name=name)
    return (yield from value(int, "peers", owner=owner)) or 0
