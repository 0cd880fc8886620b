"""What a running task sees of the server: ``TaskContext``.

A task gets its validated ``params``, a private ``tmpdir`` (removed afterwards), and a few
verbs: ``fetch`` a user URL through the guarded fetcher, ``run`` a tool, report
``progress`` or a ``partial`` result, run CPU work ``in_process``/``in_thread``, and hand an
``output`` file to the task's store, whose URL then appears in the result under that name.
Tasks never talk to the database, the bus or the network directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar, TypeVarTuple, cast

from dragon import errors
from dragon.config import Settings
from dragon.net.fetcher import Download, for_account
from dragon.runtime import disk
from dragon.runtime.pool import WorkerPool
from dragon.runtime.processes import ProcessResult, run_process

# What a tool's stderr says when a write hit ENOSPC (the C library's message).
NO_SPACE = "No space left on device"

# What a task's ``run`` returns: the status document's ``result``, any JSON value. A dict
# gets the output URLs and warnings merged in; ``hello`` returns a plain string.
TaskResult = dict[str, Any] | list[Any] | str | int | float | bool | None

T = TypeVar("T")
P = ParamSpec("P")
Ts = TypeVarTuple("Ts")


class Reporter(Protocol):
    def progress(self, key: str, value: float) -> None: ...
    async def partial(self, key: str, result: dict[str, Any]) -> None: ...
    async def begin(self, key: str) -> None:
        """The task's work begins (its first tool, job or output): until now it was
        ``queued``, its inputs downloading; from now it is ``executing``."""


class Fetcher(Protocol):
    async def download(
        self, url: str, dest_dir: Path, *, max_bytes: int | None = None
    ) -> Download: ...


class Slot(Protocol):
    """The processing slot the task holds; lent out while it downloads."""

    def released(self) -> contextlib.AbstractAsyncContextManager[None]: ...


class Store(Protocol):
    async def put(self, ctx: TaskContext, name: str, path: Path, content_type: str) -> str: ...

    async def put_tree(
        self,
        ctx: TaskContext,
        name: str,
        folder: Path,
        main: str,
        content_type: Callable[[str], str],
    ) -> dict[str, str]: ...


@contextlib.contextmanager
def failing_at(stage: str) -> Iterator[None]:
    """Mark a ``TaskError`` raised inside with the stage it failed at (if not marked yet)."""
    try:
        yield
    except errors.TaskError as exc:
        if exc.stage is None:
            exc.stage = stage
        raise


class TaskContext:
    """One run of one task. Its identity (``key``, ``task_name``, ``account_id``,
    ``params``, ``settings``) is read-only; ``outputs`` and ``warnings`` fill as it runs."""

    def __init__(
        self,
        *,
        key: str,
        task_name: str,
        account_id: int,
        params: dict[str, Any],
        tmpdir: Path,
        settings: Settings,
        reporter: Reporter,
        fetcher: Fetcher,
        store: Store,
        process_pool: WorkerPool | None = None,
        deadline: float | None = None,
        slot: Slot | None = None,
        nice: int | None = None,
    ) -> None:
        self._key = key
        self._task_name = task_name
        self._account_id = account_id
        self._params = params
        self._tmpdir = tmpdir
        self._tmpdir_made = False
        self._settings = settings
        self.outputs: dict[str, str] = {}
        self.warnings: list[str] = []
        self.log = logging.getLogger(f"dragon.task.{task_name}")
        self._reporter = reporter
        self._fetcher = fetcher
        self._store = store
        self._pool = process_pool
        self._deadline = deadline
        self._slot = slot
        self._nice = nice  # its tools' CPU priority, when lower than the default (batch)
        self._begun = False
        self._downloads: dict[str, asyncio.Future[Download]] = {}
        self._reserved = 0  # bytes of the task's download budget taken so far
        self.processes: set[asyncio.subprocess.Process] = set()
        # (stage, report) of the last tool that failed, for the diagnostics of the task.
        self.failed_run: tuple[str, dict[str, Any]] | None = None

    @property
    def key(self) -> str:
        return self._key

    @property
    def task_name(self) -> str:
        return self._task_name

    @property
    def account_id(self) -> int:
        return self._account_id

    @property
    def params(self) -> dict[str, Any]:
        """The validated parameters (the schema's defaults filled in)."""
        return self._params

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def tmpdir(self) -> Path:
        """The task's private folder, created on first use (most light tasks never need it)."""
        if not self._tmpdir_made:
            self._tmpdir.mkdir(parents=True, exist_ok=True)
            self._tmpdir_made = True
        return self._tmpdir

    @property
    def tmpdir_made(self) -> bool:
        """Whether ``tmpdir`` was asked for (the scheduler removes it afterwards only if so)."""
        return self._tmpdir_made

    # -- inputs -------------------------------------------------------------------------
    async def fetch(self, url: str, *, max_bytes: int | None = None) -> Download:
        """Download ``url`` into tmpdir (once per task, however often asked).

        Returns ``dragon.net.fetcher.Download`` (``path``, ``mime`` sniffed from the bytes,
        ``size``, ``url``); raises ``TaskError`` (url_forbidden, download_failed, ...).
        """
        if url not in self._downloads:
            dest = self.tmpdir / f"src{len(self._downloads)}"
            dest.mkdir(parents=True, exist_ok=True)
            self._downloads[url] = asyncio.ensure_future(self._budgeted(url, dest, max_bytes))
        with failing_at("fetch"):
            return await asyncio.shield(self._downloads[url])

    async def _budgeted(self, url: str, dest: Path, max_bytes: int | None) -> Download:
        """One download within what is left of the task's total download budget.

        Each download reserves as much as it may take, and gives back what it did not use,
        so concurrent downloads cannot overrun the budget together.
        """
        total = self.settings.max_task_download_bytes
        left = total - self._reserved
        if left <= 0:
            raise errors.TaskError(
                errors.DOWNLOAD_TOO_LARGE,
                f"this task's sources add up to more than {total} bytes, the limit per task",
            )
        reserve = min(max_bytes or self.settings.max_download_bytes, left)
        # Nor more than the data disk holds above its reserve: past that it is disk_full.
        room = disk.check_room(self.settings)
        self._reserved += reserve
        try:
            async with self._slot.released() if self._slot else contextlib.nullcontext():
                with for_account(self.account_id):  # its own share of the host's connections
                    download = await self._fetcher.download(url, dest, max_bytes=min(reserve, room))
        except errors.TaskError as exc:
            self._reserved -= reserve
            if exc.code == errors.DOWNLOAD_TOO_LARGE and room < reserve:
                raise disk.full_error(self.settings, "the download") from None
            raise
        except BaseException:
            self._reserved -= reserve
            raise
        self._reserved -= reserve - download.size
        return download

    async def aclose(self) -> None:
        """Stop downloads still running (the task failed or was cancelled while they ran)."""
        running = [f for f in self._downloads.values() if not f.done()]
        for future in running:
            future.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    # -- tools ----------------------------------------------------------------------------
    async def begin(self) -> None:
        """The task's work begins: called before its first tool, process-pool job, partial
        result or output (a task needs not call it). Until then the task is queued: it holds a slot
        only between downloads, and its documents say ``queued``."""
        if not self._begun:
            self._begun = True
            await self._reporter.begin(self.key)

    def remaining(self) -> float | None:
        return None if self._deadline is None else max(0.1, self._deadline - time.monotonic())

    async def run(
        self,
        argv: list[str],
        *,
        timeout: float | None = None,
        check: bool = True,
        error_code: str = errors.INVALID_MEDIA,
        stdin: bytes | None = None,
        progress_duration: float | None = None,
    ) -> ProcessResult:
        """Run a tool in its own process group; killed on timeout or cancellation.

        With ``check`` a non-zero exit raises ``TaskError(error_code)`` naming the tool's
        reason. ``progress_duration`` (ffmpeg only) turns its progress into ``progress``.
        """
        await self.begin()
        limits = [t for t in (timeout, self.remaining()) if t is not None]
        tool = Path(argv[0]).name
        stage = "probe" if tool == "ffprobe" else "process"
        with failing_at(stage):
            result = await run_process(
                argv,
                timeout=min(limits) if limits else None,
                stdin=stdin,
                cwd=str(self.tmpdir),
                progress_duration=progress_duration,
                on_progress=self.progress if progress_duration else None,
                on_start=self.processes.add,
                nice=self._nice,
            )
        if result.returncode != 0:
            # A task may look at a failed run itself (check=False) and then give up: its
            # diagnostics still show this run.
            self.failed_run = (stage, result.report())
        if check and result.returncode != 0:
            code = errors.DISK_FULL if NO_SPACE in result.stderr else error_code
            exc = errors.TaskError(code, f"{tool} failed: {result.reason()}")
            exc.stage, exc.tool = stage, result.report()
            raise exc
        return result

    async def in_process(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run picklable CPU-heavy ``fn(*args)`` in the process pool (numpy, Pillow).

        If the task is cancelled or times out meanwhile, the job is stopped too
        (``dragon.runtime.pool``). The job waits its turn while the account's jobs hold
        their share of the pool's workers.
        """
        await self.begin()
        if self._pool is None:
            return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
        # The pool hands back whatever the worker process returned: ``fn``'s result.
        return cast(T, await self._pool.run(fn, *args, account=self.account_id))

    async def in_thread(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking ``fn`` in a thread (for work that releases the GIL or does I/O).

        Not the task's work beginning (``begin``): a thread parses a definition or reads
        a header before the inputs are fetched."""
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    # -- reporting ------------------------------------------------------------------------
    def progress(self, value: float) -> None:
        """Report progress 0-100; cheap to call often (writes are coalesced)."""
        self._reporter.progress(self.key, value)

    async def partial(self, result: dict[str, Any]) -> None:
        """Publish a partial result: status stays ``executing`` with this ``result``."""
        await self.begin()
        await self._reporter.partial(self.key, result)

    def warn(self, message: str) -> None:
        """Add a line to the result's ``warnings`` (something accepted but not honoured)."""
        self.warnings.append(message)

    # -- outputs --------------------------------------------------------------------------
    async def output(self, name: str, path: Path, content_type: str) -> str:
        """Hand ``path`` to the task's store; its URL becomes ``result[name]``."""
        await self.begin()
        with failing_at("store"):
            url = await self._store.put(self, name, Path(path), content_type)
        self.outputs[name] = url
        return url

    async def output_tree(
        self, name: str, folder: Path, main: str, content_type: Callable[[str], str]
    ) -> dict[str, str]:
        """Hand every file under ``folder`` to the task's store beneath one location, keeping
        their relative paths (a playlist names its segments by them); ``result[name]`` is
        the URL of ``main`` (a relative path). Returns each file's URL by relative path."""
        await self.begin()
        with failing_at("store"):
            urls = await self._store.put_tree(self, name, Path(folder), main, content_type)
        self.outputs[name] = urls[main]
        return urls
