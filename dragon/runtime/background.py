"""A loop the server runs beside request handling (callback delivery, file sweeping)."""

from __future__ import annotations

import asyncio
import contextlib


class BackgroundLoop:
    """``start`` runs ``_run`` as a task; ``stop`` cancels it and waits for it to end."""

    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
