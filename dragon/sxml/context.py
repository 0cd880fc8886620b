"""What the movie renderer needs of a running task, as protocols.

``dragon.tasks.context.TaskContext`` is the one real implementation, but ``sxml`` sits
below ``tasks`` in the import layers and may not import it. Each protocol names only the
verbs its callers use (with ``TaskContext``'s own signatures), so the type checker holds
``video.create``'s context to them and tests can hand in something smaller.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from dragon.config import Settings
from dragon.net.fetcher import Download
from dragon.runtime.processes import ProcessResult

# Adds a line to the result's ``warnings`` (``TaskContext.warn``, deduplicated by render).
Warn = Callable[[str], None]


class InPool(Protocol):
    """Runs CPU work in the process pool, within what is left of the task's time
    (``assets.draw``, and ``dragon.media.pcm.run_in_pool`` for beats and ducking)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def tmpdir(self) -> Path: ...

    def remaining(self) -> float | None: ...

    async def in_process(self, fn: Callable[..., Any], *args: Any) -> Any: ...


class MovieTask(InPool, Protocol):
    """Everything ``render.create`` does: download, probe, draw, run ffmpeg, publish."""

    @property
    def params(self) -> dict[str, Any]: ...

    async def fetch(self, url: str) -> Download: ...

    async def run(
        self,
        argv: list[str],
        *,
        timeout: float | None = None,
        check: bool = True,
        error_code: str = ...,
        stdin: bytes | None = None,
        progress_duration: float | None = None,
    ) -> ProcessResult: ...

    async def in_thread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...

    def progress(self, value: float) -> None: ...

    async def partial(self, result: dict[str, Any]) -> None: ...

    def warn(self, message: str) -> None: ...

    async def output(self, name: str, path: Path, content_type: str) -> str: ...

    async def output_tree(
        self, name: str, folder: Path, main: str, content_type: Callable[[str], str]
    ) -> dict[str, str]: ...
