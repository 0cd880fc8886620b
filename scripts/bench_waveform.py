"""Benchmark audio.waveform: time against a decode-only ffmpeg, and memory against length.

    .venv/bin/python scripts/bench_waveform.py [--minutes 60] [--runs 5] [--keep DIR]

Makes a stereo 44.1 kHz MP3 (10 minutes encoded once from lavfi sources, then
concatenated without re-encoding to the requested length) and times an 1800x280 PNG
(a player-wide image) in ``--runs`` round-robin rounds (ratios are taken
within a round, so load from other processes hits every variant alike):

* ``ffmpeg -i x.mp3 -f null -``: decode only, the baseline of the ratio (target <= 1.3);
* ``ffmpeg ... -ac 1 -f null -``: decode and downmix, what our pipeline asks of ffmpeg;
* ours: ``dragon.media.waveform.render``, the audio.waveform pool worker (ffmpeg to a
  mono 16-bit pipe at the source's 44.1 kHz, per-column min/max, drawing, PNG), called
  directly, with ffmpeg at this script's niceness like the baseline;
* the same at 8 kHz float (what resampling to a low rate would cost or save);
* the alternative design: the pipe read on an asyncio loop, chunks reduced in a thread.

Besides wall time, each row gives its CPU time (user + system of this process and its
children) against the baseline's: on a busy shared machine wall time follows the CPU the
other users leave, so the CPU ratio is the steadier figure (it has no target).

Peak RSS of the worker (Python) and of its ffmpeg are measured in a child process for
the 10-minute and the full file: flat means within 10 % of each other, and each at most
250 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dragon.media import waveform  # noqa: E402
from dragon.media.pcm import pcm_argv  # noqa: E402
from dragon.media.probe import path_input_args  # noqa: E402
from dragon.runtime import processes  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from benchlib import check  # noqa: E402

W, H = 1800, 280


def make_mp3(workdir: Path, minutes: int) -> tuple[Path, Path]:
    """(10-minute MP3, ``minutes``-long MP3) of a tone swept under noise bursts."""
    ten = workdir / "ten.mp3"
    if not ten.exists():
        src = (
            "aevalsrc=exprs='0.5*sin(2*PI*(220+110*sin(t/7))*t)*abs(sin(t*1.3))"
            "|0.4*sin(2*PI*330*t)*abs(cos(t*0.7))':s=44100:d=600"
        )
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                src,
                "-f",
                "lavfi",
                "-i",
                "anoisesrc=a=0.05:d=600:r=44100",
                "-filter_complex",
                "[0][1]amix=inputs=2:normalize=0[a]",
                "-map",
                "[a]",
                "-c:a",
                "libmp3lame",
                "-b:a",
                "128k",
                str(ten),
            ],
            check=True,
        )
    full = workdir / f"full{minutes}.mp3"
    if not full.exists():
        listing = workdir / "list.txt"
        listing.write_text(f"file '{ten}'\n" * max(1, minutes // 10))
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-f",
                "concat",
                "-safe",
                "0",
                "-i",
                str(listing),
                "-c",
                "copy",
                str(full),
            ],
            check=True,
        )
    return ten, full


def cpu_seconds() -> float:
    """User + system CPU of this process and its reaped children so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    cpu, t = cpu_seconds(), time.perf_counter()
    fn()
    return time.perf_counter() - t, cpu_seconds() - cpu


def ours(path: Path, out: Path, rate: int = 44100, fmt: str = waveform.SAMPLE_FORMAT) -> float:
    argv = pcm_argv(path_input_args(path, "mp3"), rate, sample_format=fmt)
    return waveform.render(
        argv,
        None,
        3600,
        out_path=str(out),
        width=W,
        height=H,
        vmargin=0,
        fill=(40, 90, 200),
        background=(255, 255, 255),
        fmt="png",
        rate=rate,
    )


def async_variant(path: Path, out: Path) -> None:
    """The rejected design: the pipe read by asyncio, each chunk reduced in a thread."""
    argv = pcm_argv(path_input_args(path, "mp3"), 44100, sample_format=waveform.SAMPLE_FORMAT)

    async def main() -> None:
        import numpy as np

        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        reducer = waveform.PeakReducer(W)
        assert proc.stdout
        pending = b""
        while data := await proc.stdout.read(1 << 19):
            data = pending + data
            usable = len(data) - len(data) % 2
            pending = data[usable:]
            await asyncio.to_thread(reducer.add, np.frombuffer(data, np.int16, usable // 2))
        await proc.wait()
        mins, maxs = reducer.columns(W)
        image = await asyncio.to_thread(
            waveform.draw,
            mins,
            maxs,
            height=H,
            vmargin=0,
            fill=(40, 90, 200),
            background=(255, 255, 255),
        )
        await asyncio.to_thread(image.save, str(out), "PNG", compress_level=6)

    asyncio.run(main())


def peak_rss(path: Path, out: Path) -> dict:
    """Peak RSS (MB) of a fresh worker process running ``ours`` and of its ffmpeg."""
    code = (
        "import json, resource, sys; sys.path[:0] = sys.argv[1:2];"
        "import runpy; m = runpy.run_path(sys.argv[2]);"
        "from pathlib import Path; m['ours'](Path(sys.argv[3]), Path(sys.argv[4]));"
        "print(json.dumps({'worker': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,"
        "'ffmpeg': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), __file__, str(path), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="keep the generated MP3s here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        ten, full = make_mp3(workdir, args.minutes)
        out = workdir / "wave.png"
        runs = args.runs

        # ffmpeg under render() gets the server's tool niceness (10 by default); the raw
        # baseline runs at ours, so give render's ffmpeg the same to compare like with like.
        processes.set_tool_nice(os.nice(0))

        def ffmpeg_null(*extra: str) -> None:
            subprocess.run(
                ["ffmpeg", "-v", "error", "-i", str(full), *extra, "-f", "null", "-"], check=True
            )

        print(f"baseline: ffmpeg -v error -i {full.name} -f null -")
        ours_argv = pcm_argv(path_input_args(full, "mp3"), 44100, sample_format="s16le")
        print(f"ours: {shlex.join(ours_argv)} | dragon.media.waveform.render")
        variants = [
            ("ffmpeg -i x -f null - (decode only)", ffmpeg_null),
            ("ffmpeg ... -ac 1 -f null - (downmix)", lambda: ffmpeg_null("-ac", "1")),
            ("ours: pool worker, 44.1 kHz s16 pipe", lambda: ours(full, out)),
            ("ours at 8 kHz f32 (resampled)", lambda: ours(full, out, 8000, "f32le")),
            ("asyncio pipe + thread reduce, s16", lambda: async_variant(full, out)),
        ]
        # Round-robin, so that load from other processes hits every variant alike; the
        # ratio is taken within each round, then the median over rounds.
        times: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in variants}
        for _ in range(runs):
            for name, fn in variants:
                times[name].append(timed(fn))
        base = times[variants[0][0]]
        print(
            f"{args.minutes} min stereo MP3 ({full.stat().st_size / 1e6:.0f} MB), "
            f"{W}x{H} PNG, median of {runs} rounds, load average {os.getloadavg()[0]:.1f}:"
        )
        ratios = {}
        for name, _ in variants:
            wall = statistics.median(w for w, _ in times[name])
            cpu = statistics.median(c for _, c in times[name])
            ratios[name] = statistics.median(
                w / b for (w, _), (b, _) in zip(times[name], base, strict=True)
            )
            cpu_ratio = statistics.median(
                c / b for (_, c), (_, b) in zip(times[name], base, strict=True)
            )
            print(
                f"  {name:38s} {wall:6.2f} s  {ratios[name]:5.2f}x decode  "
                f"{args.minutes * 60 / wall:6.0f}x real time   CPU {cpu:5.2f} s, "
                f"{cpu_ratio:4.2f}x decode"
            )
        rss = {}
        for label, path in (("10 min", ten), (f"{args.minutes} min", full)):
            rss[label] = peak_rss(path, out)
            print(
                f"  peak RSS {label:7s}: worker {rss[label]['worker']:5.0f} MB, "
                f"ffmpeg {rss[label]['ffmpeg']:5.0f} MB"
            )
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  (this process: {own:.0f} MB)")
        check("waveform time / decode-only time, x", ratios[variants[2][0]], "<=", 1.3)
        short, long = rss["10 min"], rss[f"{args.minutes} min"]
        check("peak RSS worker + ffmpeg, MB", long["worker"] + long["ffmpeg"], "<=", 250)
        check(
            f"peak RSS {args.minutes} min / 10 min, x",
            (long["worker"] + long["ffmpeg"]) / (short["worker"] + short["ffmpeg"]),
            "<=",
            1.1,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
