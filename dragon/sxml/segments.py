"""Cut a movie into time windows rendered by separate ffmpeg runs, to bound memory.

Every input of a filtergraph costs memory for the whole run: ffmpeg opens all inputs at
the start and each keeps a decoder with its frame pool (measured: 60 stills of 1280x720
in one graph peaked at 434 MB). A 10-minute slideshow of 300 photos at 1080p would need
gigabytes. So when a movie's inputs would cost more than ``MEMORY_BUDGET``, its picture
is rendered window by window, each graph holding only the inputs visible in its window,
and the encoded windows are joined by the concat demuxer without re-encoding (render.py).
The soundtrack is light and is mixed once, for the whole movie, in that last step.

A window boundary never falls inside a transition, an effect's internal crossfade or an
alpha fade, which would restart at the cut. A kenburns zoom or a video cut by a boundary
continues in the next window (zoompan is told how many frames came before; the video is
sought further), and a still just shows on.
"""

from __future__ import annotations

from collections.abc import Iterator

from dragon.media.probe import MediaInfo
from dragon.sxml.filtergraph import Graph
from dragon.sxml.model import MULTI_EFFECTS, Node
from dragon.sxml.stills import Raster

MEMORY_BUDGET = 384 * 1024**2
STILL_COPIES = 3  # decoded picture, its yuv420p conversion, the filter's own copy
VIDEO_FRAMES = 12  # a threaded H.264 decoder's reference and in-flight frames
INPUT_BYTES = 3 * 1024**2 // 2  # what ffmpeg spends on any input, however small (measured)

Window = tuple[int, int]  # frames [first, end)


def windows(
    body: Node,
    graph: Graph,
    rasters: dict[int, Raster | None],
    media: dict[str, MediaInfo],
    budget: int = MEMORY_BUDGET,
) -> list[Window]:
    """Windows covering the movie, each within ``budget`` when its content allows."""
    total = graph.frame(body.end)
    leaves = sorted(_leaves(body, graph, rasters, media))
    if sum(cost for _, _, cost in leaves) <= budget:
        return [(0, total)]
    zones = _zones(body, graph)
    cuts = sorted({f for first, end, _ in leaves for f in (first, end)} | {end for _, end in zones})
    cuts = [c for c in cuts if 0 < c < total and not any(a < c < b for a, b in zones)]
    cuts.append(total)
    out: list[Window] = []
    start = 0
    while start < total:
        out.append((start, end := _furthest(start, cuts, leaves, budget)))
        start = end
    return out


def _furthest(start: int, cuts: list[int], leaves: list[tuple[int, int, int]], budget: int) -> int:
    """The furthest cut after ``start`` whose window stays within ``budget`` (at least one)."""
    live = [(first, cost) for first, end, cost in leaves if end > start]
    best = None
    cost, i = 0, 0
    for cut in (c for c in cuts if c > start):
        while i < len(live) and live[i][0] < cut:
            cost += live[i][1]
            i += 1
        if best is not None and cost > budget:
            break
        best = cut
    assert best is not None
    return best


def _leaves(
    body: Node, graph: Graph, rasters: dict[int, Raster | None], media: dict[str, MediaInfo]
) -> Iterator[tuple[int, int, int]]:
    """(first frame, end frame, bytes) of every node that is an input of the graph."""
    frame_bytes = graph.width * graph.height * 3 // 2
    for node in body.walk():
        first, end = graph.frame(node.begin), graph.frame(node.end)
        if end <= first:
            continue
        if node.tag in ("image", "text"):
            raster = rasters.get(node.uid)
            if raster is not None:
                yield first, end, raster.pixels * 3 // 2 * STILL_COPIES + INPUT_BYTES
            elif node.tag == "image":
                yield first, end, frame_bytes + INPUT_BYTES  # a colour
        elif node.tag == "video":
            size = media[node.attrs["filename"]].display_size or (graph.width, graph.height)
            yield (
                first,
                end,
                (size[0] * size[1] * 3 // 2 * VIDEO_FRAMES + 2 * frame_bytes + INPUT_BYTES),
            )


def _zones(body: Node, graph: Graph) -> list[Window]:
    """Spans a window boundary may not cut: transitions, internal crossfades, fades."""
    zones = []
    for node in body.walk():
        if node.tag == "transition" or (node.tag == "filter" and node.attrs.get("type") == "alpha"):
            zones.append((graph.frame(node.begin), graph.frame(node.end)))
        elif node.tag == "effect" and node.attrs.get("type") in MULTI_EFFECTS:
            media = node.content
            zones += [
                (graph.frame(b.begin), graph.frame(a.end))
                for a, b in zip(media, media[1:], strict=False)
            ]
    return [(a, b) for a, b in zones if b > a]
