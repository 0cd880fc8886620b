"""Ducking: while a track with ``duck-others`` sounds, every other track plays quieter.

``duck-others`` is the volume the other tracks drop to (0 to 10, like ``volume``);
``duck-threshold`` (default 0.05 of full scale) is the level above which the ducking
track counts as sounding; ``duck-margin`` (default 0.5 s) extends each sounding stretch on
both sides and ``duck-fade`` (default 1 s) is how long the others take to go down before
it and to come back after it.

When the ducking track sounds is measured, not assumed: its file is decoded (from its
``skip``, for the time it is heard, in the process pool) and cut into 50 ms windows whose
peak, times the track's ``volume``, is compared with the threshold. Stretches closer than
twice the margin are merged (their ducked spans would touch anyway). A looped track is
taken as sounding throughout (no decode of every loop).

Every other track then gets one ``volume`` filter whose expression of the movie time ``t``
is the lowest of the envelopes of all the stretches, so overlapping stretches of several
ducking tracks never duck twice.
"""

from __future__ import annotations

import numpy as np

from dragon.media.pcm import open_pcm, pcm_argv, run_in_pool
from dragon.media.probe import MediaInfo, input_args
from dragon.sxml.context import InPool
from dragon.sxml.model import Node

ATTRS = ("duck-others", "duck-threshold", "duck-margin", "duck-fade")
THRESHOLD, MARGIN, FADE = 0.05, 0.5, 1.0
RATE = 8000
WINDOW = 0.05  # seconds
MAX_SPANS = 200  # per movie, so that the expression stays small

Span = tuple[float, float, float, float, float]  # start, end (movie s), level, margin, fade


def check(node: Node) -> None:
    node.number("duck-others", maximum=10)
    node.number("duck-threshold", maximum=1)
    node.number("duck-margin", maximum=60)
    node.number("duck-fade", maximum=60)


def duckers(body: Node) -> list[Node]:
    return [
        n
        for n in body.walk()
        if n.tag in ("audio", "video")
        and "duck-others" in n.attrs
        and n.end > n.begin
        and (n.tag == "audio" or n.flag("audio", True))
    ]


async def plan(ctx: InPool, body: Node, media: dict[str, MediaInfo]) -> list[Span]:
    """The ducked stretches of the movie, in movie seconds."""
    spans: list[Span] = []
    for node in duckers(body):
        info = media[node.attrs["filename"]]
        if not info.has_audio:
            continue
        level = node.number("duck-others", 0.0) or 0.0
        margin = node.number("duck-margin", MARGIN) or 0.0
        fade = node.number("duck-fade", FADE) or 0.0
        speed = node.number("speed", 1.0) or 1.0
        if node.tag == "audio" and node.flag("loop", False):
            sounding = [(0.0, node.end - node.begin)]
        else:
            skip = node.number("skip", 0.0) or 0.0
            threshold = node.number("duck-threshold", THRESHOLD) or 0.0
            volume = node.number("volume", 1.0)
            heard = (node.end - node.begin) * speed
            argv = pcm_argv(input_args(info, seek=skip or None), RATE, duration=heard)
            # The pool hands back what the worker returned (sounding_stretches).
            found: list[tuple[float, float]] = await run_in_pool(
                ctx, sounding_stretches, argv, threshold / max(volume, 1e-6), 2 * margin
            )
            sounding = [(a / speed, b / speed) for a, b in found]
        spans += [(node.begin + a, node.begin + b, level, margin, fade) for a, b in sounding]
    return _bounded(sorted(spans))


def sounding_stretches(
    argv: list[str], pidfile: str | None, timeout: float, threshold: float, gap: float
) -> list[tuple[float, float]]:
    """Pool worker: (start, end) seconds where the peak of 50 ms windows passes
    ``threshold``, stretches less than ``gap`` apart merged."""
    size = int(RATE * WINDOW)
    peaks: list[np.ndarray] = []
    rest = np.zeros(0, np.float32)
    with open_pcm(argv, timeout=timeout, pidfile=pidfile) as chunks:
        for chunk in chunks:
            data = np.concatenate([rest, chunk])
            whole = len(data) // size * size
            peaks.append(np.abs(data[:whole]).reshape(-1, size).max(axis=1))
            rest = data[whole:]
    if rest.size:
        peaks.append(np.array([np.abs(rest).max()]))
    loud = np.concatenate(peaks) > threshold if peaks else np.zeros(0, bool)
    stretches: list[tuple[float, float]] = []
    for i in np.flatnonzero(loud):
        start, end = i * WINDOW, (i + 1) * WINDOW
        if stretches and start - stretches[-1][1] < gap:
            stretches[-1] = (stretches[-1][0], end)
        else:
            stretches.append((start, end))
    return stretches


def _bounded(spans: list[Span]) -> list[Span]:
    """At most ``MAX_SPANS``: the closest neighbours are merged first."""
    while len(spans) > MAX_SPANS:
        i = min(range(len(spans) - 1), key=lambda k: spans[k + 1][0] - spans[k][1])
        a, b = spans[i], spans[i + 1]
        spans[i : i + 2] = [
            (a[0], max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]), max(a[4], b[4]))
        ]
    return spans


def volume_filter(spans: list[Span]) -> str | None:
    """``volume`` of a ducked track over the movie time ``t``, or None without spans."""
    if not spans:
        return None
    gains = []
    for start, end, level, margin, fade in spans:
        fade = max(fade, 1e-3)
        before = f"({start - margin:.4f}-t)/{fade:.4f}"
        after = f"(t-{end + margin:.4f})/{fade:.4f}"
        gains.append(f"({level:g}+{1 - level:g}*clip(max({before},{after}),0,1))")
    expr = gains[0]
    for gain in gains[1:]:
        expr = f"min({expr},{gain})"
    return f"volume=volume='{expr}':eval=frame"
