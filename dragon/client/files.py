"""Where a downloaded output file goes: named after its output (``export.mp4``) or its URL,
written whole or not at all."""

from __future__ import annotations

import contextlib
import mimetypes
import os
from collections.abc import Container, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

# Longest file name written: most file systems take 255 bytes, and a suffix may be added.
MAX_NAME_BYTES = 200


def file_name(url: str) -> str:
    """The last segment of the URL's path, as ``curl -O`` names files; never a path, never
    a control character, and short enough for any file system."""
    return safe_name(unquote(urlsplit(url).path.rsplit("/", 1)[-1]), url)


def safe_name(name: str, origin: str) -> str:
    """``name`` as a file name: never a path, never a hidden file, never a control
    character, and short enough for any file system. ``origin``: what it came from, for the
    error of an empty one."""
    name = "".join("_" if c in "/\\" or not c.isprintable() else c for c in name)
    stem = name.lstrip(".")
    name = "_" * (len(name) - len(stem)) + stem  # never hidden (``.bashrc``), never ``..``
    if len(name.encode()) > MAX_NAME_BYTES:  # cut the stem, keep a short extension
        stem, dot, extension = name.rpartition(".")
        suffix = dot + extension if stem and len(extension) <= 16 else ""
        cut = MAX_NAME_BYTES - len(suffix.encode())
        name = name[: len(name) - len(suffix)].encode()[:cut].decode(errors="ignore") + suffix
    if name.strip(". ") == "":
        raise ValueError(f"no file name in {origin[:200]!r}")
    return name


def extension(name: str) -> str:
    """``.mp4`` of ``clip.mp4``; empty for a name without one (or with a long tail)."""
    stem, dot, tail = name.rpartition(".")
    return dot + tail if stem and 0 < len(tail) <= 8 and tail.isalnum() else ""


def numbered(name: str, avoid: Container[str]) -> str:
    """``name``, or ``stem-2.ext``, ``stem-3.ext``... the first that ``avoid`` does not hold."""
    stem, dot, extension = name.rpartition(".")
    if not stem:
        stem, dot, extension = name, "", ""
    n = 1
    while name in avoid:
        n += 1
        name = f"{stem}-{n}{dot}{extension}"
    return name


class Destination:
    """The file a download is written to: ``NAME.part`` until complete, then ``NAME``, so an
    interrupted download never leaves a truncated file under the real name. ``avoid``: names
    already taken by the same download, so two outputs never write over each other."""

    def __init__(
        self,
        folder: Path,
        url: str,
        headers: Mapping[str, str],
        avoid: Container[str] = (),
        stem: str | None = None,
    ) -> None:
        """``stem``: the name to give the file (an output's name) before its extension,
        which then comes from the URL's last segment when it has one."""
        if stem is None:
            name = file_name(url)
        else:
            last = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
            name = safe_name(stem, stem) + extension(last)
        content_type = headers.get("Content-Type", "").split(";")[0].strip()
        known = mimetypes.guess_all_extensions(content_type) if content_type else []
        if known and not name.lower().endswith(tuple(known)):
            # Local output URLs end with no extension (dragon-image.thumb-IeWutW); a file
            # on disk is more useful with one.
            name += mimetypes.guess_extension(content_type) or ""
        self.path = folder / numbered(name, avoid)
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
