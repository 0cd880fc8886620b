"""Deletes expired files: volatile ones after ``volatile_days``, persistent ones after the
account's expiration setting. Runs at start-up and every ``sweep_interval_seconds``."""

from __future__ import annotations

import asyncio
import logging
import time

from dragon.config import Settings
from dragon.database.interface import Database
from dragon.runtime.background import BackgroundLoop
from dragon.stores import Stores

log = logging.getLogger("dragon.engine.sweeper")


class Sweeper(BackgroundLoop):
    def __init__(self, database: Database, stores: Stores, settings: Settings) -> None:
        self.db = database
        self.stores = stores
        self.settings = settings

    async def sweep(self) -> int:
        removed = 0
        while True:
            rows = await self.db.expired_files(time.time())
            if not rows:
                return removed
            await self.stores.remove(rows)
            removed += len(rows)

    async def _run(self) -> None:
        while True:
            try:
                if count := await self.sweep():
                    log.info("deleted %d expired files", count)
            except Exception:
                log.exception("sweep failed")
            await asyncio.sleep(self.settings.sweep_interval_seconds)
