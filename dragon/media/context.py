"""What the media helpers need of a running task, as protocols.

``dragon.tasks.context.TaskContext`` is the one real implementation, but ``media`` sits
below ``tasks`` in the import layers and may not import it; each protocol names only the
verbs a helper uses, so tests can hand in something smaller.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from dragon.config import Settings
from dragon.net.fetcher import Download
from dragon.runtime.processes import ProcessResult


class Fetches(Protocol):
    async def fetch(self, url: str) -> Download: ...


class RunsTools(Protocol):
    @property
    def settings(self) -> Settings: ...

    async def run(
        self, argv: list[str], *, timeout: float | None = None, check: bool = True
    ) -> ProcessResult: ...


class ProbesSources(Fetches, RunsTools, Protocol):
    """Downloads a source, then runs ffprobe on it (``probe.fetch_source``)."""


class RunsInPool(Protocol):
    """Runs CPU work in the process pool, within what is left of the task's time."""

    @property
    def settings(self) -> Settings: ...

    @property
    def tmpdir(self) -> Path: ...

    def remaining(self) -> float | None: ...

    async def in_process(self, fn: Callable[..., Any], *args: Any) -> Any: ...
