"""Our own beat and downbeat tracker (numpy/scipy only), fed by a streaming decode.

Pipeline, each step chosen for a failure mode measured by scripts/bench_beats.py:

1. Onsets (``OnsetStream``): 22050 Hz mono, 1024-sample Hann frames every 256 samples
   (11.6 ms, twice librosa's resolution), a 40-band mel spectrogram. Two onset envelopes:
   ``flux``, the half-wave rectified difference of the log (dB) bands averaged over all
   bands, sensitive to soft onsets but dominated by broadband noise such as hi-hats
   (they light up every band, a tonal click one or two); ``pulse_flux``, the same on
   magnitudes of the bands under 1 kHz, weighs events by their energy where kick, snare
   and bass live, so hi-hat subdivisions hardly register: it decides the tempo and the
   metrical level, and the beats are placed on the sum of both. Computed chunk by chunk
   as ffmpeg decodes; only five floats per frame are kept.
2. Tempo (``tempo_salience``): the autocorrelation of ``pulse_flux`` summed at 1 to 4
   periods (a comb: a 3:2 relative such as 117 for 176 BPM cannot line up at all four),
   times a log-normal prior around 120 BPM one octave wide (Ellis 2007, librosa).
3. Metrical level (``choose_level``): a prior alone cannot tell 72 from 144 or 85 from
   170 BPM (each pair sits an octave apart around 120). After tracking, look at the pulse
   found: midpoints (or thirds) between beats about as strong as the beats (either way
   round: the DP may have locked onto the weaker phase) mean the pulse is two (three)
   times faster; every other beat much weaker means it is half as fast. Then track again
   at the chosen level.
4. Beat placement (``track``): Ellis' dynamic programming, with the ideal
   period a function of time (each 8 s window's autocorrelation peak near the global
   tempo, median-smoothed), so ramps are followed without loosening the tightness. The
   DP is vectorised over blocks of half a period (no beat depends on one closer than
   that), so no JIT is needed. Beats in leading or trailing silence are trimmed.
5. Downbeats (``downbeats``): for meters 3 and 4 and every bar phase, the contrast of
   accent features (low-band energy and flux, overall energy) on the candidate downbeats
   against the other beats; the best (meter, phase) wins, with a small prior for 4.

Beat times are frame centres plus ``ONSET_LEAD_S``, the measured lead of flux peaks over
the true onsets. Results on the synthetic set (tiers 1, 3 and a randomised tier 4) are in
the output of scripts/bench_beats.py.

``analyse`` is the pool worker used by audio.beats; ``analyse_samples`` runs the same code
on an array (benchmarks).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TypedDict

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike
from scipy import fft as sfft
from scipy import sparse
from scipy.ndimage import maximum_filter1d, median_filter, uniform_filter1d

from dragon import errors
from dragon.media.pcm import open_pcm

SR = 22050
N_FFT = 1024
HOP = 256
FPS = SR / HOP
N_MELS = 40
FMIN, FMAX = 30.0, 11000.0
LOW_HZ = 180.0  # bands under this carry the kick and the bass
PULSE_HZ = 1000.0  # bands under this carry the beat (kick, snare body, bass), not hi-hats
LOG_FLOOR = 1e-10

BPM_MIN, BPM_MAX = 40.0, 240.0
PRIOR_BPM, PRIOR_OCTAVES = 120.0, 1.0
TEMPO_WINDOW_S, TEMPO_HOP_S = 8.0, 1.0
TIGHTNESS = 100.0
COMB = (1.0, 1.0, 1.0, 1.0)  # weights of the autocorrelation at 1, 2, 3 and 4 periods
LOCAL_TEMPO_RANGE = 1.12  # how far a window's tempo may stray from the global one
FASTEST_BEAT_BPM = 200.0  # the level test never doubles above this ...
SLOWEST_BEAT_BPM = 50.0  # ... nor halves below this
MIDPOINT_RATIO = 0.5  # midpoints as strong as this relative to beats: twice as fast
ALTERNATION_RATIO = 0.33  # every other beat this weak: the pulse is half as fast
TRIM_RATIO = 0.15  # edge beats weaker than this (relative to the RMS beat) are dropped
METER_BONUS = {4: 0.2, 3: 0.0}  # added to the accent contrast: 4/4 is the more common
ONSET_LEAD_S = 0.003  # flux peaks lead the true onsets by this much (median, synthetic set)


@dataclasses.dataclass
class Onsets:
    """Per-frame features at ``FPS`` (see the module doc); ``*_db`` are band energies."""

    flux: np.ndarray
    low_flux: np.ndarray
    low_db: np.ndarray
    db: np.ndarray
    pulse_flux: np.ndarray
    samples: int

    @property
    def duration(self) -> float:
        return self.samples / SR


@dataclasses.dataclass
class Beats:
    beats: np.ndarray  # seconds
    downbeats: np.ndarray  # seconds
    duration: float
    bpm: float
    meter: int


def _mel(f: ArrayLike) -> np.ndarray:
    mel: np.ndarray = 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)
    return mel


def _hz(m: ArrayLike) -> np.ndarray:
    hz: np.ndarray = 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)
    return hz


def mel_edges(n_mels: int = N_MELS, fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """The ``n_mels + 2`` band edges (Hz) on the HTK mel scale."""
    return _hz(np.linspace(_mel(fmin), _mel(fmax), n_mels + 2))


def mel_filterbank(sr: int = SR, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Triangular mel filters, ``(n_mels, n_fft // 2 + 1)``."""
    edges = mel_edges(n_mels)
    bins = np.fft.rfftfreq(n_fft, 1.0 / sr)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    fb = np.maximum(0.0, np.minimum(rising, falling))
    # Narrow low bands may fall between FFT bins: give each at least its nearest bin.
    for i, f in enumerate(edges[1:-1]):
        if not fb[i].any():
            fb[i, int(np.argmin(np.abs(bins - f)))] = 1.0
    filters: np.ndarray = fb.astype(np.float32)
    return filters


class OnsetStream:
    """Centred STFT frames computed incrementally from sample chunks (see module doc)."""

    def __init__(self) -> None:
        n = np.arange(N_FFT)
        self.window = (0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)).astype(np.float32)
        # Sparse: a dense BLAS product is 30x slower here once OpenBLAS starts threads
        # on a busy 2-core box, and the triangles are 95 % zeros anyway.
        self.fb_t = sparse.csr_matrix(mel_filterbank().T)
        self.n_low = max(1, int(np.sum(mel_edges()[1:-1] < LOW_HZ)))
        self.n_pulse = max(1, int(np.sum(mel_edges()[1:-1] < PULSE_HZ)))
        self.buf = np.zeros(N_FFT // 2, np.float32)
        self.prev: np.ndarray | None = None
        self.prev_pulse: np.ndarray | None = None
        self.samples = 0
        self.parts: list[np.ndarray] = []

    def add(self, x: np.ndarray) -> None:
        self.samples += len(x)
        self._consume(np.concatenate([self.buf, np.asarray(x, np.float32)]))

    def _consume(self, buf: np.ndarray) -> None:
        n = (len(buf) - N_FFT) // HOP + 1 if len(buf) >= N_FFT else 0
        if n > 0:
            frames = sliding_window_view(buf, N_FFT)[::HOP][:n]
            self._frames(frames)
            buf = buf[n * HOP :]
        self.buf = buf

    def _frames(self, frames: np.ndarray) -> None:
        spec = sfft.rfft(frames * self.window, axis=1, workers=1)
        mel = np.asarray((spec.real**2 + spec.imag**2) @ self.fb_t)
        logmel = 10.0 * np.log10(np.maximum(mel, LOG_FLOOR))
        pulse = np.sqrt(mel[:, : self.n_pulse])
        flux = _rising(logmel, self.prev)
        pulse_flux = _rising(pulse, self.prev_pulse)
        self.prev, self.prev_pulse = logmel[-1:], pulse[-1:]
        out = np.empty((len(frames), 5), np.float32)
        out[:, 0] = flux.mean(axis=1)
        out[:, 1] = flux[:, : self.n_low].mean(axis=1)
        out[:, 2] = 10.0 * np.log10(np.maximum(mel[:, : self.n_low].sum(axis=1), LOG_FLOOR))
        out[:, 3] = 10.0 * np.log10(np.maximum(mel.sum(axis=1), LOG_FLOOR))
        out[:, 4] = pulse_flux.mean(axis=1)
        self.parts.append(out)

    def finish(self) -> Onsets:
        self._consume(np.concatenate([self.buf, np.zeros(N_FFT // 2, np.float32)]))
        feats = np.concatenate(self.parts) if self.parts else np.zeros((0, 5), np.float32)
        flux, low_flux, low_db, db, pulse_flux = (feats[:, i].copy() for i in range(5))
        return Onsets(flux, low_flux, low_db, db, pulse_flux, self.samples)


def _rising(x: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
    """Half-wave rectified frame-to-frame difference, continuing from ``prev``."""
    diff = np.diff(x, axis=0, prepend=x[:1] if prev is None else prev)
    return np.maximum(diff, 0.0, out=diff)


def onsets_of(chunks: Iterable[np.ndarray]) -> Onsets:
    stream = OnsetStream()
    for x in chunks:
        stream.add(x)
    return stream.finish()


# -- tempo --------------------------------------------------------------------------------


def tempogram(env: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised autocorrelation of ``env`` in overlapping windows.

    Returns ``(acf, centres)``: ``(windows, max_lag + 1)`` and each window's centre frame.
    """
    win = int(round(TEMPO_WINDOW_S * FPS))
    hop = int(round(TEMPO_HOP_S * FPS))
    if len(env) < win:
        win = max(len(env), 2 * max_lag + 2)
        env = np.pad(env, (0, max(0, win - len(env))))
    hop = max(hop, (len(env) - win) // 4000 + 1)  # at most ~4000 windows (4 h of audio)
    starts = sliding_window_view(env, win)[::hop]
    taper = np.hanning(win)[None, :]
    nfft = sfft.next_fast_len(2 * win)
    acf = np.empty((len(starts), max_lag + 1))
    for i in range(0, len(starts), 256):  # in batches: memory stays flat for long files
        segs = starts[i : i + 256].astype(np.float64)
        segs = (segs - segs.mean(axis=1, keepdims=True)) * taper
        spec = sfft.rfft(segs, nfft, axis=1)
        acf[i : i + 256] = sfft.irfft(spec.real**2 + spec.imag**2, nfft, axis=1)[:, : max_lag + 1]
    zero = acf[:, :1]
    centres = win / 2 + hop * np.arange(len(starts))
    return np.where(zero > 1e-12, acf / np.maximum(zero, 1e-12), 0.0), centres


def _at(acf: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Linear interpolation of the last axis of ``acf`` at fractional ``lags``."""
    lags = np.clip(lags, 0, acf.shape[-1] - 1.001)
    i = lags.astype(int)
    f = lags - i
    values: np.ndarray = acf[..., i] * (1 - f) + acf[..., i + 1] * f
    return values


def bpm_grid() -> np.ndarray:
    return np.geomspace(BPM_MIN, BPM_MAX, 600)


def global_acf(env: np.ndarray, max_lag: int) -> np.ndarray:
    """Unbiased, normalised autocorrelation of the whole (mean-removed) envelope."""
    x = env - env.mean()
    n = len(x)
    nfft = sfft.next_fast_len(2 * n)
    spec = sfft.rfft(x, nfft)
    acf = sfft.irfft(spec.real**2 + spec.imag**2, nfft)[: max_lag + 1]
    acf = acf / np.maximum(n - np.arange(len(acf)), 1)
    if len(acf) < max_lag + 1:
        acf = np.pad(acf, (0, max_lag + 1 - len(acf)))
    scaled: np.ndarray = acf / acf[0] if acf[0] > 0 else acf
    return scaled


def tempo_salience(acf: np.ndarray, bpms: np.ndarray) -> np.ndarray:
    """Prior-weighted periodicity of each BPM: a comb over multiples of its period.

    Summing the autocorrelation at 1..4 periods rewards the period whose multiples all
    line up with onsets, which a 3:2 relative (1.5 beats) cannot do.
    """
    lag = 60.0 * FPS / bpms
    usable = len(acf) - 1
    strength = np.zeros_like(bpms)
    for k, w in enumerate(COMB, start=1):
        strength += w * np.where(k * lag <= usable, np.maximum(_at(acf, k * lag), 0), 0)
    prior = np.exp(-0.5 * (np.log2(bpms / PRIOR_BPM) / PRIOR_OCTAVES) ** 2)
    return strength * prior


def local_periods(tg: np.ndarray, centres: np.ndarray, period: float, n_frames: int) -> np.ndarray:
    """The beat period (frames) at every frame: each window's ACF peak near ``period``."""
    lags = np.arange(tg.shape[1], dtype=np.float64)
    lo, hi = period / LOCAL_TEMPO_RANGE, period * LOCAL_TEMPO_RANGE
    mask = (lags >= lo) & (lags <= hi)
    if mask.sum() < 3 or len(tg) == 0:
        return np.full(n_frames, period)
    cand = np.where(mask[None, :], tg, -np.inf)
    best = np.argmax(cand, axis=1)
    best = np.clip(best, 1, tg.shape[1] - 2)
    rows = np.arange(len(tg))
    a, b, c = tg[rows, best - 1], tg[rows, best], tg[rows, best + 1]
    denom = a - 2 * b + c
    shift = np.where(np.abs(denom) > 1e-9, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0)
    est = best + np.clip(shift, -0.5, 0.5)
    est = np.where(b > 0.1, est, period)  # a window without a clear pulse keeps the global
    if len(est) >= 5:
        est = median_filter(est, size=5, mode="nearest")
    periods: np.ndarray = np.interp(np.arange(n_frames), centres, np.clip(est, lo, hi))
    return periods


# -- beat placement -----------------------------------------------------------------------


def normalised(env: np.ndarray) -> np.ndarray:
    std = float(env.std())
    return env / std if std > 0 else env


def local_score(env: np.ndarray, period: float) -> np.ndarray:
    """The onset envelope smoothed by a Gaussian of period/32 (Ellis 2007)."""
    half = max(1, int(round(period / 2)))
    x = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (x * 32.0 / period) ** 2)
    return np.convolve(env, kernel, mode="same")


def track(score: np.ndarray, periods: np.ndarray, tightness: float = TIGHTNESS) -> np.ndarray:
    """Ellis' DP: frames of the beat sequence maximising onset score minus tempo deviation."""
    n = len(score)
    if n == 0:
        return np.zeros(0, int)
    dmin = max(1, int(np.floor(periods.min() / 2)))
    dmax = int(np.ceil(periods.max() * 2))
    lags = np.arange(dmin, dmax + 1)
    cum = np.zeros(n)
    back = np.full(n, -1)
    log_lags = np.log(lags)[None, :]
    for t0 in range(0, n, dmin):
        t = np.arange(t0, min(n, t0 + dmin))
        p = periods[t][:, None]
        penalty = -tightness * (log_lags - np.log(p)) ** 2
        penalty[(lags[None, :] < p / 2) | (lags[None, :] > 2 * p)] = -np.inf
        prev = t[:, None] - lags[None, :]
        cand = np.where(prev >= 0, cum[np.maximum(prev, 0)] + penalty, -np.inf)
        best = np.argmax(cand, axis=1)
        value = cand[np.arange(len(t)), best]
        linked = value > 0
        cum[t] = score[t] + np.where(linked, value, 0.0)
        back[t] = np.where(linked, prev[np.arange(len(t)), best], -1)
    tail = max(1, int(round(periods[-1])))
    last = n - tail + int(np.argmax(cum[-tail:]))
    path = [last]
    while back[path[-1]] >= 0:
        path.append(int(back[path[-1]]))
    return np.array(path[::-1])


def trim(frames: np.ndarray, env: np.ndarray) -> np.ndarray:
    """Drop leading and trailing beats placed in silence (weak against the beats' RMS)."""
    if len(frames) == 0:
        return frames
    smooth = np.convolve(env, np.hanning(5), mode="same")[frames]
    threshold = TRIM_RATIO * np.sqrt(np.mean(smooth**2))
    strong = np.flatnonzero(smooth >= threshold)
    if len(strong) == 0:
        return frames[:0]
    return frames[strong[0] : strong[-1] + 1]


def peak_at(env: np.ndarray, frames: np.ndarray, radius: int = 2) -> np.ndarray:
    """The envelope's maximum within ``radius`` frames of each (integer) frame."""
    wide = maximum_filter1d(env, size=2 * radius + 1, mode="nearest")
    peaks: np.ndarray = wide[np.clip(np.rint(frames).astype(int), 0, len(env) - 1)]
    return peaks


def choose_level(env: np.ndarray, frames: np.ndarray, bpm: float) -> float:
    """Factor (2, 3, 0.5 or 1) to apply to ``bpm`` from the pulse's own accents (module doc).

    ``env`` is the low/mid-band onset strength, where hi-hat subdivisions barely register.
    """
    if len(frames) < 8:
        return 1.0
    on = np.mean(peak_at(env, frames))
    ibi = np.diff(frames)

    def similar(between: np.ndarray) -> bool:
        # Either way round: the tracker may have locked onto the weaker of two phases.
        mean = np.mean(peak_at(env, between))
        return bool(min(mean, on) >= MIDPOINT_RATIO * max(mean, on))

    if bpm * 2 <= FASTEST_BEAT_BPM and similar(frames[:-1] + ibi / 2):
        return 2.0
    thirds = np.concatenate([frames[:-1] + ibi / 3, frames[:-1] + 2 * ibi / 3])
    if bpm * 3 <= FASTEST_BEAT_BPM and similar(thirds):
        return 3.0
    strong = peak_at(env, frames)
    even, odd = np.mean(strong[0::2]), np.mean(strong[1::2])
    if bpm / 2 >= SLOWEST_BEAT_BPM and min(even, odd) < ALTERNATION_RATIO * max(even, odd):
        return 0.5
    return 1.0


def beat_frames(onsets: Onsets) -> tuple[np.ndarray, float]:
    """Beat positions in (fractional) frames, and the global tempo in BPM."""
    lvl = normalised(onsets.pulse_flux.astype(np.float64))
    env = normalised(normalised(onsets.flux.astype(np.float64)) + lvl)
    if len(env) < 2 or not env.any():
        return np.zeros(0), 0.0
    max_lag = int(np.ceil(2 * 60.0 * FPS / BPM_MIN)) + 2
    tg, centres = tempogram(lvl, max_lag)
    acf = global_acf(lvl, min(len(env) // 2, int(np.ceil(len(COMB) * 60.0 * FPS / BPM_MIN)) + 2))
    bpms = bpm_grid()
    bpm = float(bpms[int(np.argmax(tempo_salience(acf, bpms)))])
    seen = set()
    while True:
        period = 60.0 * FPS / bpm
        periods = local_periods(tg, centres, period, len(env))
        frames = trim(track(local_score(env, period), periods), env)
        seen.add(round(bpm, 3))
        factor = choose_level(lvl, frames, bpm)
        if factor == 1.0 or round(bpm * factor, 3) in seen:
            return frames.astype(np.float64), bpm
        bpm *= factor


# -- downbeats ----------------------------------------------------------------------------


def accent_features(onsets: Onsets, frames: np.ndarray) -> np.ndarray:
    """Per-beat accents, each standardised: ``(features, beats)``."""
    feats = [
        peak_at(onsets.low_db.astype(np.float64), frames),
        peak_at(onsets.low_flux.astype(np.float64), frames),
        peak_at(onsets.db.astype(np.float64), frames),
    ]
    out = []
    for f in feats:
        f = f - uniform_filter1d(f, size=min(len(f), 16), mode="nearest")  # slow dynamics out
        std = f.std()
        out.append(f / std if std > 1e-9 else np.zeros_like(f))
    return np.array(out)


def downbeats(onsets: Onsets, frames: np.ndarray) -> tuple[np.ndarray, int]:
    """Indices of downbeats among ``frames`` and the meter (3 or 4)."""
    if len(frames) < 6:
        return np.arange(0, len(frames), 4), 4
    acc = accent_features(onsets, frames)
    best = (-np.inf, 4, 0)
    idx = np.arange(len(frames))
    for meter, bonus in METER_BONUS.items():
        for phase in range(meter):
            on = (idx % meter) == phase
            if on.sum() < 2 or (~on).sum() < 2:
                continue
            contrast = float(np.sum(acc[:, on].mean(axis=1) - acc[:, ~on].mean(axis=1)))
            score = contrast + bonus
            if score > best[0]:
                best = (score, meter, phase)
    _, meter, phase = best
    return idx[phase::meter], meter


# -- entry points -------------------------------------------------------------------------


def analyse_onsets(onsets: Onsets) -> Beats:
    frames, bpm = beat_frames(onsets)
    times = frames * HOP / SR + ONSET_LEAD_S
    keep = times >= 0
    frames, times = frames[keep], times[keep]
    down_idx, meter = downbeats(onsets, frames)
    return Beats(times, times[down_idx], onsets.duration, bpm, meter)


def analyse_samples(y: np.ndarray) -> Beats:
    """The tracker on an in-memory mono signal at ``SR`` (benchmarks, tests)."""
    step = 1 << 17
    return analyse_onsets(onsets_of(y[i : i + step] for i in range(0, len(y), step)))


class BeatsResult(TypedDict):
    """audio.beats' result: times in seconds, rounded to the millisecond."""

    beats: list[float]
    downbeats: list[float]
    duration: float
    bpm: float
    meter: int


def analyse(argv: list[str], pidfile: str | None, timeout: float) -> BeatsResult:
    """Pool worker for audio.beats: decode ``argv`` (mono ``SR`` f32le) and track."""
    with open_pcm(argv, timeout=timeout, pidfile=pidfile) as chunks:
        onsets = onsets_of(chunks)
    if not onsets.samples:
        raise errors.TaskError(errors.INVALID_MEDIA, "no audio could be decoded")
    result = analyse_onsets(onsets)
    return BeatsResult(
        beats=[round(float(t), 3) for t in result.beats],
        downbeats=[round(float(t), 3) for t in result.downbeats],
        duration=round(result.duration, 2),
        bpm=round(result.bpm, 1),
        meter=result.meter,
    )
