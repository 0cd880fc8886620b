"""Waveform reduction and drawing, and the PCM pipe under it, on audio made here.

The render tests go through ``dragon.media.waveform.render`` (the audio.waveform pool
worker: real ffmpeg, real pipe) and read the PNG back with Pillow.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from dragon import errors
from dragon.media import waveform
from dragon.media.pcm import open_pcm, pcm_argv, run_in_pool
from dragon.media.probe import path_input_args

RATE = 44100
WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def write_wav(path: Path, *segments: tuple[float, float]) -> Path:
    """Concatenated segments of (seconds, amplitude) of a 440 Hz tone (0 = silence)."""
    parts = []
    for seconds, amplitude in segments:
        t = np.arange(int(seconds * RATE)) / RATE
        parts.append(amplitude * np.sin(2 * np.pi * 440 * t))
    soundfile.write(str(path), np.concatenate(parts).astype(np.float32), RATE, subtype="PCM_16")
    return path


def render(
    src: Path,
    out: Path,
    *,
    start: float = 0.0,
    end: float | None = None,
    width: int = 200,
    height: int = 40,
    vmargin: int = 0,
    fill=BLACK,
    background=WHITE,
) -> tuple[np.ndarray, float]:
    span = None if end is None else end - start
    argv = pcm_argv(
        path_input_args(src, "wav", seek=start),
        RATE,
        duration=span,
        sample_format=waveform.SAMPLE_FORMAT,
    )
    decoded = waveform.render(
        argv,
        None,
        30,
        out_path=str(out),
        width=width,
        height=height,
        vmargin=vmargin,
        fill=fill,
        background=background,
        fmt="png",
        rate=RATE,
    )
    return np.asarray(Image.open(out).convert("RGB")), decoded


def ink(pixels: np.ndarray, background=WHITE) -> np.ndarray:
    """Boolean (height, width): pixels that are not the background."""
    return np.any(pixels != np.asarray(background, np.uint8), axis=2)


@pytest.fixture(scope="module")
def half_tone(tmp_path_factory) -> Path:
    """1 s of a loud tone, then 1 s of silence."""
    return write_wav(tmp_path_factory.mktemp("wave") / "half.wav", (1.0, 0.8), (1.0, 0.0))


def test_reducer_matches_brute_force_for_any_chunking():
    rng = np.random.default_rng(7)
    for _ in range(40):
        width, n = int(rng.integers(1, 300)), int(rng.integers(1, 60000))
        x = rng.standard_normal(n).astype(np.float32)
        reducer = waveform.PeakReducer(width)
        i = 0
        while i < n:
            step = int(rng.integers(1, 5000))
            reducer.add(x[i : i + step])
            i += step
        mins, maxs = reducer.columns(width)
        assert reducer.samples == n
        assert mins.min() == x.min() and maxs.max() == x.max()
        for c in range(width):  # each column's extremes come from its own samples (+- a bucket)
            lo = max(0, c * n // width - reducer.bucket)
            hi = min(n, max(c * n // width + 1, (c + 1) * n // width) + reducer.bucket)
            assert x[lo:hi].min() <= mins[c] and maxs[c] <= x[lo:hi].max()


def test_reducer_keeps_memory_bounded():
    reducer = waveform.PeakReducer(100)
    chunk = np.ones(1 << 16, np.int16)
    for _ in range(200):  # 13 M samples
        reducer.add(chunk)
    assert reducer.n <= reducer.capacity == 3200
    assert reducer.columns(100)[1].tolist() == [pytest.approx(1 / 32768)] * 100


def test_tone_then_silence_inks_only_the_left_half(half_tone, tmp_path):
    pixels, decoded = render(half_tone, tmp_path / "w.png")
    assert decoded == pytest.approx(2.0, abs=0.01)
    drawn = ink(pixels)
    assert drawn[:, :98].any(axis=0).all()  # every column of the tone has ink
    assert not drawn[:, 102:].any()  # the silent half has none
    # amplitude 0.8 of full scale: about 80 % of the height, centred
    rows = np.flatnonzero(drawn[:, 50])
    assert 30 <= len(rows) <= 34 and abs((rows[0] + rows[-1]) / 2 - 19.5) <= 1


def test_fill_and_background_colours(half_tone, tmp_path):
    fill, background = (200, 30, 40), (10, 20, 90)
    pixels, _ = render(half_tone, tmp_path / "w.png", fill=fill, background=background)
    colours = {tuple(c) for c in pixels.reshape(-1, 3)}
    assert colours == {fill, background}
    assert tuple(pixels[20, 50]) == fill and tuple(pixels[20, 150]) == background


def test_start_and_end_crop_the_waveform(tmp_path):
    src = write_wav(tmp_path / "sq.wav", (1.0, 0.0), (1.0, 0.8), (1.0, 0.0))
    pixels, decoded = render(src, tmp_path / "a.png", start=1.0, end=2.0)
    assert decoded == pytest.approx(1.0, abs=0.01)
    assert ink(pixels)[:, 3:-3].any(axis=0).all()  # only the tone is drawn, edge to edge
    pixels, decoded = render(src, tmp_path / "b.png", start=0.5, end=1.5)
    drawn = ink(pixels).any(axis=0)
    assert not drawn[:97].any() and drawn[103:].all()  # silence, then the tone


def test_vmargin_leaves_empty_rows(tmp_path):
    src = write_wav(tmp_path / "loud.wav", (0.5, 1.0))
    pixels, _ = render(src, tmp_path / "w.png", height=40, vmargin=7)
    drawn = ink(pixels)
    assert not drawn[:7].any() and not drawn[-7:].any()
    assert drawn[7].any() and drawn[-8].any()  # full scale reaches the margins


def test_jpeg_output(half_tone, tmp_path):
    argv = pcm_argv(path_input_args(half_tone, "wav"), RATE, sample_format="s16le")
    out = tmp_path / "w.jpg"
    waveform.render(
        argv,
        None,
        30,
        out_path=str(out),
        width=320,
        height=60,
        vmargin=0,
        fill=BLACK,
        background=WHITE,
        fmt="jpeg",
        rate=RATE,
    )
    with Image.open(out) as img:
        assert (img.format, img.size) == ("JPEG", (320, 60))
        gray = np.asarray(img.convert("L"))
    assert gray[:, :150].min() < 50 and gray[:, 170:].min() > 200


def test_undecodable_input_is_invalid_media(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    argv = pcm_argv(path_input_args(bad, "wav"), RATE)
    with pytest.raises(errors.TaskError) as info:
        waveform.render(
            argv,
            None,
            30,
            out_path=str(tmp_path / "x.png"),
            width=10,
            height=10,
            vmargin=0,
            fill=BLACK,
            background=WHITE,
            fmt="png",
            rate=RATE,
        )
    assert info.value.code == errors.INVALID_MEDIA


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_timeout_and_early_exit_kill_ffmpeg(tmp_path):
    # -re decodes at real-time speed: 60 s of tone would take a minute.
    slow = [
        "ffmpeg",
        "-v",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=60",
        "-f",
        "f32le",
        "pipe:1",
    ]
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    pcm = open_pcm(slow, timeout=0.5, pidfile=str(pidfile))
    with pytest.raises(errors.TaskError) as info, pcm as chunks:
        pid = int(pidfile.read_text())
        for _ in chunks:
            pass
    assert info.value.code == errors.TIMEOUT
    assert time.monotonic() - started < 10
    assert not alive(pid) and not pidfile.exists()

    pcm = open_pcm(slow, timeout=30, pidfile=str(pidfile))
    with pytest.raises(ZeroDivisionError), pcm as chunks:
        pid = int(pidfile.read_text())
        next(chunks)
        1 / 0  # noqa: B018 - a consumer failing mid-stream
    assert not alive(pid)


class PoolContext:
    """What ``run_in_pool`` uses of a TaskContext, with a thread pool as the 'process pool'."""

    def __init__(self, tmpdir: Path, pool) -> None:
        self.tmpdir, self.pool, self.settings = tmpdir, pool, None
        self.futures: list = []

    def remaining(self) -> float:
        return 30.0

    async def in_process(self, fn, *args):
        future = self.pool.submit(fn, *args)
        self.futures.append(future)
        return await asyncio.wrap_future(future)


async def test_cancelled_task_kills_the_workers_ffmpeg(tmp_path):
    slow = [
        "ffmpeg",
        "-v",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=60",
        "-f",
        "f32le",
        "pipe:1",
    ]
    fn = functools.partial(
        waveform.render,
        out_path=str(tmp_path / "w.png"),
        width=10,
        height=10,
        vmargin=0,
        fill=BLACK,
        background=WHITE,
        fmt="png",
        rate=44100,
    )
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        ctx = PoolContext(tmp_path, pool)
        task = asyncio.ensure_future(run_in_pool(ctx, fn, slow))
        for _ in range(100):
            await asyncio.sleep(0.05)
            pidfiles = list(tmp_path.glob("ffmpeg-*.pid"))
            if pidfiles and pidfiles[0].read_text():
                break
        pid = int(pidfiles[0].read_text())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the worker's stream ended with its ffmpeg: it is free again at once
        with pytest.raises(errors.TaskError):
            ctx.futures[0].result(timeout=5)
    assert not alive(pid)
