"""What every store is: ``BaseStore`` (the policy a ``task_store`` names) and ``BackedStore``
(bytes on the configured file backend, recorded in the database's storage index)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dragon import errors
from dragon.config import Settings
from dragon.database.interface import Busy

if TYPE_CHECKING:
    from dragon.stores import Stores

ALPHABET = string.ascii_letters + string.digits
RECORD_RETRY_SECONDS = 30.0  # how long a stored file's record waits for the database

log = logging.getLogger("dragon.stores")


class Producer(Protocol):
    """What a store reads of the task whose output it stores (``TaskContext`` is one; the
    stores cannot import it: tasks and stores are siblings)."""

    @property
    def key(self) -> str: ...

    @property
    def task_name(self) -> str: ...

    @property
    def account_id(self) -> int: ...

    @property
    def settings(self) -> Settings: ...

    def warn(self, message: str) -> None: ...


Options = dict[str, Any]  # a task's ``task_store`` object, as JSON


def file_location(task_key: str, task_name: str) -> str:
    """``<KEY>/dragon-<task_name>-<6 random>``, as the original service named them."""
    suffix = "".join(secrets.choice(ALPHABET) for _ in range(6))
    return f"{task_key}/dragon-{task_name}-{suffix}"


class BaseStore:
    """A store type. ``listed`` and ``counted`` are its policy for the files it records in the
    database (``BackedStore``): whether the storage API lists them and whether their size
    counts in the account's usage. They are written with each file, so a store added by a
    plugin is listed, counted and subtracted on deletion as it declares, with no query to
    change."""

    type = ""
    listed = True
    counted = True

    def __init__(self, stores: Stores, options: Options) -> None:
        self.stores = stores
        self.options = options

    @classmethod
    def problems(cls, options: Options) -> list[str]:
        """What is wrong with the ``task_store`` options (checked when the task is created)."""
        return []

    async def put(self, ctx: Producer, name: str, path: Path, content_type: str) -> str:
        raise NotImplementedError

    def sent(self, name: str, url: str) -> bool:
        """Is ``url`` what ``put`` answers for output ``name`` after sending the file
        elsewhere (a signed URL, a video platform)? Files kept on the backend are known by
        their records; this is how a file the store sent away is told from a URL the task
        merely read from its sources, which is never redirected to (``/v1/create_file``).
        A store that sends files away says so here; by default it sends none."""
        return False

    async def put_tree(
        self,
        ctx: Producer,
        name: str,
        folder: Path,
        main: str,
        content_type: Callable[[str], str],
    ) -> dict[str, str]:
        """Store every file under ``folder`` (a playlist and its segments) beneath one
        location, keeping their relative paths; each file's URL by relative path. A store
        that takes single files (a signed URL, a video platform) sends the tree to
        persistent storage instead, and says so."""
        ctx.warn(f"the {self.type} store takes single files: {name} went to persistent storage")
        return await self.stores.for_task(None).put_tree(ctx, name, folder, main, content_type)


class BackedStore(BaseStore):
    """A store whose bytes go to the configured backend and are recorded in ``files``."""

    def expires_at(self, now: float) -> float | None:
        return None

    async def put(self, ctx: Producer, name: str, path: Path, content_type: str) -> str:
        earlier = await self.stores.db.file_for_output(ctx.key, name)
        location = earlier["location"] if earlier else file_location(ctx.key, ctx.task_name)
        return await self._keep(ctx, name, location, path, content_type, fresh=not earlier)

    async def put_tree(
        self,
        ctx: Producer,
        name: str,
        folder: Path,
        main: str,
        content_type: Callable[[str], str],
    ) -> dict[str, str]:
        """The tree under one location: ``<KEY>/dragon-<task>-<random>/<relative path>``,
        ``main`` recorded as output ``name`` and the others as ``name/<relative path>``, so
        the storage API lists, counts and deletes each file as any output. A task run again
        writes over its earlier tree."""
        earlier = await self.stores.db.file_for_output(ctx.key, name)
        base = (
            earlier["location"].removesuffix(f"/{main}")
            if earlier
            else file_location(ctx.key, ctx.task_name)
        )
        urls = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(folder).as_posix()
            output = name if relative == main else f"{name}/{relative}"
            location = f"{base}/{relative}"
            urls[relative] = await self._keep(
                ctx, output, location, path, content_type(relative), fresh=not earlier
            )
        return urls

    async def _keep(
        self, ctx: Producer, name: str, location: str, path: Path, content_type: str, fresh: bool
    ) -> str:
        """Save ``path`` at ``location`` on the backend and record it as output ``name``.

        The bytes are saved first, then recorded; if the record cannot be written (the
        database stayed away through ``RECORD_RETRY_SECONDS``, or the task was cancelled
        meanwhile) the bytes of a ``fresh`` location are removed again: no object is left
        that no listing shows, no usage counts and no expiry removes. A location an earlier
        run recorded keeps its bytes: its record still points at them."""
        backend = self.stores.backend
        size = path.stat().st_size
        try:
            await backend.save(location, path, content_type)
        except errors.TaskError:
            raise
        except Exception as exc:
            code = errors.DISK_FULL if errors.out_of_space(exc) else errors.STORAGE_ERROR
            raise errors.TaskError(code, f"could not store {name}: {exc}") from exc
        url = backend.url(location)
        try:
            await self._record(ctx, name, location, url, size, content_type)
        except BaseException:
            if fresh:
                await asyncio.shield(self._discard(location))
            raise
        return url

    async def _record(
        self, ctx: Producer, name: str, location: str, url: str, size: int, content_type: str
    ) -> None:
        """Write the file's row, waiting for a database that went away (``Busy``) for up to
        ``RECORD_RETRY_SECONDS``: a PostgreSQL restart costs a pause, not the task."""
        delay, deadline = 0.2, time.monotonic() + RECORD_RETRY_SECONDS
        while True:
            now = time.time()
            try:
                await self.stores.db.insert_file(
                    ctx.account_id,
                    ctx.key,
                    output=name,
                    name=location.split("/", 1)[1],
                    store=self.type,
                    location=location,
                    url=url,
                    size=size,
                    content_type=content_type,
                    now=now,
                    expires_at=self.expires_at(now),
                    counted=self.counted,
                    listed=self.listed,
                )
                return
            except Busy as exc:
                if time.monotonic() + delay > deadline:
                    raise errors.TaskError(
                        errors.STORAGE_ERROR,
                        f"could not record {name}: the database stayed unavailable"
                        f" for {RECORD_RETRY_SECONDS:g} s",
                    ) from exc
                log.warning("database unavailable; retrying the record of %s", name)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _discard(self, location: str) -> None:
        """Remove the bytes of a file whose record was never written (best effort)."""
        try:
            await self.stores.backend.delete(location)
        except Exception:
            log.exception("could not remove %s, stored without a record", location)
