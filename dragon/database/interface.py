"""What the engine needs from a database: the ``Database`` protocol every backend implements.

The engine, the stores and the handlers speak only this protocol. Its rules are written once
(``dragon.database.operations``); each backend keeps only its dialect of the SQL and its way
of running it (``dragon.database.sqlite``, ``dragon.database.postgres``). The methods are
grouped the way the server uses them:

- accounts: credential look-ups on every request, and the ``dragon accounts`` commands;
- tasks: creating a batch in one transaction, claiming a queued task for one runner
  (``start_task`` returns the row only if this runner won it), progress and partial
  results, and ending a task together with its callback in one transaction;
- files and usage: the storage index behind the storage API and the expiry sweeper;
- the callback outbox: deliveries due now, and their outcome;
- the event feed: each status change recorded with the write that made it;
- resumable uploads: their rows, the offset each has stored, their expiry.

``ClusterDatabase`` adds what several nodes sharing one database need (PostgreSQL:
notifications, batch claims, heartbeats and advisory locks; see ``dragon.engine.cluster``).

Rows are dicts typed by ``dragon.database.rows`` (``AccountRow``, ``TaskRow``, ``FileRow``,
``DeliveryRow``, ``EventRow``...), with the column names of the tables; ``params``,
``result`` and ``error`` hold JSON text.
Writes resolve only after their commit, so nothing uncommitted is ever published or
acknowledged. A backend raises ``Busy`` when the database stayed locked too long (the API
answers 503), ``DiskFull`` when its disk is full (503 too) and ``AccountExists`` for a
duplicate account name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from dragon.database.rows import (
    AccountRow,
    DeliveryRow,
    DeliveryStateRow,
    EventRow,
    FileRow,
    ListedTaskRow,
    OverviewRows,
    TaskEndRow,
    TaskRow,
    TemplateRow,
    UploadRow,
)

Row = Mapping[str, Any]  # any row, for code that reads a column or two of several kinds
T = TypeVar("T")
Render = Callable[[TaskRow], object]  # a changed row -> the status document its event records


class Busy(Exception):
    """The database stayed locked past its timeout: retry later (HTTP 503)."""


class DiskFull(Exception):
    """The disk holding the database is full: nothing was written; retry once space is
    back (HTTP 503; the scheduler retries a task's start or end until it is recorded)."""


class AccountExists(Exception):
    """An account with that name exists already."""


class Database(Protocol):
    # How many of this process's own commits changed ``ended_changes`` (see there).
    ended_changed_here: int

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        """Connect and bring the schema to the newest version."""

    def close(self) -> None: ...

    # -- accounts -----------------------------------------------------------------------------
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
        """A new account with zero usage; raises ``AccountExists``."""

    async def update_account(
        self,
        name: str,
        *,
        referrers: list[str] | None = None,
        max_active: int | None = None,
        create_rate: float | None = None,
        max_running: int | None = None,
    ) -> bool:
        """Change the given settings of an account (``create_rate`` < 0 resets it to the
        server's default; ``max_running`` 0 lifts the limit); False if there is no such
        account."""

    async def account_by_secret_hash(self, secret_hash: bytes) -> AccountRow | None: ...

    async def account_by_api_key(self, api_key: str) -> AccountRow | None: ...

    async def account_by_id(self, account_id: int) -> AccountRow | None: ...

    async def account_by_name(self, name: str) -> AccountRow | None: ...

    async def list_accounts(self) -> list[AccountRow]: ...

    async def delete_account(self, name: str) -> bool:
        """The account, its tasks, files and undelivered callbacks; False if unknown."""

    async def rotate_webhook_secret(self, name: str, secret: str, keep_old_until: float) -> bool:
        """A new webhook secret; the old one still signs until ``keep_old_until``."""

    async def set_expiration(self, account_id: int, days: int) -> None: ...

    # -- tasks -------------------------------------------------------------------------------
    async def insert_tasks(
        self, rows: Iterable[dict[str, Any]], errbacks: Iterable[dict[str, Any]] = ()
    ) -> None:
        """New tasks (queued, or already ended in error) and the errbacks of failed ones.

        A row may wait for earlier tasks (chains): ``inputs``, the keys of the tasks whose
        outputs it reads, and ``waiting_for``, those it waits for (a list, or None). Those
        of other requests are held until the commit, so none ends unseen; any found ended
        already is taken off the row's ``waiting_for`` (and its ``document``) here."""

    async def get_tasks(self, keys: list[str], account_id: int) -> list[TaskRow]:
        """The account's tasks among ``keys`` (a point read on the hot path)."""

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
        """Up to ``limit`` of the account's tasks, newest first (``queued_at``, then
        ``seq``), strictly after ``cursor`` in that order: of ``statuses`` as documents
        show them (a held task is queued), named ``task_name``, queued from ``after`` and
        before ``before``."""

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
        """The account's tasks (named ``task_name`` if given) counted by status and by error
        code, of those queued from ``after`` and before ``before``; and those that ended
        from ``start`` to ``end`` by status and slot of ``bucket`` seconds."""

    async def task_ends(self, keys: list[str], account_id: int) -> list[TaskEndRow]:
        """``key``, ``status`` and ``completed_at`` of the account's tasks among ``keys``:
        the narrow read of a poll whose documents are all cached."""

    async def ended_changes(self) -> int:
        """How many transactions have ever deleted tasks (retention, a deleted account) or
        ended a task that had already ended (a node that lost its lease finishing late).

        Nothing else changes an ended task's row, so while this count stays where it was
        when a read saw a row, the row is still there as it was: a poll of cached
        documents reads this one number instead of their rows. This process's own such
        commits also count in ``ended_changed_here``, which a reader may check first.
        """

    async def start_task(
        self,
        key: str,
        owner: str,
        now: float,
        render: Render | None = None,
        *,
        waiting: bool = False,
    ) -> TaskRow | None:
        """Claim a queued task for ``owner`` (queued -> executing, one more attempt).

        Returns the row as it is now; it is ours only if its status is ``executing`` and
        its owner is ``owner``. If it changed and ``render`` is given, the event feed
        records ``render(row)`` in the same transaction (as every write below does).
        With ``waiting`` the task is held for ``owner`` but its work has not begun: its
        documents say queued until ``begin_work``, and no event is recorded.
        """

    async def begin_work(
        self, key: str, owner: str, now: float, render: Render | None = None
    ) -> TaskRow | None:
        """The work of ``owner``'s waiting task begins now (its documents say executing,
        started now); None if it is not ``owner``'s waiting task (ended, taken back)."""

    async def account_limits(self) -> dict[int, int]:
        """``{account id: max_running}`` of every account with a limit (0: none)."""

    async def set_progress(
        self, updates: dict[str, float], documents: dict[str, Any] | None = None
    ) -> None:
        """Progress of executing tasks; ``documents`` are recorded as feed events."""

    async def set_partial(self, key: str, result: object, document: object = None) -> None: ...

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
        """End a task and, in the same transaction, queue its callback, record its event
        and keep its ``diagnostics`` (why it failed, for ``details=true``). A task that was
        cancelled is left as it is (None): its run may end after the cancel.

        The queued tasks that waited for this one (chains) wait for it no longer, in the
        same transaction; their rows as they are then are added to ``dependents`` (those
        whose ``waiting_for`` is now None may start: the caller queues them)."""

    async def requeue_task(self, key: str, render: Render | None = None) -> None:
        """executing -> queued (a runner stopped before the task ended)."""

    async def unfinished_tasks(self) -> list[TaskRow]:
        """Queued and executing tasks, oldest first (recovery at start)."""

    async def prune_tasks(self, ended_before: float, limit: int) -> int:
        """Delete up to ``limit`` tasks that ended before ``ended_before``, with their
        delivered or failed callbacks; returns how many went (retention)."""

    async def count_active(self, account_id: int) -> int: ...

    async def task_diagnostics(self, keys: list[str]) -> dict[str, Any]:
        """The recorded diagnostics of those ``keys`` that have some."""

    async def recent_run_times(self, task_name: str, limit: int) -> list[float]:
        """Run times (seconds) of the latest ``limit`` successful runs of ``task_name``."""

    # -- the event feed ------------------------------------------------------------------
    async def events_after(self, account_id: int, after: int, limit: int) -> list[EventRow]:
        """The account's events with an id above ``after``, oldest first (``id``,
        ``task_key``, ``task_name``, ``document`` as JSON text)."""

    async def event_horizon(self) -> int:
        """The newest event id deleted by retention (0 if none): older cursors lost events."""

    async def prune_events(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` of the oldest events recorded before ``before``."""

    # -- files and usage ---------------------------------------------------------------------
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
        """Record a stored file (replacing the same output of an earlier run), with its
        store's policy: ``listed`` by the storage API, ``counted`` in the account's usage."""

    async def file_for_output(self, task_key: str, output: str) -> FileRow | None: ...

    async def file_by_location(self, location: str) -> FileRow | None: ...

    async def list_files(
        self, account_id: int, task_key: str | None = None, urls: list[str] | None = None
    ) -> list[FileRow]:
        """An account's listed files: all, one task's, or those with ``urls``."""

    async def file_directories(self, account_id: int) -> list[str]:
        """The task keys that hold listed files."""

    async def delete_files(self, ids: list[int]) -> int:
        """Forget files and take the counted ones off usage; returns the bytes freed."""

    async def usage(self, account_id: int) -> int: ...

    async def expired_files(self, now: float, limit: int = 500) -> list[FileRow]: ...

    # -- callback outbox ---------------------------------------------------------------------
    async def due_deliveries(self, now: float, limit: int = 100) -> list[DeliveryRow]:
        """Pending deliveries due by ``now``, with the account's current webhook secrets.

        Oldest first, taken in turns across accounts where the backend can (SQLite), so one
        account's backlog does not hide another's; the sender then shares its slots between
        accounts and receivers."""

    async def next_delivery_time(self) -> float | None: ...

    async def record_delivery(
        self,
        delivery_id: int,
        state: str,
        attempts: int,
        next_at: float,
        last_status: int | None,
        last_error: str | None,
    ) -> None: ...

    async def release_deliveries(self, ids: list[int], now: float) -> None:
        """Deliveries taken by ``due_deliveries`` but not attempted (the sender is stopping):
        due again at ``now``, for the next node (or this one, restarted) to send."""

    async def deliveries_for(self, keys: list[str]) -> list[DeliveryStateRow]: ...

    # -- cancel ----------------------------------------------------------------------------
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
        """End the account's queued and executing tasks among ``keys`` (error,
        ``cancelled``) with their errbacks and events, in one transaction; the rows ended.
        A cancelled task stays so: a later ``finish_task`` of it writes nothing. Their
        dependents are released as ``finish_task`` does."""

    async def task_files(self, task_key: str) -> list[FileRow]:
        """Every file the task recorded, read after the writes queued before it."""

    # -- resumable uploads ---------------------------------------------------------------
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
        """A new unfinished upload of ``length`` bytes; False (nothing written) when the
        account's unfinished uploads would then add up to more than ``most_pending``.
        ``multipart``: the S3 multipart upload that will hold its bytes (no parts yet)."""

    async def upload(self, upload_id: str) -> UploadRow | None: ...

    async def advance_upload(
        self, upload_id: str, offset: int, received: int, now: float, kept_until: float
    ) -> UploadRow | None:
        """The upload holds ``received`` bytes durably, up from ``offset``; on its last
        byte it is finished (``completed_at`` now) and kept until ``kept_until``. None
        when it was not at ``offset`` (another writer moved it, it is gone or finished)."""

    async def store_upload_parts(
        self, upload_id: str, offset: int, received: int, parts: str, pending_key: str | None
    ) -> UploadRow | None:
        """An upload held in S3 parts holds ``received`` bytes, up from ``offset``: the
        ``parts`` (JSON) and the object ``pending_key`` with the bytes past them. None when
        it was not at ``offset`` (another writer moved it, it is gone or finished). It is
        not finished here, even at its length: ``complete_upload`` once S3 joined the parts."""

    async def number_upload_part(self, upload_id: str) -> int | None:
        """A part number no other writer of the upload gets (ascending); None if it is gone."""

    async def complete_upload(
        self, upload_id: str, now: float, kept_until: float
    ) -> UploadRow | None:
        """Finish an upload that holds all its bytes (``completed_at`` now, kept until
        ``kept_until``); None when it is gone, already finished or not whole."""

    async def delete_uploads(self, upload_ids: list[str]) -> int:
        """Forget uploads; returns how many there were."""

    async def expired_uploads(self, now: float, limit: int = 500) -> list[UploadRow]:
        """Uploads past their ``expires_at``, oldest first."""

    # -- templates ------------------------------------------------------------------------
    async def put_template(
        self, account_id: int, name: str, definition: str, now: float
    ) -> TemplateRow:
        """Store the account's template ``name`` (replacing one of that name)."""

    async def template(self, account_id: int, name: str) -> TemplateRow | None: ...

    async def templates(self, account_id: int) -> list[TemplateRow]:
        """The account's templates, by name."""

    async def delete_template(self, account_id: int, name: str) -> bool:
        """False if the account had no template of that name."""


class Callback:
    """A callback to queue with a task's end: where to, and how to render its body.

    The body is the task's final status document, which the engine builds; the backend
    calls ``render`` with the ended row inside the ending transaction.
    """

    __slots__ = ("next_at", "render", "url")

    def __init__(self, url: str, render: Callable[[TaskRow], bytes], next_at: float) -> None:
        self.url = url
        self.render = render
        self.next_at = next_at


class ClusterDatabase(Database, Protocol):
    """A database several nodes share (PostgreSQL): what ``dragon.engine.cluster`` adds.

    A backend that implements it sets ``clustered = True``; the scheduler then runs as one
    node among several. ``owner`` is a node's boot id (as ``start_task`` records it).
    """

    clustered: bool

    async def listen(self, handler: Callable[[str, list[str]], None]) -> None:
        """Call ``handler(kind, keys)`` for other nodes' committed changes: ``n`` new
        queued tasks, ``c`` changed tasks, ``j`` a node joined, ``r`` (no keys) after a
        reconnection, when notifications may have been lost. Returns once listening."""

    async def join(self, owner: str, name: str) -> int:
        """A node starts (an earlier process of the same name is gone); the other nodes
        are told (notification ``j``). Returns how many other nodes are alive."""

    async def heartbeat(self, owner: str, name: str) -> int:
        """This node is alive; returns how many other nodes are."""

    async def leave(self, owner: str) -> None:
        """A node stopped cleanly."""

    async def claim_queued(
        self,
        owner: str,
        lane: str,
        limit: int,
        now: float,
        render: Render,
    ) -> list[TaskRow]:
        """Start up to ``limit`` queued tasks of ``lane`` for ``owner``, skipping those
        another node is claiming, round-robin across accounts (held ``waiting`` outside
        the light lane, as ``start_task(waiting=True)``)."""

    async def stale_tasks(self) -> list[TaskRow]:
        """Executing tasks whose node has been silent for the lease."""

    async def owned_tasks(self, owner: str, started_before: float) -> list[TaskRow]:
        """Executing tasks ``owner`` started or claimed before ``started_before``."""

    async def tasks_by_keys(self, keys: list[str]) -> list[TaskRow]:
        """Rows of ``keys`` whatever their account (to publish other nodes' changes)."""

    async def try_exclusive(self, lock: int, run: Callable[[], Awaitable[T]]) -> T | None:
        """Run ``run()`` unless another node holds ``lock`` (then None)."""
