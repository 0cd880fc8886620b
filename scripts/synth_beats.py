"""A seeded synthetic beat-tracking set with exact beat and downbeat ground truth.

Tier 1 (clean rhythms): kick, snare and
hi-hat synthesised in numpy, 4/4 and 3/4, 72 to 170 BPM, swing, +-8 % tempo ramps, 8 ms
timing jitter and 20 dB noise. The ground truth is the beat grid that generated the
audio. Each case has its own generator seeded from ``(seed, case index)``, so one case
can be regenerated alone and adding a case does not change the others.

Tier 3 (degradations) re-encodes clips as 64 kbit/s MP3 (scored after our ffmpeg decode),
adds a 10 dB-SNR clip and one with 3 s of leading silence. Tier 4 draws tempo, meter,
ramp, swing, sixteenth hats and instrument levels at random (``randomised``).

    python scripts/synth_beats.py OUT_DIR [--seed 0]   # writes WAV/MP3 files + manifest.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SR = 22050


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    bpm0: float
    bpm1: float
    meter: int
    swing: float = 0.0
    snr_db: float = 20.0
    lead_silence: float = 0.0
    mp3: bool = False
    tier: int = 1
    duration: float = 30.0
    hat_gain: float = 1.0
    snare_gain: float = 0.7
    sixteenths: bool = False

    @property
    def label(self) -> str:
        tempo = f"{self.bpm0:.0f}"
        if self.bpm1 != self.bpm0:
            tempo += f"->{self.bpm1:.0f}"
        extra = f" {self.meter}/4{' mp3' if self.mp3 else ''}" if self.tier == 4 else ""
        return f"{self.name}{extra} {tempo}"


def cases() -> list[Case]:
    tier1 = [Case("steady4/4", b, b, 4) for b in (72, 96, 120, 140, 170)]
    tier1 += [Case("steady3/4", b, b, 3) for b in (90, 150)]
    tier1 += [Case("swing", b, b, 4, swing=0.16) for b in (100, 130)]
    tier1 += [Case("ramp+8%", b, b * 1.08, 4) for b in (100, 140)]
    tier3 = [dataclasses.replace(c, name="mp3 " + c.name, mp3=True, tier=3) for c in tier1]
    tier3 += [
        Case("noise10dB", 120, 120, 4, snr_db=10.0, tier=3),
        Case("silence3s", 96, 96, 4, lead_silence=3.0, tier=3),
    ]
    return tier1 + tier3 + randomised(seed=1234)


def randomised(seed: int, n: int = 12) -> list[Case]:
    """Tier 4: drum patterns with drawn tempo, meter, ramp, swing, hat and snare levels.

    Not used to tune the tracker (tiers 1 and 3 were): a check that the level decisions do
    not depend on the exact balance of the prototype's instruments.
    """
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        bpm0 = float(rng.uniform(60, 180))
        ramp = float(rng.choice([1.0, 1.0, rng.uniform(0.88, 1.12)]))
        out.append(
            Case(
                f"random{i}",
                round(bpm0, 1),
                round(bpm0 * ramp, 1),
                int(rng.choice([3, 4, 4])),
                swing=float(rng.choice([0.0, 0.0, 0.12])),
                tier=4,
                hat_gain=float(rng.uniform(0.3, 2.0)),
                snare_gain=float(rng.uniform(0.4, 1.0)),
                sixteenths=bool(rng.random() < 0.3),
                mp3=bool(rng.random() < 0.3),
            )
        )
    return out


def _env(n: int, tau: float) -> np.ndarray:
    return np.exp(-np.arange(n) / (tau * SR))


def _drums(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = int(0.25 * SR)
    t = np.arange(n) / SR
    freq = 50 + 100 * np.exp(-t * 30)
    kick = np.sin(2 * np.pi * np.cumsum(freq) / SR) * _env(n, 0.08)
    n = int(0.2 * SR)
    snare = rng.standard_normal(n) * 0.6 + np.sin(2 * np.pi * 180 * np.arange(n) / SR) * 0.4
    snare *= _env(n, 0.05)
    n = int(0.05 * SR)
    hat = rng.standard_normal(n) * _env(n, 0.01) * 0.3
    return kick, snare, hat


def _add(y: np.ndarray, x: np.ndarray, t: float, gain: float = 1.0) -> None:
    i = int(t * SR)
    j = min(len(y), i + len(x))
    if 0 <= i < len(y):
        y[i:j] += gain * x[: j - i]


def make(case: Case, seed: int = 0, index: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(audio float32 at SR, beat times, downbeat times)`` for one case."""
    rng = np.random.default_rng([seed, index])
    kick, snare, hat = _drums(rng)
    dur = case.duration
    beats = [0.5]
    while beats[-1] < dur - 0.5:  # the tempo ramps linearly from bpm0 to bpm1
        bpm = case.bpm0 + (case.bpm1 - case.bpm0) * beats[-1] / dur
        beats.append(beats[-1] + 60 / bpm)
    grid = np.array(beats[:-1])
    y = np.zeros(int(dur * SR) + SR)
    for k, b in enumerate(grid):
        pos = k % case.meter
        bj = b + rng.normal(0, 0.008)
        low = pos == 0 or (case.meter == 4 and pos == 2)
        _add(y, kick if low else snare, bj, 1.0 if pos == 0 else 0.7 if low else case.snare_gain)
        if k + 1 < len(grid):  # eighth-note hats, the off-beat one swung
            ibi = grid[k + 1] - b
            _add(y, hat, bj, case.hat_gain)
            _add(y, hat, bj + ibi * (0.5 + case.swing), case.hat_gain)
            if case.sixteenths:
                _add(y, hat, bj + ibi * 0.25, 0.6 * case.hat_gain)
                _add(y, hat, bj + ibi * 0.75, 0.6 * case.hat_gain)
    y = y[: int(dur * SR)]
    power = np.mean(y**2)
    y += rng.standard_normal(len(y)) * np.sqrt(power / 10 ** (case.snr_db / 10))
    y /= np.max(np.abs(y))
    if case.lead_silence:
        y = np.concatenate([np.zeros(int(case.lead_silence * SR)), y])
        grid = grid + case.lead_silence
    return y.astype(np.float32), grid, grid[:: case.meter]


def write_wav(path: Path, y: np.ndarray, sr: int = SR) -> None:
    import soundfile

    soundfile.write(str(path), y, sr, subtype="PCM_16")


def write_set(out: Path, seed: int = 0) -> list[dict]:
    """Write every case under ``out`` (WAV, or MP3 for mp3 cases) and ``manifest.json``."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for i, case in enumerate(cases()):
        y, beats, downbeats = make(case, seed, i)
        stem = out / f"case{i:02d}"
        wav = stem.with_suffix(".wav")
        write_wav(wav, y)
        path = wav
        if case.mp3:
            path = stem.with_suffix(".mp3")
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
                    "64k",
                    str(path),
                ],
                check=True,
            )
            wav.unlink()
        manifest.append(
            {
                "case": dataclasses.asdict(case),
                "label": case.label,
                "path": str(path),
                "beats": beats.tolist(),
                "downbeats": downbeats.tolist(),
            }
        )
    (out / "manifest.json").write_text(json.dumps({"seed": seed, "sr": SR, "items": manifest}))
    return manifest


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    items = write_set(args.out, args.seed)
    print(f"wrote {len(items)} clips and manifest.json to {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
