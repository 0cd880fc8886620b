"""Deletes what has outlived its time: expired files (volatile ones after ``volatile_days``,
persistent ones after the account's expiration setting), ended tasks older than
``task_retention_days``, event feed entries older than ``events_days`` and expired
resumable uploads (``upload_hours``). Runs at start-up and every ``sweep_interval_seconds``.

All go in small batches, each its own short transaction, so a sweep of a large backlog
never holds the database's single writer for long.
"""

from __future__ import annotations

import asyncio
import logging
import time

from dragon.config import Settings
from dragon.database.interface import Database
from dragon.engine.resumable import Uploads
from dragon.runtime.background import BackgroundLoop
from dragon.stores import Stores

log = logging.getLogger("dragon.engine.sweeper")

PRUNE_BATCH = 500
SWEEP_LOCK = 0x647261676F6E03  # the advisory lock of the sweeping node (PostgreSQL)


class Sweeper(BackgroundLoop):
    def __init__(
        self, database: Database, stores: Stores, settings: Settings, uploads: Uploads | None = None
    ) -> None:
        self.db = database
        self.stores = stores
        self.settings = settings
        self.uploads = uploads

    async def sweep(self) -> int:
        """Delete expired files; returns how many."""
        removed = 0
        while True:
            rows = await self.db.expired_files(time.time())
            if not rows:
                return removed
            await self.stores.remove(rows)
            removed += len(rows)

    async def prune(self) -> int:
        """Delete ended tasks past retention (their files follow their own expiry)."""
        days = self.settings.task_retention_days
        if days <= 0:
            return 0
        before = time.time() - days * 86400.0
        pruned = 0
        while count := await self.db.prune_tasks(before, PRUNE_BATCH):
            pruned += count
            await asyncio.sleep(0)  # let the API's writes in between batches
        return pruned

    async def prune_events(self) -> int:
        """Delete event feed entries past ``events_days``."""
        days = self.settings.events_days
        if days <= 0:
            return 0
        before = time.time() - days * 86400.0
        pruned = 0
        while count := await self.db.prune_events(before, PRUNE_BATCH):
            pruned += count
            await asyncio.sleep(0)
        return pruned

    async def sweep_all(self) -> bool:
        if count := await self.sweep():
            log.info("deleted %d expired files", count)
        if count := await self.prune():
            log.info("deleted %d tasks past retention", count)
        if count := await self.prune_events():
            log.info("deleted %d feed events past retention", count)
        if self.uploads is not None and (count := await self.uploads.sweep(time.time())):
            log.info("deleted %d expired uploads", count)
        return True

    async def _run(self) -> None:
        while True:
            try:
                # Several nodes (PostgreSQL): one sweeps at a time, under an advisory lock.
                exclusive = getattr(self.db, "try_exclusive", None)
                if exclusive is None:
                    await self.sweep_all()
                elif not await exclusive(SWEEP_LOCK, self.sweep_all):
                    log.debug("another node is sweeping")
            except Exception:
                log.exception("sweep failed")
            await asyncio.sleep(self.settings.sweep_interval_seconds)
