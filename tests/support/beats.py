"""Click and drum tracks with known beats, made with numpy, and a small F-measure to score a
tracker against them (+-70 ms, the usual convention without its 5 s trim)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from dragon.media import beats
from dragon.media.pcm import pcm_argv
from dragon.media.probe import path_input_args

SR = beats.SR


def f_measure(ref, est, window: float = 0.07) -> float:
    """Greedy one-to-one matching within ``window`` seconds."""
    ref, est = list(ref), list(est)
    if not ref or not est:
        return 0.0
    used = set()
    hits = 0
    for t in ref:
        best = (
            min((abs(e - t), i) for i, e in enumerate(est) if i not in used)
            if len(used) < len(est)
            else (np.inf, -1)
        )
        if best[0] <= window:
            used.add(best[1])
            hits += 1
    precision, recall = hits / len(est), hits / len(ref)
    return 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)


def click(freq: float, seconds: float, decay: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.sin(2 * np.pi * freq * t) * np.exp(-t / decay)


def drum_track(
    bpm: float, meter: int, seconds: float, *, offbeat_hats: bool = False, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accented low clicks on downbeats, higher clicks on other beats, optional hats."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * SR))
    period = 60.0 / bpm
    grid = np.arange(0.5, seconds - 0.5, period)
    low, high = click(90, 0.2, 0.05), click(600, 0.1, 0.03)
    hat = rng.standard_normal(int(0.04 * SR)) * np.exp(-np.arange(int(0.04 * SR)) / (0.008 * SR))

    def add(x: np.ndarray, t: float, gain: float) -> None:
        i = int(t * SR)
        j = min(len(y), i + len(x))
        y[i:j] += gain * x[: j - i]

    for k, b in enumerate(grid):
        add(low if k % meter == 0 else high, b, 1.0 if k % meter == 0 else 0.6)
        if offbeat_hats:
            add(hat, b + period / 2, 0.3)
    y += rng.standard_normal(len(y)) * 0.01
    return (y / np.abs(y).max()).astype(np.float32), grid, grid[::meter]


def track_file(tmp_path: Path, y: np.ndarray, name: str = "t.wav") -> dict:
    """Through the audio.beats pool worker: ffmpeg decode of a WAV, then the tracker."""
    path = tmp_path / name
    soundfile.write(str(path), y, SR, subtype="PCM_16")
    return beats.analyse(pcm_argv(path_input_args(path, "wav"), SR), None, 60)
