"""Storage systems (docs/api.md): where a task's output files go, chosen by ``task_store``.

A *store* is the user-facing policy (``persistent``, ``volatile``, ``s3_signed``,
``youtube``); a *backend* is where bytes live (local disk under the data dir, or an S3
bucket). persistent and volatile share the backend and differ in lifetime and in whether
the storage API lists them. Every stored file is recorded in the database, which is what
the file server, the storage API and the sweeper read: usage is never computed by walking
the disk, and a deleted file stops being served at once.

The store types come from a registry (``store_types``): the built-in modules, then the
modules named in ``DRAGON_STORE_MODULES``, then those of the ``dragon.stores`` entry point
group. A store module declares a ``Store`` class (a ``BaseStore``) with its ``type`` and
its policy (``listed``, ``counted``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from dragon.config import Settings
from dragon.database.interface import Database, DiskFull
from dragon.database.rows import FileRow
from dragon.net.fetcher import Fetcher
from dragon.runtime.plugins import Registry, dotted_names, plugin_modules
from dragon.stores import persistent, s3_signed, volatile, youtube
from dragon.stores.backends import Backend
from dragon.stores.base import BaseStore, Options

log = logging.getLogger("dragon.stores")

BUILT_IN = (persistent, volatile, s3_signed, youtube)  # in the order error messages list them
ENTRY_POINTS = "dragon.stores"


def store_types(names: Iterable[str] = ()) -> dict[str, type[BaseStore]]:
    """The built-in store types, then those of the modules ``names`` and of the entry point
    group, by ``type``; two modules declaring one type is an error (``AlreadyRegistered``)."""
    registry: Registry[type[BaseStore]] = Registry("store")
    for module in (*BUILT_IN, *plugin_modules(ENTRY_POINTS, names)):
        store: type[BaseStore] = module.Store
        registry.add(store.type, store, module.__name__)
    return registry.entries


class Stores:
    """The registry of store types plus the shared backend and database."""

    def __init__(
        self,
        database: Database,
        backend: Backend,
        settings: Settings,
        fetcher: Fetcher | None = None,
        store_modules: str = "",
    ) -> None:
        """``store_modules``: the ``DRAGON_STORE_MODULES`` setting (dotted module names,
        comma-separated) whose stores join the built-in ones."""
        self.db = database
        self.backend = backend
        self.settings = settings
        # Files deleted on a full disk that the database could not forget yet, by id.
        self.removed: dict[int, FileRow] = {}
        self.fetcher = fetcher
        self.types = store_types(dotted_names(store_modules))

    def problems(self, task_store: Options | None) -> list[str]:
        if not task_store:
            return []
        kind = task_store.get("type", "persistent")
        store = self.types.get(kind)
        if store is None:
            return [f"unknown storage type {kind!r}; choose one of: {', '.join(self.types)}"]
        return store.problems(task_store)

    def for_task(self, task_store: Options | None) -> BaseStore:
        options = task_store or {}
        return self.types[options.get("type", "persistent")](self, options)

    async def read_into(self, file: FileRow, dest: Path) -> None:
        """Write the bytes of the stored ``file`` to ``dest``."""
        await self.backend.copy_to(file["location"], dest)

    async def remove(self, rows: Sequence[FileRow]) -> int:
        """Forget ``rows`` in the database, then delete their bytes; returns bytes freed.

        A full disk must not stop a user from freeing it: when the database cannot write
        (its journal needs room), the bytes go first and the database forgets them after.
        If it still cannot, the files are gone all the same: they are held in ``removed``,
        hidden from the storage API, and forgotten as soon as the database has room
        (``forget_removed``, tried before every listing and delete).
        """
        if not rows:
            return 0
        await self.forget_removed()
        ids = [r["id"] for r in rows]
        try:
            freed = await self.db.delete_files(ids)
        except DiskFull:
            for r in rows:
                await self.backend.delete(r["location"])
            try:
                return await self.db.delete_files(ids)
            except DiskFull:
                self.removed.update((r["id"], r) for r in rows)
                log.warning(
                    "the disk is full: %d deleted files stay in the database until it has room",
                    len(self.removed),
                )
                return sum(r["size"] for r in rows if r["counted"])
        for r in rows:
            await self.backend.delete(r["location"])
        return freed

    async def forget_removed(self) -> None:
        """Forget in the database the files whose bytes a full disk made ``remove`` delete
        first; they stay in ``removed`` while the disk is still full."""
        if not self.removed:
            return
        ids = list(self.removed)
        with contextlib.suppress(DiskFull):
            await self.db.delete_files(ids)
            for i in ids:
                self.removed.pop(i, None)

    def unremoved(self, rows: Iterable[FileRow]) -> list[FileRow]:
        """``rows`` less the files already deleted but not yet forgotten (``removed``)."""
        return [r for r in rows if r["id"] not in self.removed]

    def removed_usage(self, account_id: int) -> int:
        """Counted bytes of the account's deleted files the database still counts."""
        return sum(
            r["size"]
            for r in self.removed.values()
            if r["account_id"] == account_id and r["counted"]
        )
