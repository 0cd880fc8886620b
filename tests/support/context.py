"""A real ``TaskContext`` for calling a task or media function directly, with local files
standing in for downloads and a folder standing in for the store."""

from __future__ import annotations

import dataclasses
import shutil
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

    async def begin(self, key):
        pass


class _Overridden:
    """Settings with extra attributes that are not settings (read with ``getattr``)."""

    def __init__(self, base: Settings, extra: dict) -> None:
        self._base = base
        self._extra = extra

    def __getattr__(self, name: str):
        return self._extra[name] if name in self._extra else getattr(self._base, name)


def local_ctx(
    tmp_path: Path,
    params: dict | None = None,
    files: dict | None = None,
    settings=None,
    **overrides,
) -> TaskContext:
    """A real TaskContext; ``overrides`` replace settings (or add ``getattr``-read ones)."""
    base = settings or Settings.load(env={})
    known = {f.name for f in dataclasses.fields(Settings)}
    base = base.replace(**{k: v for k, v in overrides.items() if k in known})
    extra = {k: v for k, v in overrides.items() if k not in known}
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    return TaskContext(
        key="TESTKEY",
        task_name="test",
        account_id=1,
        params=params or {},
        tmpdir=work,
        settings=_Overridden(base, extra) if extra else base,
        reporter=Progress(),
        fetcher=LocalFetcher(files or {}),
        store=FolderStore(out),
    )
