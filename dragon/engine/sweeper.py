"""Deletes expired files: volatile ones after ``volatile_days``, persistent ones after the
account's expiration setting. Runs at start-up and every ``sweep_interval_seconds``."""

from __future__ import annotations

import asyncio
import logging
import time

from dragon.backends import sqlite as db
from dragon.handlers.storage import remove_files
from dragon.runtime.background import BackgroundLoop

log = logging.getLogger("dragon.engine.sweeper")


class Sweeper(BackgroundLoop):
    def __init__(self, st) -> None:
        self.st = st

    async def sweep(self) -> int:
        removed = 0
        while True:
            rows = await self.st.db.read(db.expired_files(time.time()))
            if not rows:
                return removed
            await remove_files(self.st, rows)
            removed += len(rows)

    async def _run(self) -> None:
        while True:
            try:
                if count := await self.sweep():
                    log.info("deleted %d expired files", count)
            except Exception:
                log.exception("sweep failed")
            await asyncio.sleep(self.st.settings.sweep_interval_seconds)
