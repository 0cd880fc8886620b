"""The data disk's reserve (``DRAGON_MIN_FREE_BYTES``): how much a task may still write.

The database, the temp folders and local storage share the data folder's disk. When it
fills up, SQLite cannot record a task's end and nobody can even delete files, so the server
keeps a reserve: tools get an output cap that leaves it free, creates are refused (503)
while less is free, and ``/healthz`` says so. What a task writes past the cap ends it with
``disk_full`` instead of taking the last bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from dragon import errors
from dragon.config import Settings


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem that holds (or will
    hold) ``path``."""
    while not path.exists() and path.parent != path:
        path = path.parent
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def room(settings: Settings) -> int:
    """Bytes that may still be written on the data disk before the reserve (may be < 0)."""
    return free_bytes(settings.data_path) - int(settings.min_free_bytes)


def shortage(settings: Settings) -> str | None:
    """Why nothing should be written now (the reserve is reached), or None."""
    free = free_bytes(settings.data_path)
    if free >= settings.min_free_bytes:
        return None
    return (
        f"the server's data disk is almost full: {free // 2**20} MiB free, below the"
        f" reserve of {settings.min_free_bytes // 2**20} MiB"
    )


def full_error(settings: Settings, what: str = "the task") -> errors.TaskError:
    """The ``disk_full`` failure of a task that ran out of room."""
    return errors.TaskError(
        errors.DISK_FULL,
        f"{what} ran out of disk space on the server (it keeps"
        f" {settings.min_free_bytes // 2**20} MiB free); retry later",
    )


def check_room(settings: Settings) -> int:
    """The bytes a tool may write now; raises ``disk_full`` when the reserve is reached."""
    left = room(settings)
    if left <= 0:
        raise full_error(settings)
    return left
