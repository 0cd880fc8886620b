"""Plumbing for one ffmpeg ``-filter_complex_script``: inputs, labelled chains, frame maths.

Every video stream the renderer makes runs at the profile's rate with the time base
1/rate, so a frame's ``pts`` is its index and moving a layer in time is an exact integer
``setpts=PTS+k``. Times are turned into frame indices once, from absolute seconds
(``Graph.frame``), so neighbouring clips agree on the frame where one ends and the next
begins and rounding never accumulates along a long sequence.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from fractions import Fraction

from dragon.sxml.motion import Motion


@dataclasses.dataclass(frozen=True)
class Layer:
    """A video stream of ``frames`` frames (pts from 0) drawn at ``x``, ``y`` in the frame."""

    label: str
    frames: int
    x: int
    y: int
    w: int
    h: int
    alpha: bool  # yuva420p, may be transparent; else yuv420p
    motion: Motion | None = None  # animated: placed by expressions, not at x, y


class Graph:
    def __init__(self, width: int, height: int, rate: Fraction) -> None:
        self.width = width
        self.height = height
        self.rate = rate
        self.inputs: list[list[str]] = []
        self.chains: list[str] = []
        self._labels = itertools.count()

    # -- time -----------------------------------------------------------------------------
    @property
    def rate_text(self) -> str:
        return f"{self.rate.numerator}/{self.rate.denominator}"

    @property
    def time_base(self) -> str:
        return f"{self.rate.denominator}/{self.rate.numerator}"

    def frame(self, seconds: float) -> int:
        """The index of the frame showing ``seconds`` (the nearest, halves rounded up)."""
        return math.floor(seconds * self.rate.numerator / self.rate.denominator + 0.5)

    def seconds(self, frames: int) -> str:
        """``frames`` as seconds for filter options, precise to the microsecond."""
        return f"{frames * self.rate.denominator / self.rate.numerator:.6f}"

    def span(self, begin: float, end: float) -> tuple[int, int]:
        """First frame and frame count of the interval [begin, end)."""
        first = self.frame(begin)
        return first, max(0, self.frame(end) - first)

    # -- building -------------------------------------------------------------------------
    def input(self, args: list[str]) -> int:
        """Add an input (options ending with ``-i path``); returns its index."""
        self.inputs.append(args)
        return len(self.inputs) - 1

    def chain(self, sources: list[str], filters: str, prefix: str = "v") -> str:
        """Add ``[sources]filters[out]``; returns the new label ``out``."""
        label = f"{prefix}{next(self._labels)}"
        pads = "".join(f"[{s}]" for s in sources)
        self.chains.append(f"{pads}{filters}[{label}]")
        return label

    def split(self, source: str, count: int) -> list[str]:
        """``count`` copies of the video ``source``."""
        labels = [f"v{next(self._labels)}" for _ in range(count)]
        self.chains.append(f"[{source}]split={count}" + "".join(f"[{x}]" for x in labels))
        return labels

    def script(self) -> str:
        return ";\n".join(self.chains) + "\n"

    def argv_inputs(self) -> list[str]:
        return [arg for args in self.inputs for arg in args]
