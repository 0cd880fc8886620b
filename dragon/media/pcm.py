"""Streaming decode of a local media file to mono PCM through an ffmpeg pipe.

audio.waveform and audio.beats never hold a whole decoded file: ffmpeg writes raw
``f32le`` (or ``s16le``) samples to its stdout and the analysis reduces them chunk by
chunk, so memory stays flat in the audio's length (a 4-hour file is 1.3 GB of float32
at 22050 Hz).

The reading side runs inside a process-pool worker (``TaskContext.in_process``), so the
event loop never sees the samples. That worker owns the ffmpeg child: it starts it in its
own process group (with the parent-death signal of ``dragon.runtime.processes.guarded``,
so it dies with the worker), kills the whole group on any exception, on early exit and
past ``timeout``, and writes the child's pid to ``pidfile`` while it runs, so the task
(``run_in_pool``) can kill ffmpeg if the task itself is cancelled while the worker is still
reading. A reader that dies closes the pipe, and ffmpeg then dies of SIGPIPE at its next
write.

Errors are ``TaskError``s, which cross the process boundary whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from dragon import errors
from dragon.media.context import RunsInPool
from dragon.media.ffmpeg import ffmpeg_argv
from dragon.runtime.processes import (
    STDERR_TAIL,
    guarded,
    kill_group,
    memory_exhausted,
    tail_reason,
)

CHUNK_SAMPLES = 1 << 17  # samples per read: few Python iterations, small buffers
# The pipe from ffmpeg holds 1 MiB instead of 64 KiB, so ffmpeg and the reader wake each
# other up far less often (the default cap of /proc/sys/fs/pipe-max-size is 1 MiB).
PIPE_BYTES = 1 << 20


SAMPLE_TYPES: dict[str, np.dtype[Any]] = {"f32le": np.dtype("<f4"), "s16le": np.dtype("<i2")}


def pcm_argv(
    input_args: list[str], rate: int, *, duration: float | None = None, sample_format: str = "f32le"
) -> list[str]:
    """ffmpeg decoding the first audio stream of ``input_args`` to mono PCM on stdout.

    ``sample_format`` is ``f32le`` (analysis) or ``s16le`` (half the bytes, clipped to
    full scale: enough for drawing).
    ``input_args`` comes from ``dragon.media.probe.input_args`` (whitelists, optional input
    seek, forced demuxer; ``ffmpeg_argv`` re-checks them). ``duration`` limits the output
    (``-t``), for ``end``.
    """
    limit = ["-t", f"{duration:.6f}"] if duration is not None else []
    # -flush_packets 0: else ffmpeg writes each decoded frame to the pipe on its own (2,304
    # bytes for an MP3 as mono s16), and those writes and the reader's wake-ups added a
    # quarter of the decode's CPU (scripts/bench_waveform.py); now it writes 32 KiB at once.
    return ffmpeg_argv(
        *input_args,
        "-map",
        "0:a:0",
        "-vn",
        "-sn",
        "-dn",
        *limit,
        "-ac",
        "1",
        "-ar",
        str(rate),
        "-flush_packets",
        "0",
        "-f",
        sample_format,
        "pipe:1",
    )


@contextlib.contextmanager
def open_pcm(
    argv: list[str],
    *,
    timeout: float,
    pidfile: str | None = None,
    chunk_samples: int = CHUNK_SAMPLES,
    reuse: bool = False,
) -> Iterator[Iterator[np.ndarray]]:
    """Run ``argv`` (from ``pcm_argv``) and give an iterator of sample chunks.

    The chunks' dtype follows the ``-f`` at the end of ``argv`` (float32 or int16); each
    holds ``chunk_samples`` samples but the last. With ``reuse`` every chunk is a view of
    one buffer, valid until the next chunk is asked for: no allocation (and no fresh pages
    to fault in) per read, for a reader that reduces each chunk at once.
    Use as ``with open_pcm(argv, timeout=t) as chunks: for x in chunks: ...``. When the
    block ends, however it ends, ffmpeg is dead and reaped. A non-zero exit raises
    ``PcmError(invalid_media)`` with ffmpeg's reason once the stream is exhausted;
    running past ``timeout`` seconds raises ``PcmError(timeout)``.
    """
    dtype = SAMPLE_TYPES[argv[argv.index("pipe:1") - 1]]
    timed_out = threading.Event()
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: it can never fill up
        proc = subprocess.Popen(
            guarded(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            process_group=0,
            bufsize=0,
        )
        assert proc.stdout is not None
        with contextlib.suppress(OSError, AttributeError):  # a smaller pipe still works
            fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        if pidfile:
            Path(pidfile).write_text(str(proc.pid))

        def expire() -> None:
            timed_out.set()
            kill_group(proc)

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()

        def chunks() -> Iterator[np.ndarray]:
            assert proc.stdout is not None
            yield from _read_chunks(proc.stdout, dtype, chunk_samples, reuse)
            proc.wait()
            if timed_out.is_set():
                raise errors.TaskError(errors.TIMEOUT, f"decoding took longer than {timeout:g} s")
            if proc.returncode != 0:
                memory_exhausted(argv, proc.returncode, _tail(stderr))
                raise errors.TaskError(errors.INVALID_MEDIA, f"ffmpeg failed: {_reason(stderr)}")

        try:
            yield chunks()
        finally:
            timer.cancel()
            kill_group(proc)
            proc.wait()
            if proc.stdout:
                proc.stdout.close()
            if pidfile:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(pidfile)


def _tail(stderr: IO[bytes]) -> str:
    stderr.seek(0, os.SEEK_END)
    stderr.seek(max(0, stderr.tell() - STDERR_TAIL))
    return stderr.read().decode("utf-8", "replace")


def _read_chunks(
    stream: Any, dtype: np.dtype[Any], samples: int, reuse: bool
) -> Iterator[np.ndarray]:
    """Fill a buffer of ``samples`` from the raw pipe ``stream`` and yield it as an array.

    ``stream`` is an unbuffered pipe (``bufsize=0``, an ``io.FileIO``) for ``readinto``,
    which typeshed's ``Popen.stdout`` (``IO[bytes]``) does not declare.
    """
    size = dtype.itemsize
    buf = bytearray(samples * size)
    view = memoryview(buf)
    filled = 0
    while True:
        n = stream.readinto(view[filled:])
        filled += n
        if n and filled < len(buf):
            continue
        if filled >= size:  # full, or the end (where a torn last sample is dropped)
            chunk = np.frombuffer(buf, dtype, filled // size)
            yield chunk if reuse else chunk.copy()
        if not n:
            return
        filled = 0


def _reason(stderr: IO[bytes]) -> str:
    return tail_reason(_tail(stderr)) or "no reason given"


def pool_timeout(ctx: RunsInPool) -> float:
    """Seconds a worker may decode: what is left of the task, else the task timeout."""
    remaining = ctx.remaining()
    if remaining is not None:
        return remaining
    return float(ctx.settings.task_timeout_seconds)


async def run_in_pool(ctx: RunsInPool, fn: Callable[..., Any], argv: list[str], *args: Any) -> Any:
    """``ctx.in_process(fn, argv, pidfile, timeout, *args)``, with ffmpeg killed on cancel.

    ``fn`` opens ``argv`` with ``open_pcm(argv, timeout=..., pidfile=...)``. If the task is
    cancelled while the worker runs, the worker cannot be interrupted, but killing its
    ffmpeg (whose pid it left in ``pidfile``) ends its stream at once and frees the slot.
    """
    pidfile = ctx.tmpdir / f"ffmpeg-{uuid.uuid4().hex}.pid"
    try:
        return await ctx.in_process(fn, argv, str(pidfile), pool_timeout(ctx), *args)
    except errors.TaskError:
        raise
    except BaseException:
        # The worker removes the file after reaping ffmpeg, so a pid read here is still ours.
        with contextlib.suppress(
            FileNotFoundError, ValueError, ProcessLookupError, PermissionError
        ):
            os.killpg(int(pidfile.read_text()), signal.SIGKILL)
        raise
