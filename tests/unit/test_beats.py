"""The beat tracker on click and drum tracks with known beats, made here with numpy.

Scored with a small F-measure (+-70 ms, the mir_eval convention without its 5 s trim), so
the tests need neither librosa nor mir_eval. The accuracy table against librosa is
scripts/bench_beats.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from dragon.media import beats
from tests.support.beats import SR, click, drum_track, f_measure, track_file


def test_click_track_120_bpm_four_four(tmp_path):
    y, ref, ref_down = drum_track(120, 4, 20.0)
    result = track_file(tmp_path, y)
    assert f_measure(ref, result["beats"]) >= 0.9
    assert f_measure(ref_down, result["downbeats"]) >= 0.9
    assert result["meter"] == 4 and result["bpm"] == pytest.approx(120, rel=0.03)
    assert result["duration"] == 20.0
    assert all(isinstance(t, float) for t in result["beats"])


def test_three_four_downbeats(tmp_path):
    y, ref, ref_down = drum_track(150, 3, 20.0, seed=1)
    result = track_file(tmp_path, y)
    assert f_measure(ref, result["beats"]) >= 0.9
    assert result["meter"] == 3
    assert f_measure(ref_down, result["downbeats"]) >= 0.8


@pytest.mark.parametrize("bpm", [72, 170])
def test_no_octave_error_at_tempo_extremes(bpm):
    """72 BPM with off-beat hats is not 144; 170 BPM is not 85 (librosa fails both)."""
    y, ref, _ = drum_track(bpm, 4, 24.0, offbeat_hats=True, seed=bpm)
    result = beats.analyse_samples(y)
    assert result.bpm == pytest.approx(bpm, rel=0.03)
    assert f_measure(ref, result.beats) >= 0.9


def test_tempo_ramp_is_followed():
    seconds, bpm0, bpm1 = 30.0, 100.0, 116.0  # +16 %, twice the benchmark's ramps
    t, grid = 0.5, []
    while t < seconds - 0.5:
        grid.append(t)
        t += 60.0 / (bpm0 + (bpm1 - bpm0) * t / seconds)
    y = np.zeros(int(seconds * SR))
    hit = click(120, 0.15, 0.04)
    for b in grid:
        i = int(b * SR)
        y[i : i + len(hit)] += hit[: len(y) - i]
    result = beats.analyse_samples(y.astype(np.float32))
    assert f_measure(grid, result.beats) >= 0.9


def test_streaming_matches_one_block():
    """Chunk boundaries do not change the onsets: any chunking gives the same envelope."""
    y, _, _ = drum_track(110, 4, 6.0, seed=3)
    whole = beats.onsets_of([y])
    sizes = np.random.default_rng(0).integers(1, 5000, size=400)
    cuts = np.cumsum(sizes)
    parts = np.split(y, cuts[cuts < len(y)])
    chunked = beats.onsets_of(parts)
    assert len(whole.flux) == len(chunked.flux) == len(y) // beats.HOP + 1
    np.testing.assert_allclose(whole.flux, chunked.flux, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(whole.pulse_flux, chunked.pulse_flux, rtol=1e-4, atol=1e-4)


def test_dp_on_an_impulse_train_finds_every_impulse():
    period = 40
    score = np.zeros(2000)
    score[17::period] = 1.0
    frames = beats.track(score, np.full(len(score), float(period)))
    assert frames.tolist() == list(range(17, 2000, period))


def test_silence_and_tiny_inputs_give_no_beats():
    for y in (np.zeros(SR * 5, np.float32), np.zeros(10, np.float32)):
        result = beats.analyse_samples(y)
        assert len(result.beats) == 0 and len(result.downbeats) == 0
