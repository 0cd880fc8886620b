"""The soundtrack of a timed SXML tree: every audible clip placed on one timeline and mixed.

Unlike the picture, sound needs no tree-shaped composition: a clip is a file played from
``skip`` at ``speed`` and ``volume`` between two absolute times, with fades. So every
``audio``, and every ``video`` whose ``audio`` is not ``"false"``, becomes one clip
(docs/sxml.md): ``atempo`` for the speed, ``volume``, its own ``afade`` in and out
(relative to its assigned span, so a truncated clip is cut, not faded), ``adelay`` to its
start, then ``amix`` (no normalisation) padded or cut to the movie's length.

A transition crossfades sound too (docs/sxml.md): instead of ``acrossfade`` between mixed
sub-tracks, every clip inside the outgoing item fades out over the transition window and
every clip inside the incoming one fades in, which is the same linear crossfade.

Ducking (``duck-others``, ``ducking.py``) is one more ``volume`` step on every track that
does not duck, an envelope over the movie's time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from dragon.media.probe import MediaInfo, input_args
from dragon.sxml import ducking
from dragon.sxml.filtergraph import Graph
from dragon.sxml.model import MULTI_EFFECTS, Node

SAMPLE_RATE = 44100
FORMAT = f"aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"


@dataclasses.dataclass(frozen=True)
class Fade:
    kind: str  # in | out
    start: float  # absolute seconds
    duration: float


def mix(
    graph: Graph, body: Node, media: dict[str, MediaInfo], ducked: list[ducking.Span] | None = None
) -> str:
    """Add the soundtrack to ``graph``; returns its output label. ``ducked``: the
    stretches where tracks without ``duck-others`` play quieter (``ducking.plan``)."""
    total = _samples(body.end)
    duck = ducking.volume_filter(ducked or [])
    labels = [
        label
        for node, fades in _clips(body, [])
        if (
            label := _clip(
                graph,
                node,
                fades,
                media[node.attrs["filename"]],
                None if "duck-others" in node.attrs else duck,
            )
        )
    ]
    if not labels:
        return graph.chain(
            [], f"anullsrc=r={SAMPLE_RATE}:cl=stereo,atrim=end_sample={total}", prefix="a"
        )
    if len(labels) > 1:
        mixed = graph.chain(
            labels, f"amix=inputs={len(labels)}:normalize=0:duration=longest", prefix="a"
        )
    else:
        mixed = labels[0]
    return graph.chain([mixed], f"apad=whole_len={total},atrim=end_sample={total}", prefix="a")


def _clips(node: Node, fades: list[Fade]) -> Iterator[tuple[Node, list[Fade]]]:
    """(node, crossfades) for every audible clip under ``node``, in document order."""
    if node.end <= node.begin:
        return
    if node.tag == "audio" or (node.tag == "video" and node.flag("audio", True)):
        yield node, fades
        return
    sequence_like = node.tag in ("body", "sequence") or (
        node.tag == "effect" and node.attrs.get("type") in MULTI_EFFECTS
    )
    items = [c for c in node.children if c.is_content]
    for i, child in enumerate(items):
        extra: list[Fade] = []
        if sequence_like:
            if i > 0 and child.begin < items[i - 1].end:
                extra.append(Fade("in", child.begin, items[i - 1].end - child.begin))
            if i + 1 < len(items) and items[i + 1].begin < child.end:
                extra.append(Fade("out", items[i + 1].begin, child.end - items[i + 1].begin))
        yield from _clips(child, fades + extra)


def _clip(
    graph: Graph, node: Node, fades: list[Fade], info: MediaInfo, duck: str | None
) -> str | None:
    """The label of ``node``'s sound placed on the movie's timeline, or None when none of
    its file is heard."""
    if not info.has_audio:
        return None  # a silent video
    speed = node.number("speed", 1.0) or 1.0
    source = _source(node, info, speed)
    if source is None:
        return None
    index = graph.input(source)
    steps = [
        "asetpts=PTS-STARTPTS",
        FORMAT,
        *_tempo(speed),
        *_level(node),
        *_placement(node, fades),
    ]
    if duck:
        steps.append(duck)  # after adelay: its t is the movie's time
    return graph.chain([f"{index}:a"], ",".join(steps), prefix="a")


def _source(node: Node, info: MediaInfo, speed: float) -> list[str] | None:
    """Input options reading what ``node`` plays of its file: from ``skip``, for as long
    as it is heard (and a little more), looping if it loops. None when the file ends
    before ``skip``: there is nothing to hear."""
    skip = node.number("skip", 0.0) or 0.0
    loop = node.tag == "audio" and node.flag("loop", False)
    if loop and info.duration:
        skip %= info.duration  # ffmpeg would decode every loop up to the skip point
    available = (info.duration or 0.0) - skip
    if available <= 0 and not loop:
        return None
    needed = (node.end - node.begin) * speed + 0.1
    args = ["-stream_loop", "-1"] if loop else []
    args += ["-t", f"{needed if loop else min(needed, available + 0.1):.6f}"]
    return [*args, *input_args(info, seek=skip or None)]


def _level(node: Node) -> list[str]:
    """``volume``, then an ``audio`` element's own fades (over its assigned span, so that a
    truncated clip is cut, not faded)."""
    steps = []
    volume = node.number("volume", 1.0)
    if volume != 1.0:
        steps.append(f"volume={volume:g}")
    if node.tag != "audio":
        return steps
    fade_in = node.number("fadein", 0.0)
    fade_out = node.number("fadeout", 0.0)
    if fade_in:
        steps.append(f"afade=t=in:st=0:d={fade_in:.6f}")
    if fade_out:
        steps.append(f"afade=t=out:st={max(0.0, node.duration - fade_out):.6f}:d={fade_out:.6f}")
    return steps


def _placement(node: Node, fades: list[Fade]) -> list[str]:
    """The transitions' crossfades, then the clip cut to its visible end and delayed to
    its start on the movie's timeline."""
    steps = [
        f"afade=t={fade.kind}:st={max(0.0, fade.start - node.begin):.6f}:d={fade.duration:.6f}"
        for fade in fades
    ]
    delay = _samples(node.begin)
    steps.append(f"atrim=end_sample={_samples(node.end) - delay}")
    if delay:
        steps.append(f"adelay=delays={delay}S:all=1")
    return steps


def _tempo(speed: float) -> list[str]:
    """``atempo`` steps for ``speed`` (each step must stay within 0.5-2)."""
    steps = []
    while speed > 2.0:
        steps.append("atempo=2")
        speed /= 2.0
    while speed < 0.5:
        steps.append("atempo=0.5")
        speed /= 0.5
    if abs(speed - 1.0) > 1e-9:
        steps.append(f"atempo={speed:.6f}")
    return steps


def _samples(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE)
