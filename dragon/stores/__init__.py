"""Storage systems (seed chapter 2): where a task's output files go, chosen by ``task_store``.

A *store* is the user-facing policy (``persistent``, ``volatile``, ``s3_signed``,
``youtube``); a *backend* is where bytes live (local disk under the data dir, or an S3
bucket). persistent and volatile share the backend and differ in lifetime and in whether
the storage API lists them. Every stored file is recorded in the database, which is what
the file server, the storage API and the sweeper read: usage is never computed by walking
the disk, and a deleted file stops being served at once.
"""

from __future__ import annotations

import secrets
import string
import time
from pathlib import Path
from typing import Any

from dragon import errors
from dragon.backends import sqlite as db
from dragon.stores.backends import Backend

ALPHABET = string.ascii_letters + string.digits


def file_location(task_key: str, task_name: str) -> str:
    """``<KEY>/dragon-<task_name>-<6 random>``, as in the seed's storage listing."""
    suffix = "".join(secrets.choice(ALPHABET) for _ in range(6))
    return f"{task_key}/dragon-{task_name}-{suffix}"


class BaseStore:
    type = ""

    def __init__(self, stores: Stores, options: dict) -> None:
        self.stores = stores
        self.options = options

    @classmethod
    def problems(cls, options: dict) -> list[str]:
        """What is wrong with the ``task_store`` options (checked when the task is created)."""
        return []

    async def put(self, ctx: Any, name: str, path: Path, content_type: str) -> str:
        raise NotImplementedError


class BackedStore(BaseStore):
    """A store whose bytes go to the configured backend and are recorded in ``files``."""

    listed = True

    def expires_at(self, now: float) -> float | None:
        return None

    async def put(self, ctx: Any, name: str, path: Path, content_type: str) -> str:
        backend = self.stores.backend
        earlier = self.stores.db.lookup(db.file_for_output(ctx.key, name))
        location = earlier["location"] if earlier else file_location(ctx.key, ctx.task_name)
        size = path.stat().st_size
        try:
            await backend.save(location, path, content_type)
        except errors.TaskError:
            raise
        except Exception as exc:
            raise errors.TaskError(errors.STORAGE_ERROR, f"could not store {name}: {exc}") from exc
        now = time.time()
        url = backend.url(location)
        await self.stores.db.write(db.insert_file(
            ctx.account_id, ctx.key, output=name, name=location.split("/", 1)[1], store=self.type,
            location=location, url=url, size=size, content_type=content_type, now=now,
            expires_at=self.expires_at(now), counted=self.listed))
        return url


class Stores:
    """The registry of store types plus the shared backend and database."""

    def __init__(self, database: db.Database, backend: Backend, settings: Any,
                 fetcher: Any = None) -> None:
        from dragon.stores import persistent, s3_signed, volatile, youtube

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
