"""Benchmark audio.beats: accuracy against librosa on the synthetic set, and speed.

Dev-only dependencies: ``pip install librosa mir_eval`` (the bench extra).

    .venv/bin/python scripts/bench_beats.py [--seed 0] [--keep DIR] [--song 180]

1. Writes the seeded set of scripts/synth_beats.py (tier 1 drums; tier 3: 64 kbit/s MP3,
   10 dB noise, leading silence), decodes every clip with our own ffmpeg pipe
   (dragon.media.pcm, 22050 Hz mono), and runs our tracker and
   ``librosa.beat.beat_track`` on the same samples. Both are scored by
   ``mir_eval.beat.evaluate`` (beats before 5 s dropped, +-70 ms F-measure, continuity
   thresholds 0.175); Fb is the same F-measure with the estimate trimmed at 4.93 s
   instead of 5 s (see ``scores``); downbeat F is the F-measure on the downbeat sequences
   (librosa has none). Speed is x real time of the tracking alone (decode excluded).
2. Times a 3-minute 128 kbit/s MP3 end to end through the audio.beats pool worker
   (``dragon.media.beats.analyse``: ffmpeg decode + onsets + tempo + DP + downbeats) and,
   as the raw-tool baseline, ffmpeg decode to numpy + ``librosa.beat.beat_track`` (warm),
   median of 5 each, and prints the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import synth_beats  # noqa: E402

from dragon.media import beats  # noqa: E402
from dragon.media.pcm import open_pcm, pcm_argv  # noqa: E402
from dragon.media.probe import path_input_args  # noqa: E402

DEMUXERS = {".wav": "wav", ".mp3": "mp3"}


def decode(path: Path) -> np.ndarray:
    argv = pcm_argv(path_input_args(path, DEMUXERS[path.suffix]), beats.SR)
    with open_pcm(argv, timeout=600) as chunks:
        return np.concatenate(list(chunks))


def scores(ref: np.ndarray, est: np.ndarray) -> dict:
    import mir_eval

    ref, est = np.asarray(ref), np.asarray(est)
    s = mir_eval.beat.evaluate(ref, est)
    # mir_eval trims both sequences at 5 s on their own, so a beat 10 ms early at the
    # boundary (4.99 s against 5.00 s) counts as a miss; Fb trims the estimate 70 ms earlier.
    fb = mir_eval.beat.f_measure(ref[ref >= 5.0], est[est >= 5.0 - 0.07])
    return {
        "F": s["F-measure"],
        "CMLt": s["Correct Metric Level Total"],
        "AMLt": s["Any Metric Level Total"],
        "Fb": fb,
    }


def downbeat_f(ref: np.ndarray, est: np.ndarray) -> float:
    import mir_eval

    return mir_eval.beat.evaluate(np.asarray(ref), np.asarray(est))["F-measure"]


def accuracy(workdir: Path, seed: int, use_librosa: bool) -> None:
    items = synth_beats.write_set(workdir, seed)
    if use_librosa:
        import librosa

        librosa.beat.beat_track(y=np.zeros(beats.SR * 10, np.float32), sr=beats.SR)  # JIT warm-up
    rows = []
    for item in items:
        y = decode(Path(item["path"]))
        ref, ref_db = np.array(item["beats"]), np.array(item["downbeats"])
        t = time.perf_counter()
        ours = beats.analyse_samples(y)
        t_ours = time.perf_counter() - t
        row = {
            "label": item["label"],
            "tier": item["case"]["tier"],
            "secs": len(y) / beats.SR,
            "ours": scores(ref, ours.beats),
            "ours_db": downbeat_f(ref_db, ours.downbeats),
            "ours_x": len(y) / beats.SR / t_ours,
            "bpm": ours.bpm,
            "meter": ours.meter,
        }
        if use_librosa:
            t = time.perf_counter()
            _, est = librosa.beat.beat_track(y=y, sr=beats.SR, units="time")
            row["lib_x"] = len(y) / beats.SR / (time.perf_counter() - t)
            row["lib"] = scores(ref, est)
        rows.append(row)

    head = (
        f"{'case':24s} {'ours F':>7s} {'Fb':>6s} {'CMLt':>6s} {'AMLt':>6s} {'downF':>6s} "
        f"{'bpm':>6s} {'M':>2s} {'x rt':>6s}"
    )
    if use_librosa:
        head += f" | {'lib F':>6s} {'Fb':>6s} {'CMLt':>6s} {'AMLt':>6s} {'x rt':>6s}"
    print(head)
    for r in rows:
        o = r["ours"]
        line = (
            f"{r['label']:24s} {o['F']:7.3f} {o['Fb']:6.3f} {o['CMLt']:6.3f} "
            f"{o['AMLt']:6.3f} {r['ours_db']:6.3f} {r['bpm']:6.1f} {r['meter']:2d} "
            f"{r['ours_x']:6.0f}"
        )
        if use_librosa:
            lib = r["lib"]
            line += (
                f" | {lib['F']:6.3f} {lib['Fb']:6.3f} {lib['CMLt']:6.3f} "
                f"{lib['AMLt']:6.3f} {r['lib_x']:6.0f}"
            )
        print(line)
    for tier in (1, 3, 4, None):
        sel = [r for r in rows if tier is None or r["tier"] == tier]
        name = "all" if tier is None else f"tier {tier}"
        keys = ("F", "Fb", "CMLt", "AMLt")
        o = {k: np.mean([r["ours"][k] for r in sel]) for k in keys}
        line = (
            f"{'mean ' + name:24s} {o['F']:7.3f} {o['Fb']:6.3f} {o['CMLt']:6.3f} "
            f"{o['AMLt']:6.3f} {np.mean([r['ours_db'] for r in sel]):6.3f} {'':6s} {'':2s} "
            f"{np.mean([r['ours_x'] for r in sel]):6.0f}"
        )
        if use_librosa:
            lib = {k: np.mean([r["lib"][k] for r in sel]) for k in keys}
            line += (
                f" | {lib['F']:6.3f} {lib['Fb']:6.3f} {lib['CMLt']:6.3f} {lib['AMLt']:6.3f} "
                f"{np.mean([r['lib_x'] for r in sel]):6.0f}"
                f"   (delta F {o['F'] - lib['F']:+.3f}, AMLt {o['AMLt'] - lib['AMLt']:+.3f})"
            )
        print(line)
    if use_librosa:
        for key in ("F", "Fb"):
            worse = [r["label"] for r in rows if r["ours"][key] < r["lib"][key] - 1e-9]
            print(f"cases where our {key} is below librosa's:", ", ".join(worse) or "none")


def speed(workdir: Path, seed: int, seconds: float, use_librosa: bool, runs: int = 5) -> None:
    case = synth_beats.Case("song", 118, 118, 4, duration=seconds)
    y, _, _ = synth_beats.make(case, seed, 99)
    wav, mp3 = workdir / "song.wav", workdir / "song.mp3"
    synth_beats.write_wav(wav, y)
    import subprocess

    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-i",
            str(wav),
            "-c:a",
            "libmp3lame",
            "-b:a",
            "128k",
            str(mp3),
        ],
        check=True,
    )
    argv = pcm_argv(path_input_args(mp3, "mp3"), beats.SR)

    def ours() -> None:
        beats.analyse(argv, None, 600)

    def baseline() -> None:
        import librosa

        with open_pcm(argv, timeout=600) as chunks:
            x = np.concatenate(list(chunks))
        librosa.beat.beat_track(y=x, sr=beats.SR)

    def timed(fn) -> tuple[float, list[float]]:
        t = time.perf_counter()
        fn()
        first = time.perf_counter() - t
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return first, times

    first, times = timed(ours)
    med = statistics.median(times)
    print(f"\n{seconds:.0f} s MP3 end to end (decode + tracking), median of {runs}:")
    print(
        f"  ours     {med:6.3f} s  = {seconds / med:5.0f}x real time "
        f"(first call in this process {first:.3f} s)"
    )
    if use_librosa:
        lfirst, ltimes = timed(baseline)
        lmed = statistics.median(ltimes)
        print(
            f"  librosa  {lmed:6.3f} s  = {seconds / lmed:5.0f}x real time "
            f"(first call {lfirst:.3f} s, numba JIT)"
        )
        print(f"  ratio ours / (ffmpeg + librosa) = {med / lmed:.2f}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="write the set here and keep it")
    parser.add_argument("--song", type=float, default=180.0, help="seconds of the speed test")
    parser.add_argument("--no-librosa", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        accuracy(workdir, args.seed, not args.no_librosa)
        if not args.skip_speed:
            speed(workdir, args.seed, args.song, not args.no_librosa)


if __name__ == "__main__":
    main(sys.argv[1:])
