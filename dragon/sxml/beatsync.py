"""Cuts on the beat: ``<sequence sync="beats">`` (or ``"downbeats"``), our SXML extension.

A synced sequence moves every cut between its items (the end of an item, or the middle of
the transition into the next) to the nearest beat of the movie's music, and its own end
too, so that pictures change with the music. The music is the movie's first ``<audio>``
element in document order; its beats come from ``dragon.media.beats`` (audio.beats' own
tracker), run once in the process pool by ``render.load``, and are mapped to movie time
through the track's place, ``skip``, ``speed`` and ``loop``.

Rules, in order of precedence:
- the items keep their order and each keeps at least one beat: a cut never lands on the
  beat of the cut before it;
- an item stays long enough for the transitions on both of its ends (no transition is
  shortened by the snapping);
- among the beats those two rules allow, the nearest to the cut's timed position wins.
When the music runs out of beats, the remaining cuts keep their lengths and a warning
says so. Cuts move by changing the items' durations, then the whole movie is timed again
(so nested synced sequences see their parent's new timing).
"""

from __future__ import annotations

import bisect

from dragon.sxml.model import Node

MODES = frozenset({"beats", "downbeats"})
EPSILON = 1e-6
SLACK = 60.0  # seconds a bound track's beats may run past its current end


def synced(body: Node) -> list[Node]:
    """Sequences with a ``sync`` attribute, parents before children."""
    return [n for n in body.walk() if n.tag in ("body", "sequence") and n.attrs.get("sync")]


def music(body: Node) -> Node | None:
    """The movie's first audible ``<audio>`` element."""
    return next((n for n in body.walk() if n.tag == "audio" and n.end > n.begin), None)


def heard_until(track: Node) -> float:
    """How far into its file ``track`` can be heard (past one loop for a looped track)."""
    skip = track.number("skip", 0.0) or 0.0
    speed = track.number("speed", 1.0) or 1.0
    until = skip + (track.end - track.begin) * speed
    if track.bound:  # it lasts as long as the movie, which snapping may lengthen
        until += SLACK * speed
    return until


def movie_times(track: Node, times: list[float], length: float | None) -> list[float]:
    """Beat times of ``track``'s file as movie times while the track plays."""
    skip = track.number("skip", 0.0) or 0.0
    speed = track.number("speed", 1.0) or 1.0
    until = heard_until(track)
    looped = track.flag("loop", False) and length
    out = []
    offset = 0.0
    while True:
        for t in times:
            at = t + offset
            if skip <= at <= until:
                out.append(track.begin + (at - skip) / speed)
        offset += length or 0.0
        if not looped or offset + skip > until or not times:
            break
    return sorted(out)


def snap(sequence: Node, beats: list[float]) -> str | None:
    """Set the durations of ``sequence``'s items so its cuts fall on ``beats``; returns a
    warning when there were not enough beats."""
    items, fades = _items(sequence)
    if not items or not beats:
        return None
    start = sequence.begin
    targets = [items[j].begin + fades[j] / 2 for j in range(1, len(items))]
    targets.append(sequence.begin + sequence.duration)
    cuts, short = _cuts(start, targets, fades, beats)
    for j, item in enumerate(items, start=1):
        length = cuts[j] - cuts[j - 1] + fades[j - 1] / 2 + fades[j] / 2
        item.attrs["duration"] = f"{length:.6f}"
    if sequence.explicit is not None:
        sequence.attrs["duration"] = f"{cuts[-1] - start:.6f}"
    if short:
        return (
            f"{sequence.where()}: the music has too few beats for every cut; the "
            "later cuts keep their lengths"
        )
    return None


def _items(sequence: Node) -> tuple[list[Node], list[float]]:
    """The sequence's items and ``fades``: ``fades[j]`` is the transition before
    ``items[j]`` (0: a cut), and a last 0 for the sequence's end, a plain cut.

    Each transition's ``duration`` is pinned to the length it was timed with (it may have
    been clamped to its neighbours), so that timing again does not move the middle off the
    beat."""
    items: list[Node] = []
    fades: list[float] = [0.0]
    pending = 0.0
    for child in sequence.children:
        if child.tag == "transition":
            pending = child.natural or 0.0
            child.attrs["duration"] = f"{pending:.6f}"
        elif child.is_content:
            if items:
                fades.append(pending)
            items.append(child)
            pending = 0.0
    fades.append(0.0)
    return items, fades


def _cuts(
    start: float, targets: list[float], fades: list[float], beats: list[float]
) -> tuple[list[float], bool]:
    """``start``, then for each target cut the beat the rules allow nearest to it; and
    whether the beats ran out (the later cuts then keep their timed lengths)."""
    n = len(targets)
    cuts = [start]
    last = bisect.bisect_right(beats, start + EPSILON) - 1  # index of the latest beat used
    short = False
    for j, target in enumerate(targets, start=1):
        earliest = cuts[-1] + (fades[j - 1] + fades[j]) / 2 + EPSILON
        first = max(last + 1, bisect.bisect_left(beats, earliest))
        latest = len(beats) - 1 - (n - j)  # leave one beat for each item still to come...
        if latest < first:
            latest = len(beats) - 1  # ...unless there are too few anyway
        if first > latest:
            short = True
            cuts.append(cuts[-1] + (target - (targets[j - 2] if j > 1 else start)))
            continue
        upto = min(max(bisect.bisect_left(beats, target), first), latest)
        last = min(
            range(max(first, upto - 1), min(latest, upto + 1) + 1),
            key=lambda i: abs(beats[i] - target),
        )
        cuts.append(beats[last])
    return cuts, short
