"""Running external tools (ffmpeg, ffprobe, ImageMagick) without letting them escape.

Each process starts in its own process group, gets no stdin unless given one, and is
killed as a group on timeout or cancellation, so no ffmpeg outlives its task. The group
stays in the server's session: a session of its own would be a scheduling group of its own
where the kernel groups sessions (autogroup, on by default on most distributions), weighted
like the whole server whatever the tool's niceness, and two encodes would take two thirds of
the CPU from the API. The tail of stderr is kept for the error message. When
``progress_duration`` is given the argv must be an ffmpeg command: ``-progress pipe:1
-nostats`` is added and its ``out_time_us`` lines become 0-100 progress reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable
from typing import Any

from dragon import errors

STDERR_TAIL = 4000
DIAGNOSTIC_TAIL = 2000  # stderr characters kept in a failed task's diagnostics

# If the server itself is killed (SIGKILL, OOM), its tools must die with it: they run in
# their own process groups, so nothing else would stop them. util-linux's setpriv sets the
# parent-death signal and then execs the tool (no shell, no extra process).
SETPRIV = shutil.which("setpriv")

# Tools run at a lower CPU priority than the API (DRAGON_TOOL_NICE), so status requests stay
# fast while encodes fill every core. coreutils' nice execs the tool (no extra process).
NICE = shutil.which("nice")
_tool_nice = 10


def set_tool_nice(level: int) -> None:
    """The niceness tools get from now on in this process (the server sets it at start-up)."""
    global _tool_nice
    _tool_nice = level


# Every tool gets at most DRAGON_TOOL_MEMORY_BYTES of address space (RLIMIT_AS, set by
# util-linux's prlimit, which then execs the tool): a crafted file asking ffmpeg for huge
# frames makes its allocations fail instead of taking the machine's memory.
PRLIMIT = shutil.which("prlimit")
_tool_memory = 0  # bytes; 0: no limit


def set_tool_memory(limit: int) -> None:
    """The address space tools get from now on in this process (set at start-up)."""
    global _tool_memory
    _tool_memory = limit


# What ffmpeg, x264, swscale and the dynamic loader print when an allocation fails. Under
# RLIMIT_AS a thread's stack cannot be mapped either: pthread_create then fails with EAGAIN,
# which ffmpeg prints as "Resource temporarily unavailable" (swscale's slice threads when a
# filtergraph of many inputs is configured); a tool reading local files meets EAGAIN no
# other way, so with a memory limit set it means the limit.
OUT_OF_MEMORY = re.compile(
    r"cannot allocate memory|out of memory|malloc of size \d+ failed|failed to allocate"
    r"|memory allocation failed|bad_alloc|failed to map segment|resource temporarily unavailable",
    re.I,
)


def tool_memory() -> int:
    """The address space, in bytes, tools get in this process (0: no limit)."""
    return _tool_memory


def memory_exhausted(argv: list[str], returncode: int | None, stderr: str) -> None:
    """Raise ``TaskError(resource_limit)`` if a failed tool ran out of its memory limit."""
    if returncode and _tool_memory and OUT_OF_MEMORY.search(stderr):
        exc = errors.TaskError(
            errors.RESOURCE_LIMIT,
            f"{os.path.basename(argv[0])} needed more than the {_tool_memory // 2**20} MiB of"
            f" memory a tool may use (DRAGON_TOOL_MEMORY_BYTES): {tail_reason(stderr)}",
        )
        exc.tool = tool_report(argv, returncode, stderr)  # for the task's diagnostics
        raise exc


def guarded(argv: list[str], nice: int | None = None) -> list[str]:
    """``argv`` run under the tools' memory limit, at their niceness (or ``nice``, the
    batch tasks' lower priority), dying with the server."""
    # nice -n is relative: a pool worker already lowered to the level adds nothing.
    if _tool_memory and PRLIMIT:
        argv = [PRLIMIT, f"--as={_tool_memory}", "--", *argv]
    lower = max(_tool_nice, nice or 0) - os.nice(0)
    if lower > 0 and NICE:
        argv = [NICE, "-n", str(lower), "--", *argv]
    if SETPRIV:
        return [SETPRIV, "--pdeathsig", "KILL", "--", *argv]
    return argv


@dataclasses.dataclass
class ProcessResult:
    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: str

    def reason(self) -> str:
        """The last meaningful stderr lines: what a user needs to see of a failure."""
        return tail_reason(self.stderr) or f"exit code {self.returncode}"

    def report(self) -> dict[str, Any]:
        """The run as failure diagnostics show it (``TaskError.tool``)."""
        return tool_report(self.argv, self.returncode, self.stderr)


def tool_report(argv: list[str], exit_code: int | None, stderr: str) -> dict[str, Any]:
    """A tool run for diagnostics: its argv, exit code (None: killed) and stderr's end."""
    return {"argv": list(argv), "exit_code": exit_code, "stderr": stderr[-DIAGNOSTIC_TAIL:]}


def tail_reason(stderr: str) -> str:
    """The last three non-empty lines of a tool's stderr, joined, at most 500 characters."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return "; ".join(lines[-3:])[-500:]


def kill_group(proc: asyncio.subprocess.Process | subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group of ``proc`` (its own) if it still runs."""
    if isinstance(proc, subprocess.Popen):
        proc.poll()
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


async def run_process(
    argv: list[str],
    *,
    timeout: float | None = None,
    stdin: bytes | None = None,
    cwd: str | None = None,
    progress_duration: float | None = None,
    on_progress: Callable[[float], None] | None = None,
    on_start: Callable[[asyncio.subprocess.Process], None] | None = None,
    nice: int | None = None,
) -> ProcessResult:
    """Run ``argv`` to completion; raise ``TaskError(timeout)`` past ``timeout`` seconds.
    ``nice``: a lower CPU priority than the tools' default (batch work)."""
    if progress_duration:
        argv = [argv[0], "-progress", "pipe:1", "-nostats", *argv[1:]]
    proc = await asyncio.create_subprocess_exec(
        *guarded(argv, nice),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        preexec_fn=os.setpgrp,  # a group of its own (uvloop has no process_group)
    )
    if on_start:
        on_start(proc)
    stderr_tail = bytearray()
    stdout_buf = bytearray()

    async def read_stderr() -> None:
        assert proc.stderr
        while chunk := await proc.stderr.read(65536):
            stderr_tail.extend(chunk)
            del stderr_tail[:-STDERR_TAIL]

    async def read_stdout() -> None:
        assert proc.stdout
        if not progress_duration:
            while chunk := await proc.stdout.read(1 << 20):
                stdout_buf.extend(chunk)
            return
        async for line in proc.stdout:
            if line.startswith(b"out_time_us=") and on_progress:
                with contextlib.suppress(ValueError):
                    done = int(line.split(b"=", 1)[1]) / 1e6
                    on_progress(max(0.0, min(99.0, 100.0 * done / progress_duration)))

    async def feed() -> None:
        if stdin is not None and proc.stdin:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(stdin)
                await proc.stdin.drain()
                proc.stdin.close()

    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(read_stderr(), read_stdout(), feed())
            await proc.wait()
    except TimeoutError:
        kill_group(proc)
        await proc.wait()
        exc = errors.TaskError(
            errors.TIMEOUT, f"{os.path.basename(argv[0])} took longer than {timeout:g} s"
        )
        exc.tool = tool_report(argv, None, stderr_tail.decode("utf-8", "replace"))
        raise exc from None
    finally:
        kill_group(proc)
    stderr = stderr_tail.decode("utf-8", "replace")
    memory_exhausted(argv, proc.returncode, stderr)
    return ProcessResult(argv, proc.returncode or 0, bytes(stdout_buf), stderr)
