"""Loudness: EBU R128 measurement, and normalisation in two passes with ffmpeg's loudnorm.

Why two passes: one loudnorm pass only knows what it has heard so far, so it rides the gain
through the whole programme (audible pumping, and a result that misses the target on short
files). Measuring the whole source first lets the second pass apply one linear gain, the
way a mastering engineer would; loudnorm falls back to its dynamic mode only when that gain
would push the true peak over the ceiling. The first pass decodes the audio stream alone,
so for a video it costs a fraction of the encode.

The first pass measures with ffmpeg's ``ebur128`` filter rather than with loudnorm itself:
the same EBU R128 figures (integrated loudness, its gate threshold, loudness range, true
peak), without loudnorm's dynamic processing at 192 kHz that a measuring pass throws
away; on an audio file that made the measuring pass several times as costly as the encode
(``scripts/bench_outputs.py``). The measurement is also what ``audio.info`` reports with
``loudness: true``: integrated loudness (LUFS), true peak (dBTP) and loudness range (LU).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Protocol

from dragon import errors
from dragon.media import probe
from dragon.media.ffmpeg import ffmpeg_argv
from dragon.runtime.processes import ProcessResult

MIN_TARGET, MAX_TARGET = -70.0, -5.0  # loudnorm's range for I (LUFS)
TRUE_PEAK = -1.5  # dBTP ceiling, the common streaming-platform choice
MIN_RANGE, MAX_RANGE = 7.0, 20.0  # the loudness-range target we allow loudnorm (LU)
ABSOLUTE_GATE = -70.0  # LUFS: ebur128 reports this when no block is above the gate


class ToolRunner(Protocol):
    """What of a task's context the measurement needs (``TaskContext`` is one)."""

    async def run(self, argv: list[str]) -> ProcessResult: ...

    def warn(self, message: str) -> None: ...


# ebur128's summary, printed when the stream ends; "-inf" for a peak of digital silence.
_SUMMARY = re.compile(
    r"Integrated loudness:\s*I:\s*(?P<integrated>\S+) LUFS\s*Threshold:\s*(?P<threshold>\S+) LUFS"
    r"\s*Loudness range:\s*LRA:\s*(?P<range>\S+) LU"
    r".*?True peak:\s*Peak:\s*(?P<peak>\S+) dBFS",
    re.S,
)


@dataclasses.dataclass(frozen=True)
class Loudness:
    """A source's EBU R128 figures, as the first pass measured them."""

    integrated: float  # LUFS
    true_peak: float  # dBTP
    range: float  # LU
    threshold: float  # LUFS, the gate loudnorm's second pass needs back

    @property
    def silent(self) -> bool:
        """Digital silence (a peak of minus infinity) or nothing above the absolute gate:
        there is no loudness to normalise."""
        return self.integrated <= ABSOLUTE_GATE or not math.isfinite(self.true_peak)

    def report(self) -> dict[str, float | None]:
        """The figures a result shows (None for silence, which has no loudness)."""
        if self.silent:
            return {"integrated": None, "true_peak": None, "range": None}
        return {
            "integrated": round(self.integrated, 2),
            "true_peak": round(self.true_peak, 2),
            "range": round(self.range, 2),
        }


def measure_argv(info: probe.MediaInfo) -> list[str]:
    """The first pass: decode the first audio stream through ebur128, keep nothing.

    ebur128 prints its summary at the ``info`` log level, hence the second ``-loglevel``
    (the last one given wins); ``framelog=verbose`` keeps its line per 100 ms below it."""
    return ffmpeg_argv(
        "-loglevel",
        "info",
        *probe.input_args(info),
        "-map",
        "0:a:0",
        "-vn",
        "-sn",
        "-dn",
        "-af",
        "ebur128=peak=true:framelog=verbose",
        "-f",
        "null",
        "-",
    )


def parse(stderr: str) -> Loudness:
    """ebur128's summary, the last one in ffmpeg's log."""
    found = list(_SUMMARY.finditer(stderr))
    if not found:
        raise errors.TaskError(errors.INVALID_MEDIA, "could not measure the audio's loudness")
    values = found[-1]
    return Loudness(
        integrated=float(values["integrated"]),
        true_peak=float(values["peak"]),
        range=float(values["range"]),
        threshold=float(values["threshold"]),
    )


def normalise_filter(measured: Loudness, target: float) -> str:
    """The second pass: one linear gain to ``target`` LUFS where the true peak allows it.

    The range target is at least the source's own range, since loudnorm only stays linear
    when it is asked to keep the range as it is."""
    wanted_range = min(MAX_RANGE, max(MIN_RANGE, math.ceil(measured.range + 1)))
    return (
        f"loudnorm=I={target:g}:TP={TRUE_PEAK:g}:LRA={wanted_range:g}"
        f":measured_I={measured.integrated:.2f}:measured_TP={measured.true_peak:.2f}"
        f":measured_LRA={measured.range:.2f}:measured_thresh={measured.threshold:.2f}"
        ":linear=true:print_format=none"
    )


async def measure(ctx: ToolRunner, info: probe.MediaInfo) -> Loudness:
    """Run the first pass over ``info``'s first audio stream."""
    return parse((await ctx.run(measure_argv(info))).stderr)


async def normaliser(ctx: ToolRunner, info: probe.MediaInfo, target: float) -> str | None:
    """The filter that brings ``info``'s audio to ``target`` LUFS, measured first; None
    (with a warning) for a silent source, whose loudness no gain can reach."""
    measured = await measure(ctx, info)
    if measured.silent:
        ctx.warn(f"the audio is silent: loudness {target:g} LUFS was not applied")
        return None
    return normalise_filter(measured, target)
