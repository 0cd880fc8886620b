"""The status document of a task, in the v2 shape and the older v1 shape.

v2 (docs/api.md): ``status``, ``key``, ``progress``, ``events`` (ISO 8601 with offset),
``result`` on success (or a partial one while executing), ``error`` on failure, plus our
``error_code``. v1 (docs/compat.md) put error details under ``result`` instead of ``error``.
"""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from dragon.database.interface import Database, Row
from dragon.net import scrub

MASK = "********"


@functools.lru_cache(maxsize=4096)
def iso(ts: float | None) -> str | None:
    """``ts`` in ISO 8601 with offset. Memoized: a task's document is built several times
    (its feed events, its publication, each status read), and a batch's tasks share
    their ``queued`` time; formatting a datetime costs 20 times a cache hit."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat()


def from_json(value: object) -> object:
    """A JSON column's value (rows keep ``params``, ``result`` and ``error`` as JSON text)."""
    if value is None or not isinstance(value, str | bytes):
        return value
    return orjson.loads(value)


def progress(status: str, stored: float | None) -> float:
    """A number from 0 to 100 in every status, so a client can always draw a bar: 0 while
    queued, what the task reported while executing, 100 once it has ended either way."""
    if status in ("success", "error"):
        return 100.0
    if status == "executing" and stored is not None:
        return float(stored)
    return 0.0


def document(row: Row, version: int = 2) -> dict[str, Any]:
    """Build the status document from a tasks row (a backend's row, or a dict).

    A task its node holds before its work begins (``stage`` set: its inputs download, or
    it waits for a slot) is ``queued``, without a start: ``executing`` means its work runs.
    A queued task of a chain names the tasks it waits for (``waiting_for``).
    """
    status = row["status"]
    waiting = status == "executing" and row.get("stage") is not None
    if waiting:
        status = "queued"
    events = {"queued": iso(row["queued_at"])}
    if row["started_at"] is not None and not waiting:
        events["started"] = iso(row["started_at"])
    if row["completed_at"] is not None:
        events["completed"] = iso(row["completed_at"])
    doc: dict[str, Any] = {
        "status": status,
        "key": row["key"],
        "progress": progress(status, row["progress"]),
        "events": events,
    }
    if status == "queued":
        waiting = from_json(row.get("waiting_for"))
        if waiting:  # a chain's task whose inputs have not all ended
            doc["waiting_for"] = waiting
    result = from_json(row["result"])
    if status in ("success", "executing") and result is not None:
        doc["result"] = result
    if status == "error":
        error = from_json(row["error"])
        if version == 1:
            doc["result"] = error
        else:
            doc["error"] = error
        doc["error_code"] = row["error_code"]
    return doc


class EndedChanges:
    """``Database.ended_changes`` for ``EndedDocuments``, read again only when this process
    changed it or ``fresh`` seconds have passed.

    Polls of ended tasks read that count on every request, and the query was a sixth of a
    status request's CPU. This process's own deletions and second ends are seen at once
    (``Database.ended_changed_here`` moves); another process's or node's (a retention
    sweep elsewhere, ``dragon accounts delete``) within ``fresh`` seconds, as if the poll
    had come that much earlier.
    """

    def __init__(self, database: Database, fresh: float = 0.1) -> None:
        self.db = database
        self.fresh = fresh
        self._count = 0
        self._here = -1  # ``ended_changed_here`` when the count was read (-1: never)
        self._until = 0.0  # monotonic time until which the count is fresh

    def fresh_count(self) -> int | None:
        """The count if it need not be read again, else None (then ``read``): checked
        before ``read`` is awaited, since a poll nearly always finds it fresh."""
        if self.db.ended_changed_here == self._here and time.monotonic() < self._until:
            return self._count
        return None

    async def read(self) -> int:
        fresh = self.fresh_count()
        if fresh is not None:
            return fresh
        # Noted before the read: a change committed during it reads again.
        self._here, now = self.db.ended_changed_here, time.monotonic()
        count = await self.db.ended_changes()
        self._count, self._until = count, now + self.fresh
        return count


class EndedDocuments:
    """The status documents of ended tasks, each built once.

    An ended task's document never changes, and building one costs more than reading its
    row (three timestamps formatted, a JSON column parsed); clients that poll a batch until
    every task has ended read the same ended documents again and again.

    A cached document may only be served while its row is still there as it was. The
    database counts the transactions that delete ended tasks or end one again
    (``Database.ended_changes``). A read of the rows (``confirm``) records that count
    and the account it read for; while the count stays the same, the next poll of those
    keys by that account is answered from here (``unchanged``) after reading only the
    count. Bounded in entries and in bytes (a result may be megabytes: an ``html.scrape``
    of a page with 2,000 long URLs is 4 MB, and 10,000 of them would be 40 GB): the oldest
    entries go first, and a document over a sixteenth of the bytes is not kept.
    """

    def __init__(self, size: int = 10_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0  # the JSON size of the kept documents' results and errors
        # key -> (completed_at, document, (account_id, ended_changes) of the last read)
        self._docs: dict[str, tuple[float, dict[str, Any], tuple[int, int] | None]] = {}
        self._weights: dict[str, int] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._docs

    def confirm(
        self,
        key: str,
        completed_at: float | None,
        account_id: int,
        changes: int,
        version: int = 2,
    ) -> dict[str, Any] | None:
        """A read of ``account_id``'s rows, begun when the count was ``changes``, found
        ``key`` ended at ``completed_at`` (None: not ended): its cached document (a copy),
        if it ended then."""
        hit = self._docs.get(key)
        if hit is None or hit[0] != completed_at:
            return None
        self._docs[key] = (hit[0], hit[1], (account_id, changes))
        return in_version({**hit[1]}, version)

    def unchanged(
        self, keys: list[str], account_id: int, changes: int, version: int = 2
    ) -> dict[str, dict[str, Any]] | None:
        """The documents of ``keys`` (copies) if each was confirmed for ``account_id`` under
        the count ``changes``; else None, and the caller reads their rows."""
        docs = {}
        for key in keys:
            hit = self._docs.get(key)
            if hit is None or hit[2] != (account_id, changes):
                return None
            docs[key] = in_version({**hit[1]}, version)
        return docs

    def document(self, row: Row, version: int = 2) -> dict[str, Any]:
        """``document(row, version)``, a copy the caller may change."""
        if row["status"] not in ("success", "error"):
            return document(row, version)
        key, completed = row["key"], row["completed_at"]
        hit = self._docs.get(key)
        if hit is not None and hit[0] == completed:
            return in_version({**hit[1]}, version)
        self._drop(key)
        weight = _weight(row["result"]) + _weight(row["error"])
        if weight > self.max_bytes // 16:
            return document(row, version)
        while self._docs and (len(self._docs) >= self.size or self.bytes + weight > self.max_bytes):
            self._drop(next(iter(self._docs)))
        self._docs[key] = (completed, document(row), None)
        self._weights[key] = weight
        self.bytes += weight
        return in_version({**self._docs[key][1]}, version)

    def _drop(self, key: str) -> None:
        if self._docs.pop(key, None) is not None:
            self.bytes -= self._weights.pop(key)


def _weight(value: object) -> int:
    """About what a JSON column's value holds in memory once parsed, in bytes."""
    if value is None:
        return 0
    if isinstance(value, str | bytes):
        return len(value)
    return len(orjson.dumps(value))


def in_version(doc: dict[str, Any], version: int) -> dict[str, Any]:
    """A v2 document as ``version`` shows it: v1 puts error details under ``result``."""
    if version == 1 and doc.get("status") == "error" and "error" in doc:
        doc = {**doc, "result": doc["error"]}
        doc.pop("error")
    return doc


def ndjson_line(value: object) -> bytes:
    """``value`` as one line of a status stream (NDJSON)."""
    return orjson.dumps(value) + b"\n"


def mask(value: object, name: str = "") -> object:
    """Parameters with secrets and tokens replaced, for ``details=true``: the values of
    credential-named fields (``scrub.sensitive``), and the query and ``user:password@`` of
    every URL, in whichever field or list it is (``urls``, ``images``, ``subtitles``, a
    signed store's outputs), since signed URLs carry their credentials there."""
    if isinstance(value, dict):
        return {k: mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, name) for v in value]
    if value is None:
        return value
    if name and scrub.sensitive(name):
        return MASK
    if isinstance(value, str):
        return scrub.masked_url(value, MASK)
    return value
