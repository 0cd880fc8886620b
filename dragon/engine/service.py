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
from collections.abc import AsyncIterator
from typing import Any

import orjson
from marshmallow import ValidationError

from dragon import errors
from dragon.config import Settings
from dragon.database.interface import Database, Row
from dragon.engine import documents, metrics
from dragon.engine.auth import Account
from dragon.engine.bus import CLOSING, OVERFLOW, Bus, Published
from dragon.engine.diagnostics import diagnostics_of
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


class AccountLimit(Exception):
    """The account has too many active tasks (HTTP 401 with Retry-After, docs/compat.md)."""


class Overloaded(Exception):
    """The server's queue is full (HTTP 503 with Retry-After)."""


class Service:
    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        bus: Bus,
        scheduler: Any,
        registry: dict[str, TaskSpec],
        stores: Any,
    ) -> None:
        self.settings = settings
        self.db = database
        self.bus = bus
        self.scheduler = scheduler
        self.ended = documents.EndedDocuments()  # polled again and again until all end
        self.registry = registry
        self.stores = stores
        self.closing = asyncio.Event()

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
        self, account: Account, definitions: list[dict[str, Any]], watch: Any = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Validate, commit and queue; return ``(key, status document)`` in request order.

        ``watch`` (a bus subscription) starts following the new keys before they are queued,
        so a stream cannot miss a change. Below the data disk's reserve nothing is created
        (503 with Retry-After): a task could not write its output nor even its end.
        """
        shortage = disk.shortage(self.settings)
        if shortage:
            raise errors.RequestError(
                "disk",
                f"{shortage}; nothing was created, retry later",
                "server",
                503,
                {"Retry-After": "60"},
            )
        now = time.time()
        rows: list[dict[str, Any]] = []
        for definition in definitions:
            problems = self.problems(definition)
            rows.append(
                {
                    "key": new_key(),
                    "account_id": account.id,
                    "task_name": str(definition.get("task_name", ""))[:200],
                    "params": definition,
                    "status": "error" if problems else "queued",
                    "error": {"parameters": problems} if problems else None,
                    "error_code": errors.PARAMETERS if problems else None,
                    "queued_at": now,
                    "completed_at": now if problems else None,
                    "started_at": None,
                    "progress": None,
                    "result": None,
                }
            )
            rows[-1]["document"] = documents.document(rows[-1])  # its event in the feed
        queued = [r for r in rows if r["status"] == "queued"]
        if queued and self.scheduler.queued_count() + len(queued) > self.settings.max_queued_tasks:
            raise Overloaded("the task queue is full; retry later")
        if queued and account.max_active:
            active = await self.db.count_active(account.id)
            if active + len(queued) > account.max_active:
                raise AccountLimit(
                    f"account limit reached: {active} tasks are queued or executing and the"
                    f" limit is {account.max_active}; retry when some have ended"
                )
        errbacks = [
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
        await self.db.insert_tasks(rows, errbacks)
        self.bus.feed_changed()
        for row in rows:
            if row["status"] == "error":
                metrics.task_ended(row["task_name"], self.registry, "error", None, None)
        if errbacks:
            self.scheduler.on_callback_queued()
        if watch is not None:
            watch.add(r["key"] for r in rows)
        self.scheduler.shared.register(rows[0]["key"], [r["key"] for r in queued])
        for row in queued:
            self.scheduler.enqueue(account.id, row["key"], row["task_name"])
        return [(r["key"], documents.document(r)) for r in rows]

    # -- look up ----------------------------------------------------------------------------
    async def statuses(
        self, account: Account, keys: list[str], version: int = 2, details: bool = False
    ) -> list[dict[str, Any]]:
        """Status documents of the distinct ``keys`` in first-seen order; unknown keys get an
        error entry."""
        keys = list(dict.fromkeys(keys))
        known = {} if details else await self._cached_ends(account, keys, version)
        found: dict[str, Row] = {}
        rest = [key for key in keys if key not in known]
        for i in range(0, len(rest), READ_CHUNK):
            for r in await self.db.get_tasks(rest[i : i + READ_CHUNK], account.id):
                found[r["key"]] = r
        deliveries: dict[str, list[Any]] = {}
        if details and found:
            for d in await self.db.deliveries_for(list(found)):
                deliveries.setdefault(d["task_key"], []).append(d)
        failed = [k for k, r in found.items() if r["status"] == "error"] if details else []
        diagnostics = await self.db.task_diagnostics(failed) if failed else {}
        out = []
        for key in keys:
            if key in known:
                out.append(known[key])
                continue
            row = found.get(key)
            if row is None:
                out.append(
                    {
                        "key": key,
                        "status": "error",
                        "progress": 100.0,
                        "events": {},
                        ("result" if version == 1 else "error"): "unknown task key",
                        "error_code": "unknown_task",
                    }
                )
                continue
            doc = self.ended.document(row, version)
            live = self.scheduler.docs.get(key)
            if live is not None and row["status"] == "executing":
                doc["progress"] = live.get("progress", doc["progress"])
            if details:
                doc.update(self._details(row, deliveries.get(key, [])))
                if row["status"] == "error":
                    doc["diagnostics"] = await diagnostics_of(row, diagnostics.get(key))
            out.append(doc)
        await self.scheduler.estimates.annotate(out)
        return out

    async def _cached_ends(
        self, account: Account, keys: list[str], version: int
    ) -> dict[str, dict[str, Any]]:
        """When every key's document is cached (a client polling a batch that has ended),
        those documents, less any whose task has gone; else nothing, and the caller reads
        whole rows. The ``ended_changes`` count is read; if it has not moved since the
        last read of these keys' rows, that is all, else their ends are read again."""
        if not keys or len(keys) > READ_CHUNK or not all(key in self.ended for key in keys):
            return {}
        # Read first: a change that lands during the narrow read shows at the next poll.
        changes = await self.db.ended_changes()
        docs = self.ended.unchanged(keys, account.id, changes, version)
        if docs is not None:
            return docs
        docs = {}
        for row in await self.db.task_ends(keys, account.id):
            doc = self.ended.confirm(row["key"], row["completed_at"], account.id, changes, version)
            if doc is not None:
                docs[row["key"]] = doc
        return docs

    def _details(self, row: Any, deliveries: list[Any]) -> dict[str, Any]:
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
        while not self.closing.is_set():
            with self.bus.subscribe(unique, self.queue_size(len(unique))) as sub:
                ended = await self._ends(sub, await self.statuses(account, unique, version))
            if ended is None:
                continue  # overflowed (or closing): read and subscribe again
            if details:
                break  # the details come from the rows
            return [documents.in_version(ended[key], version) for key in unique]
        return await self.statuses(account, unique, version, details)

    async def until_ended(
        self, account: Account, created: list[tuple[str, dict[str, Any]]], sub: Any, version: int
    ) -> list[dict[str, Any]]:
        """The documents of tasks just created under the subscription ``sub`` (which follows
        them), once all have ended: what a blocking create answers, without reading a row."""
        ended = await self._ends(sub, [doc for _, doc in created])
        if ended is None:
            return await self.wait(account, [key for key, _ in created], version)
        return [documents.in_version(ended[key], version) for key, _ in created]

    async def _ends(
        self, sub: Any, current: list[dict[str, Any]]
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

    async def _next(self, sub: Any) -> Published | None:
        """The next published change, or None when the server is closing or we overflowed."""
        if sub.overflowed and sub.queue.empty():
            return None
        update = await sub.get()
        return None if update is OVERFLOW or update is CLOSING else update

    def close(self) -> None:
        """Refuse new tasks and release every blocked request and stream."""
        self.closing.set()
        self.bus.close()

    def queue_size(self, keys: int) -> int:
        """A subscription's bound: room for every task to change a few times at once."""
        return max(self.bus.queue_size, 4 * keys)

    async def stream(
        self, account: Account, first: list[dict[str, Any]], sub: Any, version: int = 2
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
                    if not sub.overflowed or self.closing.is_set():
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
