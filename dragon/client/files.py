"""Where a downloaded output file goes: its name from the URL, written whole or not at all."""

from __future__ import annotations

import contextlib
import mimetypes
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit


def file_name(url: str) -> str:
    """The last segment of the URL's path, as ``curl -O`` names files; never a path."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    name = name.replace("/", "_").replace("\\", "_").replace("\0", "_")
    if name in ("", ".", ".."):
        raise ValueError(f"no file name in {url!r}")
    return name


class Destination:
    """The file a download is written to: ``NAME.part`` until complete, then ``NAME``, so an
    interrupted download never leaves a truncated file under the real name."""

    def __init__(self, folder: Path, url: str, headers: Mapping[str, str]) -> None:
        name = file_name(url)
        content_type = headers.get("Content-Type", "").split(";")[0].strip()
        known = mimetypes.guess_all_extensions(content_type) if content_type else []
        if known and not name.lower().endswith(tuple(known)):
            # Local output URLs end with no extension (dragon-image.thumb-IeWutW); a file
            # on disk is more useful with one.
            name += mimetypes.guess_extension(content_type) or ""
        self.path = folder / name
        length = headers.get("Content-Length")
        self.total = int(length) if length and length.isdigit() else None
        self.done = 0

    def add(self, size: int) -> int:
        self.done += size
        return self.done

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        part = self.path.with_name(self.path.name + ".part")
        try:
            with open(part, "wb") as f:
                yield f
            os.replace(part, self.path)
        finally:
            part.unlink(missing_ok=True)
