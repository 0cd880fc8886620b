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

from collections.abc import Iterable, Sequence

from dragon.config import Settings
from dragon.database.interface import Database, DiskFull
from dragon.database.rows import FileRow
from dragon.net.fetcher import Fetcher
from dragon.runtime.plugins import Registry, dotted_names, plugin_modules
from dragon.stores import persistent, s3_signed, volatile, youtube
from dragon.stores.backends import Backend
from dragon.stores.base import BaseStore, Options

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

    async def remove(self, rows: Sequence[FileRow]) -> int:
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
