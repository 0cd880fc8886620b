"""What the tasks API does, independent of HTTP: create, look up, wait for and stream tasks.

Creation validates each definition on its own: a bad one does not fail the request (real
clients retry any non-200 forever, docs/compat.md) but is stored as a task that has already
ended in ``error`` with ``{"parameters": {...}}``. All rows of one request are committed in
one transaction before anything is answered or queued.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson
from marshmallow import ValidationError

from dragon import errors
from dragon.config import Settings
from dragon.database.interface import Database, Row
from dragon.engine import chains, documents, metrics
from dragon.engine.admission import Admission
from dragon.engine.auth import Account
from dragon.engine.bus import Bus, Published, Subscription
from dragon.engine.diagnostics import diagnostics_of
from dragon.engine.queue_position import QueueEstimates
from dragon.engine.templates import Templates
from dragon.net.url_policy import url_problem
from dragon.runtime import disk
from dragon.tasks import TaskSpec
from dragon.tasks.schema import validation_messages

FINAL = ("success", "error")
READ_CHUNK = 500  # keys per status read: one IN list / ANY array of bounded size


def new_key() -> str:
    """A task key, shaped like the original service's: 26 characters of upper-case base32
    of 16 bytes. The first 6 bytes are the creation time in milliseconds, the other 10
    random: 80 bits keep a key unguessable (output URLs contain it).

    Keys made close in time sit close together in the key index, so a create of 100 tasks
    writes a few index pages; with random keys it wrote one page per task, scattered over
    an index that grows with the history, and each commit and checkpoint grew with it.
    """
    millis = time.time_ns() // 1_000_000
    raw = millis.to_bytes(6, "big") + secrets.token_bytes(10)
    return base64.b32encode(raw).decode().rstrip("=")


class TaskQueue(Protocol):
    """What the service needs of the scheduler: room in its queue, a place in its lanes,
    the live progress of executing tasks and the queue positions of queued ones."""

    estimates: QueueEstimates
    on_callback_queued: Callable[[], None]

    def queued_count(self) -> int: ...
    def enqueue(self, account_id: int, key: str, task_name: str, lane: str | None) -> None: ...
    def lane_for(self, task_name: str, params: Mapping[str, object]) -> str: ...
    def share_downloads(self, batch: str, keys: list[str]) -> None: ...
    def live_document(self, key: str) -> dict[str, Any] | None: ...
    async def cancel(self, account_id: int, keys: list[str]) -> int: ...


class StoreChecks(Protocol):
    """Whether a task's ``task_store`` parameter names a store that can take its outputs."""

    def problems(self, task_store: dict[str, Any] | None) -> list[str]: ...


class Service:
    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        bus: Bus,
        scheduler: TaskQueue,
        registry: dict[str, TaskSpec],
        stores: StoreChecks,
    ) -> None:
        self.settings = settings
        self.db = database
        self.bus = bus
        self.scheduler = scheduler
        self.ended = documents.EndedDocuments()  # polled again and again until all end
        self.ended_changes = documents.EndedChanges(database)
        self.templates = Templates(database)
        self.registry = registry
        self.stores = stores
        self.closing = asyncio.Event()
        self.admission = Admission(settings, database.count_active, scheduler.queued_count)

    # -- create ---------------------------------------------------------------------------
    def problems(self, definition: dict[str, Any]) -> dict[str, list[str]] | None:
        """Why a task definition cannot run, as ``{field: [messages]}``; None if it can."""
        name = definition.get("task_name")
        if not isinstance(name, str) or not name:
            return {"task_name": ["this field is required"]}
        spec = self.registry.get(name)
        if spec is None:
            names = ", ".join(sorted(self.registry))
            return {"task_name": [f"unknown task {name[:100]!r}; choose one of: {names}"]}
        try:
            loaded = spec.schema.load({k: v for k, v in definition.items() if k != "task_name"})
        except ValidationError as exc:
            return validation_messages(exc)
        store_problems = self.stores.problems(loaded.get("task_store"))
        if store_problems:
            return {"task_store": store_problems}
        return None

    async def create(
        self,
        account: Account,
        definitions: list[dict[str, Any]],
        watch: Subscription | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Validate, admit, commit and queue; return ``(key, status document)`` in request
        order.

        ``watch`` (a bus subscription) starts following the new keys before they are queued,
        so a stream cannot miss a change. Below the data disk's reserve nothing is created
        (``LowDisk``): a task could not write its output nor even its end.
        """
        self._check_disk()
        definitions = await self.templates.expand(account, definitions)
        now = time.time()
        rows = await self._rows_of(account, definitions, now)
        queued = [r for r in rows if r["status"] == "queued"]
        await self._admit(account, len(queued))
        errbacks = _errbacks(account, rows, now)
        await self._store(rows, errbacks)
        self._publish(account, rows, queued, bool(errbacks), watch)
        return [(r["key"], dict(r["document"])) for r in rows]

    def _check_disk(self) -> None:
        shortage = disk.shortage(self.settings)
        if shortage:
            raise errors.LowDisk(f"{shortage}; nothing was created, retry later")

    async def _rows_of(
        self, account: Account, definitions: list[dict[str, Any]], now: float
    ) -> list[dict[str, Any]]:
        """The new tasks' rows, in request order; a chain's references resolved to keys
        (``RequestError`` for a reference that is malformed, forward, or unknown)."""
        earlier = chains.earlier_keys(definitions)
        known = {r["key"]: r for r in (await self._rows(account, earlier)).values()}
        keys = [new_key() for _ in definitions]
        created: dict[str, dict[str, Any]] = {}
        for key, link in zip(keys, chains.link(definitions, keys, known), strict=True):
            created[key] = self._row(account, key, link, {**known, **created}, now)
        return list(created.values())

    def _row(
        self,
        account: Account,
        key: str,
        link: chains.Link,
        inputs: Mapping[str, Row],
        now: float,
    ) -> dict[str, Any]:
        """The new task's row: queued (waiting for those of its ``inputs`` that have not
        ended), or already ended in error when its definition is invalid or an input
        failed; with its document, which is its first event in the feed."""
        definition = link.stored
        problems = self.problems(link.checked)
        failed = None if problems else chains.failed_input(link.inputs, inputs.__getitem__)
        waiting = [k for k in link.inputs if inputs[k]["status"] not in FINAL]
        task_name = str(definition.get("task_name", ""))[:200]
        row = {
            "key": key,
            "account_id": account.id,
            "task_name": task_name,
            "lane": self.scheduler.lane_for(task_name, definition),
            "params": definition,
            "status": "error" if problems or failed else "queued",
            "error": {"parameters": problems} if problems else failed,
            "error_code": errors.PARAMETERS if problems else None,
            "queued_at": now,
            "completed_at": now if problems or failed else None,
            "started_at": None,
            "progress": None,
            "result": None,
            "inputs": link.inputs,
            "waiting_for": waiting if waiting and not (problems or failed) else None,
        }
        if failed:
            row["error_code"] = errors.DEPENDENCY_FAILED
        # A document reads a row's error as JSON text, as stored (a message is a string).
        row["document"] = documents.document({**row, "error": orjson.dumps(row["error"])})
        return row

    async def _admit(self, account: Account, queued: int) -> None:
        """Refuse the request if its ``queued`` tasks overflow the server's queue, the
        account's limit of active tasks, or the backlog the node drains in a few seconds."""
        if not queued:
            return
        if self.scheduler.queued_count() + queued > self.settings.max_queued_tasks:
            raise errors.Overloaded("the task queue is full; retry later")
        if account.max_active:
            active = await self.db.count_active(account.id)
            if active + queued > account.max_active:
                raise errors.TooManyActive(
                    f"account limit reached: {active} tasks are queued or executing and the"
                    f" limit is {account.max_active}; retry when some have ended"
                )
        await self.admission.admit(account.id, queued)

    async def _store(self, rows: list[dict[str, Any]], errbacks: list[dict[str, Any]]) -> None:
        """Commit every row of the request (and its errbacks) in one transaction."""
        await self.db.insert_tasks(rows, errbacks)
        self.bus.feed_changed()
        for row in rows:
            if row["status"] == "error":
                metrics.task_ended(row["task_name"], self.registry, "error", None, None)
                self.admission.drain.not_drained(1)

    def _publish(
        self,
        account: Account,
        rows: list[dict[str, Any]],
        queued: list[dict[str, Any]],
        errbacks: bool,
        watch: Subscription | None,
    ) -> None:
        """After the commit: wake the callback sender, follow the keys, queue the tasks."""
        if errbacks:
            self.scheduler.on_callback_queued()
        if watch is not None:
            watch.add(r["key"] for r in rows)
        self.scheduler.share_downloads(rows[0]["key"], [r["key"] for r in queued])
        for row in queued:
            if not row["waiting_for"]:  # a chain's task waits for its inputs to end
                self.scheduler.enqueue(account.id, row["key"], row["task_name"], row["lane"])

    # -- look up ----------------------------------------------------------------------------
    async def statuses(
        self, account: Account, keys: list[str], version: int = 2, details: bool = False
    ) -> list[dict[str, Any]]:
        """Status documents of the distinct ``keys`` in first-seen order; unknown keys get an
        error entry."""
        keys = list(dict.fromkeys(keys))
        if not details:
            known = self._unchanged_ends(account, keys, version)
            if known is None:
                known = await self._cached_ends(account, keys, version)
            if len(known) == len(keys):  # a batch polled after its end: nothing is queued
                return [known[key] for key in keys]
        else:
            known = {}
        out = await self._documents(account, keys, known, version, details)
        await self.scheduler.estimates.annotate(out)
        # A task that began while its row was read (or while the queue was read) would be
        # answered queued without a position: its row says executing now, read it again.
        begun = set(self.scheduler.estimates.begun_since(out))
        if begun:
            again = await self._documents(account, list(begun), {}, version, details)
            fresh = {doc["key"]: doc for doc in again}
            out = [fresh.get(doc["key"], doc) for doc in out]
        return out

    async def _documents(
        self,
        account: Account,
        keys: list[str],
        known: dict[str, dict[str, Any]],
        version: int,
        details: bool,
    ) -> list[dict[str, Any]]:
        """The documents of ``keys``: ``known`` ones as they are, the others from their rows
        (unknown keys get an error entry)."""
        found = await self._rows(account, [key for key in keys if key not in known])
        extra = await self._detail_reads(found) if details else None
        out = []
        for key in keys:
            doc = known.get(key)
            if doc is None:
                row = found.get(key)
                if row is None:
                    doc = unknown_task(key, version)
                else:
                    doc = await self._status(row, version, extra)
            out.append(doc)
        return out

    async def list_tasks(
        self,
        account: Account,
        *,
        statuses: Sequence[str] = (),
        task_name: str | None = None,
        after: float | None = None,
        before: float | None = None,
        cursor: tuple[float, int] | None = None,
        limit: int = 50,
    ) -> tuple[list[dict[str, Any]], tuple[float, int] | None]:
        """A page of the account's tasks, newest first (``Database.list_tasks``): their v2
        documents as a status read gives them (live progress, queue estimates) with
        ``task_name``, and the cursor of the next page (None on the last). One row more than
        the page is read, so a next page is promised only when there is one."""
        found = await self.db.list_tasks(
            account.id,
            statuses=statuses,
            task_name=task_name,
            after=after,
            before=before,
            cursor=cursor,
            limit=limit + 1,
        )
        page = found[:limit]
        docs = [{**await self._status(row, 2, None), "task_name": row["task_name"]} for row in page]
        await self.scheduler.estimates.annotate(docs)
        more = len(found) > limit
        return docs, ((page[-1]["queued_at"], page[-1]["seq"]) if more and page else None)

    async def _rows(self, account: Account, keys: list[str]) -> dict[str, Row]:
        """The account's rows among ``keys``, read in chunks of ``READ_CHUNK``."""
        found: dict[str, Row] = {}
        for i in range(0, len(keys), READ_CHUNK):
            for r in await self.db.get_tasks(keys[i : i + READ_CHUNK], account.id):
                found[r["key"]] = r
        return found

    async def _detail_reads(self, found: dict[str, Row]) -> _Details:
        """What ``details=true`` adds to the rows: callback deliveries, stored diagnostics."""
        deliveries: dict[str, list[Row]] = {}
        if found:
            for d in await self.db.deliveries_for(list(found)):
                deliveries.setdefault(d["task_key"], []).append(d)
        failed = [k for k, r in found.items() if r["status"] == "error"]
        diagnostics = await self.db.task_diagnostics(failed) if failed else {}
        return _Details(deliveries, diagnostics)

    async def _status(self, row: Row, version: int, extra: _Details | None) -> dict[str, Any]:
        """A known task's document: the live progress of an executing one, the details."""
        key = row["key"]
        doc = self.ended.document(row, version)
        live = self.scheduler.live_document(key)
        if live is not None and row["status"] == "executing":
            doc["progress"] = live.get("progress", doc["progress"])
            if "stage" in live:
                doc["stage"] = live["stage"]
        if extra is not None:
            doc.update(self._details(row, extra.deliveries.get(key, [])))
            if row["status"] == "error":
                doc["diagnostics"] = await diagnostics_of(row, extra.diagnostics.get(key))
        return doc

    def _unchanged_ends(
        self, account: Account, keys: list[str], version: int
    ) -> dict[str, dict[str, Any]] | None:
        """``_cached_ends`` when nothing need be awaited (the count is fresh and every
        document is confirmed under it), else None: the poll of an ended batch answered
        without a coroutine more."""
        changes = self.ended_changes.fresh_count()
        if changes is None or len(keys) > READ_CHUNK:
            return None
        return self.ended.unchanged(keys, account.id, changes, version)

    async def _cached_ends(
        self, account: Account, keys: list[str], version: int
    ) -> dict[str, dict[str, Any]]:
        """When every key's document is cached (a client polling a batch that has ended),
        those documents, less any whose task has gone; else nothing, and the caller reads
        whole rows. The ``ended_changes`` count is read (``EndedChanges``); if it has not
        moved since the last read of these keys' rows, that is all, else their ends are
        read again."""
        if not keys or len(keys) > READ_CHUNK or not all(key in self.ended for key in keys):
            return {}
        # Read first: a change that lands during the narrow read shows at the next poll.
        changes = await self.ended_changes.read()
        docs = self.ended.unchanged(keys, account.id, changes, version)
        if docs is not None:
            return docs
        docs = {}
        for row in await self.db.task_ends(keys, account.id):
            doc = self.ended.confirm(row["key"], row["completed_at"], account.id, changes, version)
            if doc is not None:
                docs[row["key"]] = doc
        return docs

    def _details(self, row: Row, deliveries: list[Row]) -> dict[str, Any]:
        params = documents.from_json(row["params"]) or {}
        store = params.get("task_store") if isinstance(params, dict) else None
        return {
            "task_name": row["task_name"],
            "parameters": documents.mask(params),
            "store": documents.mask(store or {"type": "persistent"}),
            "attempts": row["attempts"],
            "node": (row["owner"] or "").rpartition("/")[0] or None,  # runs or ran it
            "callbacks": [
                {
                    "url": documents.mask(d["url"], "url"),
                    "state": d["state"],
                    "attempts": d["attempts"],
                    "last_status": d["last_status"],
                    "last_error": d["last_error"],
                    "next_try": documents.iso(d["next_at"]) if d["state"] == "pending" else None,
                    "webhook_id": d["webhook_id"],
                }
                for d in deliveries
            ],
        }

    # -- wait and stream ---------------------------------------------------------------------
    async def wait(
        self, account: Account, keys: list[str], version: int = 2, details: bool = False
    ) -> list[dict[str, Any]]:
        """Block until every task has ended, then return their statuses.

        The subscription is bounded like any other; if a burst of changes overflows it,
        the waiter re-reads the statuses and subscribes again rather than giving up.
        """
        unique = list(dict.fromkeys(keys))
        while not self.bus.closed:
            with self.bus.subscribe(unique, self.queue_size(len(unique))) as sub:
                ended = await self._ends(sub, await self.statuses(account, unique, version))
            if ended is None:
                continue  # overflowed (or closing): read and subscribe again
            if details:
                break  # the details come from the rows
            return [documents.in_version(ended[key], version) for key in unique]
        return await self.statuses(account, unique, version, details)

    async def until_ended(
        self,
        account: Account,
        created: list[tuple[str, dict[str, Any]]],
        sub: Subscription,
        version: int,
    ) -> list[dict[str, Any]]:
        """The documents of tasks just created under the subscription ``sub`` (which follows
        them), once all have ended: what a blocking create answers, without reading a row."""
        ended = await self._ends(sub, [doc for _, doc in created])
        if ended is None:
            return await self.wait(account, [key for key, _ in created], version)
        return [documents.in_version(ended[key], version) for key, _ in created]

    async def _ends(
        self, sub: Subscription, current: list[dict[str, Any]]
    ) -> dict[str, dict[str, Any]] | None:
        """Each task's final document, as in ``current`` or as published when it ends;
        None if the subscription overflowed or the server is closing (read them then)."""
        ended = {d["key"]: d for d in current if d["status"] in FINAL}
        pending = {d["key"] for d in current} - ended.keys()
        while pending:
            update = await self._next(sub)
            if update is None:
                return None
            if update.key in pending and update.doc.get("status") in FINAL:
                pending.discard(update.key)
                ended[update.key] = update.doc
        return ended

    async def _next(self, sub: Subscription) -> Published | None:
        """The next published change, or None when the server is closing or we overflowed."""
        if sub.overflowed and sub.queue.empty():
            return None
        update = await sub.get()
        # Anything else than a change is one of the markers, OVERFLOW or CLOSING.
        return update if isinstance(update, Published) else None

    def close(self) -> None:
        """Refuse new tasks. Blocked requests and streams keep waiting: the tasks running
        here may still end within the shutdown grace, and they answer with those ends. The
        scheduler releases them when it has stopped (``Scheduler.stop`` closes the bus)."""
        self.closing.set()

    def queue_size(self, keys: int) -> int:
        """A subscription's bound: room for every task to change a few times at once."""
        return max(self.bus.queue_size, 4 * keys)

    async def stream(
        self, account: Account, first: list[dict[str, Any]], sub: Subscription, version: int = 2
    ) -> AsyncIterator[bytes]:
        """Yield NDJSON lines: the list of current statuses, then each change until all
        have ended. A change's line is the one encoded once for all its streams.

        If a burst of changes overflows the subscription, the stream re-reads the statuses
        of the tasks still pending and goes on with a fresh subscription: a change may be
        skipped, never the final one. (A reader that stops reading is cut off by the
        handler's write timeout, not here.)
        """
        pending = {d["key"] for d in first if d["status"] not in FINAL}
        line = documents.ndjson_line(first)
        del first  # a stream may last long: keep its first answer only as it is written
        yield line
        del line
        own = None
        try:
            while pending:
                update = await self._next(sub)
                if update is None:
                    if not sub.overflowed or self.bus.closed:
                        return
                    sub.__exit__()
                    sub = own = self.bus.subscribe(pending, self.queue_size(len(pending)))
                    for doc in await self.statuses(account, sorted(pending), version):
                        yield documents.ndjson_line(doc)
                        if doc["status"] in FINAL:
                            pending.discard(doc["key"])
                    continue
                if update.key not in pending:
                    continue
                yield update.line(version)
                if update.doc.get("status") in FINAL:
                    pending.discard(update.key)
        finally:
            if own is not None:
                own.__exit__()

    # -- cancel -----------------------------------------------------------------------------
    async def cancel(
        self, account: Account, keys: list[str], version: int = 2
    ) -> list[dict[str, Any]]:
        """Cancel the account's tasks among ``keys`` that have not ended, then answer the
        statuses of the distinct keys as ``statuses`` does: the cancelled ones ended in
        ``error`` with ``cancelled``, ended ones as they were, unknown keys and other
        accounts' ``unknown_task``. Cancelling again changes nothing."""
        keys = list(dict.fromkeys(keys))
        ended = 0
        for i in range(0, len(keys), READ_CHUNK):
            ended += await self.scheduler.cancel(account.id, keys[i : i + READ_CHUNK])
        # Ended by a request, not drained by the node: the admission's rate leaves them out.
        self.admission.drain.not_drained(ended)
        return await self.statuses(account, keys, version)


class _Details:
    """The reads ``details=true`` adds: each task's callback deliveries, and the stored
    diagnostics of the failed ones."""

    __slots__ = ("deliveries", "diagnostics")

    def __init__(self, deliveries: dict[str, list[Row]], diagnostics: dict[str, Any]) -> None:
        self.deliveries = deliveries
        self.diagnostics = diagnostics


def unknown_task(key: str, version: int) -> dict[str, Any]:
    """The entry of a key that names none of the account's tasks."""
    return {
        "key": key,
        "status": "error",
        "progress": 100.0,
        "events": {},
        ("result" if version == 1 else "error"): "unknown task key",
        "error_code": "unknown_task",
    }


def _errbacks(account: Account, rows: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """The errback deliveries of the tasks refused at creation that asked for one."""
    return [
        {
            "task_key": r["key"],
            "account_id": account.id,
            "url": r["params"]["url_errback"],
            "body": orjson.dumps(documents.document(r)),
            "webhook_id": f"msg_{r['key']}",
            "next_at": now,
        }
        for r in rows
        if r["status"] == "error"
        and isinstance(r["params"].get("url_errback"), str)
        and not url_problem(r["params"]["url_errback"])
    ]
