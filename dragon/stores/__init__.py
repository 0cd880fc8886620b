"""Storage systems (docs/api.md): where a task's output files go, chosen by ``task_store``.

A *store* is the user-facing policy (``persistent``, ``volatile``, ``s3_signed``,
``youtube``); a *backend* is where bytes live (local disk under the data dir, or an S3
bucket). persistent and volatile share the backend and differ in lifetime and in whether
the storage API lists them. Every stored file is recorded in the database, which is what
the file server, the storage API and the sweeper read: usage is never computed by walking
the disk, and a deleted file stops being served at once.
"""

from __future__ import annotations

from typing import Any

from dragon.database.interface import Database, DiskFull, Row
from dragon.stores import persistent, s3_signed, volatile, youtube
from dragon.stores.backends import Backend
from dragon.stores.base import BaseStore


class Stores:
    """The registry of store types plus the shared backend and database."""

    def __init__(
        self, database: Database, backend: Backend, settings: Any, fetcher: Any = None
    ) -> None:
        self.db = database
        self.backend = backend
        self.settings = settings
        self.fetcher = fetcher
        self.types: dict[str, type[BaseStore]] = {
            m.Store.type: m.Store for m in (persistent, volatile, s3_signed, youtube)
        }

    def problems(self, task_store: dict | None) -> list[str]:
        if not task_store:
            return []
        kind = task_store.get("type", "persistent")
        store = self.types.get(kind)
        if store is None:
            return [f"unknown storage type {kind!r}; choose one of: {', '.join(self.types)}"]
        return store.problems(task_store)

    def for_task(self, task_store: dict | None) -> BaseStore:
        options = task_store or {}
        return self.types[options.get("type", "persistent")](self, options)

    async def remove(self, rows: list[Row]) -> int:
        """Forget ``rows`` in the database, then delete their bytes; returns bytes freed."""
        if not rows:
            return 0
        ids = [r["id"] for r in rows]
        try:
            freed = await self.db.delete_files(ids)
        except DiskFull:
            # A full disk must not stop a user from freeing it: the bytes go first, and then
            # the database has room to forget them.
            for r in rows:
                await self.backend.delete(r["location"])
            return await self.db.delete_files(ids)
        for r in rows:
            await self.backend.delete(r["location"])
        return freed
