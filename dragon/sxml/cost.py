"""What a timed definition will cost to render, estimated before anything is drawn.

A task's timeout (an hour by default) is the only other bound on a render, and a slot held
that long is lost to every other account: 500 transitions at 1080p would take one. The
estimate lets ``render.create`` refuse such a definition at once (``parameters`` naming
``definition``, with the estimate and the bound, ``DRAGON_VIDEO_CREATE_MAX_RENDER_SECONDS``)
and warn when a render gets close to it.

The model counts *pixel layers*: every output frame costs its pixels once (the encode),
plus ``LAYER`` per image, text or overlay drawn in it (``VIDEO_LAYER`` per video: it is
decoded too), plus ``BLEND`` per frame where two items of a sequence or a multi-media
effect are mixed (a transition or an effect's crossfade); each media source also costs
``PER_MEDIA`` seconds of set-up. Stacked layers are all counted, even hidden ones.

Calibration (ffmpeg 7, x264 ``veryfast``, 2 cores shared with other work, load about 6),
10 s movies of 640x480 JPEGs, seconds from ``started`` to ``completed``:

=========================================  ======  ======  ========
movie                                      720p    360p    estimate 720p / 360p
=========================================  ======  ======  ========
one image                                  3.4     0.9     3.5 / 0.9
20 images of 0.5 s                         4.3     1.6     4.5 / 1.9
20 images of 1 s, 19 crossfades of 0.5 s   7.8     3.2     7.9 / 2.7
kenburns on one image                      3.2     1.2     3.5 / 0.9
=========================================  ======  ======  ========

At 1080p the same 20 photos for 2 s each with 19 crossfades of 1 s took 13.9 s (tool memory
raised to 8 GiB: under the default 2 GiB ffmpeg cannot build that graph), estimated 32 s:
``SECONDS_PER_UNIT`` (10 ns per pixel layer) is the slow case of a busy machine, which is
what a bound should assume.
"""

from __future__ import annotations

from fractions import Fraction

from dragon.sxml.model import MEDIA, MULTI_EFFECTS, Node

ENCODE = 1.0  # every output frame's pixels: the encode and the graph's final format
LAYER = 0.5  # an image, text or overlay scaled and laid over the frame
VIDEO_LAYER = 1.0  # a video: decoded and scaled as well
BLEND = 1.0  # a frame of a transition or of an effect's internal crossfade
PER_MEDIA = 0.05  # seconds: opening, decoding once and scaling one source
SECONDS_PER_UNIT = 10e-9  # seconds per pixel layer
LAYERS = frozenset({"image", "text", "overlay"})


def layer_seconds(body: Node) -> float:
    """Seconds of layers over the movie, each weighted: ``ENCODE`` for the movie's own
    frames, ``LAYER``/``VIDEO_LAYER`` per drawn element, ``BLEND`` per mixed second."""
    total = ENCODE * _visible(body)
    for node in body.walk():
        if node.tag == "video":
            total += VIDEO_LAYER * _visible(node)
        elif node.tag in LAYERS:
            total += LAYER * _visible(node)
        if node.tag in ("body", "sequence") or node.attrs.get("type") in MULTI_EFFECTS:
            mixed = sum(_visible(kid) for kid in node.content if kid.tag != "audio")
            total += BLEND * max(0.0, mixed - _visible(node))
    return total


def estimate(body: Node, renderings: list[tuple[int, int, Fraction]]) -> float:
    """Estimated seconds to render the timed ``body`` once per (width, height, rate)."""
    per_second = layer_seconds(body)
    sources = sum(1 for node in body.walk() if node.tag in MEDIA)
    seconds = 0.0
    for width, height, rate in renderings:
        seconds += SECONDS_PER_UNIT * width * height * float(rate) * per_second
        seconds += PER_MEDIA * sources
    return seconds


def _visible(node: Node) -> float:
    return max(0.0, node.end - node.begin)
