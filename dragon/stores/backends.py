"""Where stored bytes live: the local data dir (served by the app) or an S3 bucket."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path


class Backend:
    name = ""

    async def save(self, location: str, path: Path, content_type: str) -> None:
        raise NotImplementedError

    async def delete(self, location: str) -> None:
        raise NotImplementedError

    def url(self, location: str) -> str:
        raise NotImplementedError

    async def copy_to(self, location: str, dest: Path) -> None:
        """Write the stored file at ``location`` to ``dest`` (a chain's task reads its
        input task's output from here, not over HTTP)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release connections (nothing to do for local disk)."""


class LocalBackend(Backend):
    """Files under ``<data dir>/files``, served at ``<public url>/storage/<location>``.

    A file is written to a temporary name and renamed into place, so a crash never leaves
    a half-written file at a URL.
    """

    name = "local"

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = root
        self.base_url = base_url.rstrip("/")

    def path(self, location: str) -> Path:
        path = (self.root / location).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"bad location {location!r}")
        return path

    def _save(self, location: str, source: Path) -> None:
        target = self.path(location)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        try:
            try:
                os.link(source, partial)  # same filesystem: no copy at all
            except OSError:
                shutil.copyfile(source, partial)
            with open(partial, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)

    async def save(self, location: str, path: Path, content_type: str) -> None:
        await asyncio.to_thread(self._save, location, path)

    def _delete(self, location: str) -> None:
        target = self.path(location)
        target.unlink(missing_ok=True)
        try:
            target.parent.rmdir()
        except OSError:
            pass

    async def delete(self, location: str) -> None:
        await asyncio.to_thread(self._delete, location)

    def url(self, location: str) -> str:
        return f"{self.base_url}/storage/{location}"

    def _copy_to(self, location: str, dest: Path) -> None:
        source = self.path(location)
        try:
            os.link(source, dest)  # the stored file is never written again: share it
        except OSError:
            shutil.copyfile(source, dest)

    async def copy_to(self, location: str, dest: Path) -> None:
        await asyncio.to_thread(self._copy_to, location, dest)
