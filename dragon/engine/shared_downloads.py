"""Downloads shared by the tasks of one create request.

A request that makes a thumbnail, a strip and an info of the same URL should fetch it once.
Tasks created together form a *batch*; the first task of a batch to ask for a URL downloads
it into the batch's folder and the others reuse the file (or the same failure). The folder
is removed when the last task of the batch has ended. Batches live in memory: after a
restart each task simply downloads on its own.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from dragon import errors
from dragon.net.fetcher import Download, human_size
from dragon.tasks.context import Fetcher


class Batch:
    def __init__(self, root: Path, size: int) -> None:
        self.root = root
        self.pending = size
        self.downloads: dict[str, asyncio.Future[Download]] = {}


class SharedFetches:
    def __init__(self, fetcher: Fetcher, root: Path) -> None:
        self.fetcher = fetcher
        self.root = root
        self.batches: dict[str, Batch] = {}
        self.of_task: dict[str, str] = {}

    def register(self, batch: str, keys: list[str]) -> None:
        """Remember that ``keys`` were created together (only worth it for two or more)."""
        if len(keys) < 2:
            return
        self.batches[batch] = Batch(self.root / batch, len(keys))
        for key in keys:
            self.of_task[key] = batch

    def fetcher_for(self, key: str) -> Fetcher:
        """What a task's context fetches with: shared within its batch, else the fetcher."""
        batch = self.of_task.get(key)
        return _BatchFetcher(self, batch) if batch else self.fetcher

    async def task_ended(self, key: str) -> None:
        batch_id = self.of_task.pop(key, None)
        batch = self.batches.get(batch_id) if batch_id else None
        if batch is None or batch_id is None:
            return
        batch.pending -= 1
        if batch.pending <= 0:
            del self.batches[batch_id]
            for future in batch.downloads.values():
                future.cancel()
            await asyncio.to_thread(shutil.rmtree, batch.root, True)


class _BatchFetcher:
    def __init__(self, shared: SharedFetches, batch: str) -> None:
        self.shared = shared
        self.batch = batch

    async def download(self, url: str, dest_dir: Path, *, max_bytes: int | None = None) -> Download:
        batch = self.shared.batches.get(self.batch)
        if batch is None:
            return await self.shared.fetcher.download(url, dest_dir, max_bytes=max_bytes)
        # Keyed by URL alone: each task's byte limit depends on its budget and on the free
        # disk at the time it asks, so limits differ between tasks of one batch. A task whose
        # limit is below what was downloaded gets the same refusal as a download of its own.
        if url not in batch.downloads:
            folder = batch.root / str(len(batch.downloads))
            folder.mkdir(parents=True, exist_ok=True)
            batch.downloads[url] = asyncio.ensure_future(
                self.shared.fetcher.download(url, folder, max_bytes=max_bytes)
            )
        download = await asyncio.shield(batch.downloads[url])
        if max_bytes is not None and download.size > max_bytes:
            raise errors.TaskError(
                errors.DOWNLOAD_TOO_LARGE,
                f"source is {human_size(download.size)}; the limit is {human_size(max_bytes)}",
            )
        return download
