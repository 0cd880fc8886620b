"""A finished task's output files: which URLs of its result are files it made.

A result holds URLs of two kinds. Files the task made: kept by this server (the files
table records each, with its URL), or sent elsewhere by its store (an ``s3_signed`` URL,
the ``youtube`` store) or by the task itself (``video.upload.*``, whose ``SENT_OUTPUTS``
name the fields). And text the task read from its sources, such as ``html.scrape``'s
``page_title``, which may be a URL chosen by whoever wrote the page. Only the first kind is
an output: ``/v1/create_file`` and ``/v1/file`` redirect to nothing else, so a page's author
can never make them an open redirect (docs/security.md).

A file sent elsewhere is recognised by what sent it: the task's store says whether the URL
is the one it answers for that output (``BaseStore.sent``), and a task declares the fields
it fills with the URLs of files it sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from dragon.database.interface import Database
from dragon.database.rows import FileRow
from dragon.engine import documents
from dragon.stores import Stores
from dragon.stores.base import BaseStore
from dragon.tasks import TaskSpec


@dataclasses.dataclass(frozen=True)
class Output:
    """One output file: its URL (the result's), and its record when this server keeps it."""

    url: str
    file: FileRow | None = None  # None: a file the task or its store sent elsewhere

    def lives(self) -> bool:
        """Is the file still there, as far as this server can tell? One of its own until it
        expires (its record goes when it is deleted); one sent elsewhere, always."""
        if self.file is None or self.file["expires_at"] is None:
            return True
        return self.file["expires_at"] > time.time()


def url_values(doc: Mapping[str, Any]) -> dict[str, str]:
    """The result entries that look like file URLs: candidates only (see above)."""
    result = doc.get("result")
    if not isinstance(result, dict):
        return {}
    return {
        name: value
        for name, value in result.items()
        if isinstance(value, str) and value.startswith(("http://", "https://"))
    }


class Outputs:
    """Finds the output files of a finished task (``of``)."""

    def __init__(self, db: Database, stores: Stores, registry: Mapping[str, TaskSpec]) -> None:
        self.db = db
        self.stores = stores
        self.registry = registry

    async def of(self, account_id: int, key: str, doc: Mapping[str, Any]) -> dict[str, Output]:
        """The output files of the successful task ``key`` whose document is ``doc``, by
        name, in the result's order."""
        candidates = url_values(doc)
        rows = await asyncio.gather(*(self.db.file_for_output(key, n) for n in candidates))
        found = {
            name: Output(url, row)
            for (name, url), row in zip(candidates.items(), rows, strict=True)
            if row is not None and row["url"] == url
        }
        others = {name: url for name, url in candidates.items() if name not in found}
        if others:
            found.update(await self._sent(account_id, key, others))
        return {name: found[name] for name in candidates if name in found}

    async def _sent(self, account_id: int, key: str, urls: dict[str, str]) -> dict[str, Output]:
        """Those of ``urls`` that are files the task or its store sent elsewhere."""
        rows = await self.db.get_tasks([key], account_id)
        if not rows:
            return {}
        row = rows[0]
        spec = self.registry.get(row["task_name"])
        declared = spec.sent_outputs if spec is not None else frozenset()
        store = self._store(row["params"])
        return {
            name: Output(url)
            for name, url in urls.items()
            if name in declared or (store is not None and store.sent(name, url))
        }

    def _store(self, params: str) -> BaseStore | None:
        """The task's store, as its ``task_store`` parameter chose it (None: a store no
        longer installed, or none given, which is persistent and sends nothing away)."""
        definition = documents.from_json(params)
        options = definition.get("task_store") if isinstance(definition, dict) else None
        if not isinstance(options, dict) or options.get("type") not in self.stores.types:
            return None
        return self.stores.for_task(options)
