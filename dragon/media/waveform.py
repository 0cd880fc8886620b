"""Waveform images: streaming min/max per pixel column, drawn with numpy, saved by Pillow.

The physical limit is decoding the audio, so the reduction has to be
cheap and must not buffer the audio: ``PeakReducer`` keeps the min and max of fixed-size
buckets of samples, between ``16 * columns`` and ``32 * columns`` of them. When they
overflow, neighbours merge pairwise and the bucket size doubles (a two-level reduction),
so neither the duration nor the sample count has to be known up front: a VBR MP3 whose
header lies about its length still fills the image exactly, and memory stays flat.
Columns are then cut from the buckets by sample position, each within 1/16 of a column.

Drawing: column ``c`` is inked on the rows its ``[min, max]`` covers, after rounding to
the pixel grid, so a silent (or near-silent, below half a pixel) column draws nothing.
Full scale (+-1.0) spans the height inside ``vmargin``; there is no auto-gain, so a quiet
recording looks quiet. The mask is built with numpy in one go (a 1024-column image is a
few hundred microseconds) and Pillow only encodes it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from dragon import errors
from dragon.media.pcm import open_pcm

# Waveforms decode at the source's own rate (up to MAX_RATE) as 16-bit mono. A low rate
# such as 8 kHz looked cheaper but is not: ffmpeg's resampler costs more than piping and
# reducing every native sample (scripts/bench_waveform.py: 8 kHz f32 takes 1.4x the
# decode's CPU, native s16 1.1x), and its low-pass would also shave the peaks of bright
# sounds. 16 bits clip at full scale, which the drawing clips anyway, and halve the
# bytes through the pipe.
MAX_RATE = 48000
SAMPLE_FORMAT = "s16le"
BUCKETS_PER_COLUMN = 16
JPEG_QUALITY = 90
# Samples per read from ffmpeg's pipe: 1 MiB of int16, reused (PeakReducer keeps none).
READ_SAMPLES = 1 << 19


def decode_rate(sample_rate: int | None) -> int:
    return min(sample_rate or 44100, MAX_RATE)


class PeakReducer:
    """Min/max of consecutive sample buckets whose size doubles as needed (see module doc)."""

    def __init__(self, columns: int) -> None:
        self.capacity = 2 * BUCKETS_PER_COLUMN * max(1, columns)
        self.mins = np.empty(self.capacity, np.float32)
        self.maxs = np.empty(self.capacity, np.float32)
        self.n = 0  # full buckets
        self.bucket = 1  # samples per bucket
        self.samples = 0
        self.pend_count = 0  # samples in the partial bucket after the full ones
        self.pend_min = self.pend_max = 0.0
        self.full_scale = 1.0  # 32768 for int16 samples

    def add(self, x: np.ndarray) -> None:
        if not len(x):
            return
        if x.dtype.kind == "i":
            self.full_scale = float(np.iinfo(x.dtype).max + 1)
        self.samples += len(x)
        while self.n + (self.pend_count + len(x)) // self.bucket > self.capacity:
            self._merge()
        if self.pend_count:
            head = x[: self.bucket - self.pend_count]
            x = x[len(head) :]
            self.pend_min = min(self.pend_min, float(head.min()))
            self.pend_max = max(self.pend_max, float(head.max()))
            self.pend_count += len(head)
            if self.pend_count < self.bucket:
                return
            self._push(self.pend_min, self.pend_max)
            self.pend_count = 0
        k = len(x) // self.bucket
        if k:
            blocks = x[: k * self.bucket].reshape(k, self.bucket)
            self.mins[self.n : self.n + k] = blocks.min(axis=1)
            self.maxs[self.n : self.n + k] = blocks.max(axis=1)
            self.n += k
        rest = x[k * self.bucket :]
        if len(rest):
            self.pend_min, self.pend_max = float(rest.min()), float(rest.max())
            self.pend_count = len(rest)

    def _push(self, lo: float, hi: float) -> None:
        self.mins[self.n], self.maxs[self.n] = lo, hi
        self.n += 1

    def _merge(self) -> None:
        """Halve the resolution: pair up buckets; an odd last one joins the partial bucket."""
        n = self.n
        if n % 2:
            n -= 1
            lo, hi = float(self.mins[n]), float(self.maxs[n])
            if self.pend_count:
                lo, hi = min(lo, self.pend_min), max(hi, self.pend_max)
            self.pend_min, self.pend_max = lo, hi
            self.pend_count += self.bucket
        half = n // 2
        self.mins[:half] = np.minimum(self.mins[0:n:2], self.mins[1:n:2])
        self.maxs[:half] = np.maximum(self.maxs[0:n:2], self.maxs[1:n:2])
        self.n = half
        self.bucket *= 2

    def columns(self, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-column (min, max) of everything added, full scale = 1; needs samples > 0."""
        mins, maxs = self.mins[: self.n], self.maxs[: self.n]
        if self.pend_count:
            mins = np.append(mins, np.float32(self.pend_min))
            maxs = np.append(maxs, np.float32(self.pend_max))
        first_sample = np.arange(width, dtype=np.int64) * self.samples // width
        idx = np.minimum(first_sample // self.bucket, len(mins) - 1)
        scale = 1.0 / self.full_scale
        return np.minimum.reduceat(mins, idx) * scale, np.maximum.reduceat(maxs, idx) * scale


def draw(
    mins: np.ndarray,
    maxs: np.ndarray,
    *,
    height: int,
    vmargin: int,
    fill: tuple[int, int, int],
    background: tuple[int, int, int],
) -> Image.Image:
    """An RGB image ``len(mins)`` wide with each column inked over its [min, max] span."""
    width = len(mins)
    inner = height - 2 * vmargin
    centre = vmargin + inner // 2
    half = inner / 2
    lo = np.clip(np.asarray(mins, np.float64), -1.0, 1.0)
    hi = np.clip(np.asarray(maxs, np.float64), -1.0, 1.0)
    top = np.clip(np.rint(centre - hi * half), vmargin, vmargin + inner).astype(np.int32)
    bottom = np.clip(np.rint(centre - lo * half), vmargin, vmargin + inner).astype(np.int32)
    rows = np.arange(height, dtype=np.int32)[:, None]
    ink = (rows >= top[None, :]) & (rows < bottom[None, :])
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[...] = np.asarray(background, np.uint8)
    pixels[ink] = np.asarray(fill, np.uint8)
    return Image.fromarray(pixels)


def render(
    argv: list[str],
    pidfile: str | None,
    timeout: float,
    *,
    out_path: str,
    width: int,
    height: int,
    vmargin: int,
    fill: tuple[int, int, int],
    background: tuple[int, int, int],
    fmt: str,
    rate: int,
) -> float:
    """Pool worker: decode ``argv`` (``pcm.pcm_argv`` at ``rate``), reduce, draw, save.

    Returns the decoded duration in seconds. Raises ``TaskError``.
    """
    reducer = PeakReducer(width)
    with open_pcm(
        argv, timeout=timeout, pidfile=pidfile, chunk_samples=READ_SAMPLES, reuse=True
    ) as chunks:
        for x in chunks:
            reducer.add(x)
    if not reducer.samples:
        raise errors.TaskError(
            errors.INVALID_MEDIA, "no audio could be decoded in the requested range"
        )
    mins, maxs = reducer.columns(width)
    image = draw(mins, maxs, height=height, vmargin=vmargin, fill=fill, background=background)
    if fmt == "png":
        image.save(out_path, "PNG", compress_level=6)
    else:
        image.save(out_path, "JPEG", quality=JPEG_QUALITY)
    return reducer.samples / rate
