"""A real ``TaskContext`` for calling a task or media function directly, with local files
standing in for downloads and a folder standing in for the store."""

from __future__ import annotations

import dataclasses
import shutil
import types
from pathlib import Path

from dragon.config import Settings
from dragon.net.sniff import sniff_file
from dragon.tasks.context import TaskContext


@dataclasses.dataclass
class LocalDownload:
    path: Path
    mime: str | None
    size: int
    url: str


class LocalFetcher:
    """Serves ``{url: path}``; the MIME type comes from the real sniffer."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    async def download(self, url, dest_dir, *, max_bytes=None):
        src = self.files[url]
        dest = Path(dest_dir) / "source"
        shutil.copyfile(src, dest)
        return LocalDownload(dest, sniff_file(dest), dest.stat().st_size, url)


class FolderStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def put(self, ctx, name, path, content_type):
        dest = self.folder / f"{name}{Path(path).suffix}"
        shutil.copyfile(path, dest)
        return str(dest)


class Progress:
    def __init__(self) -> None:
        self.values: list[float] = []

    def progress(self, key, value):
        self.values.append(value)

    async def partial(self, key, result):
        pass


def local_ctx(tmp_path: Path, params: dict | None = None, files: dict | None = None,
              settings=None, **overrides) -> TaskContext:
    """A real TaskContext; ``overrides`` become extra settings (``getattr``-read ones too)."""
    base = settings or Settings.load(env={})
    if overrides:
        base = types.SimpleNamespace(**{**dataclasses.asdict(base), **overrides})
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    return TaskContext(
        key="TESTKEY", task_name="test", account_id=1, params=params or {}, tmpdir=work,
        settings=base, reporter=Progress(), fetcher=LocalFetcher(files or {}),
        store=FolderStore(out),
    )
