"""What each picture and text of a timed definition needs drawn before ffmpeg runs.

``plan`` walks the tree once and returns one Pillow job per visible ``image`` (with a
file) and ``text``, keyed by the node's ``uid``; ``draw`` runs them in the process pool.
The graph builder then finds each node's ``Raster`` by uid. How a picture is used
depends on its parent, so that decision (``media_mode``, ``is_kenburns``) lives here and
the graph builder asks the same functions for videos.
"""

from __future__ import annotations

from pathlib import Path

from dragon.net.fetcher import Download
from dragon.sxml import layout
from dragon.sxml.concurrent import gather
from dragon.sxml.context import InPool
from dragon.sxml.model import KENBURNS_LIKE, MULTI_EFFECTS, Node
from dragon.sxml.stills import Raster, StillJob, render_still
from dragon.sxml.text import TextJob, render_text

WHITE = (255, 255, 255, 255)
FIT_FILTERS = ("fitAdapter", "fixedAdapter")
PAN = "panoramicAdapter"
DRAW_CONCURRENCY = 4


def is_kenburns(effect: Node) -> bool:
    kind = effect.attrs.get("type", "none")
    return kind in KENBURNS_LIKE or kind in MULTI_EFFECTS


def media_mode(parent: Node, media: Node) -> str:
    """``fill``, ``fit``, ``stretch`` or ``pan``: how ``media`` fills its effect or overlay
    box (``pan``: a picture covering the box, panned across it over its time)."""
    if any(n.filters(f) for n in (parent, media) for f in FIT_FILTERS):
        return "fit"
    if media.tag == "image" and (
        parent.attrs.get("adapter") == PAN or any(n.filters(PAN) for n in (parent, media))
    ):
        return "pan"
    if parent.tag == "overlay":
        return "stretch"
    adapter = parent.attrs.get("adapter", "kenburnsAdapter")
    if adapter == "none":
        return "stretch"
    if adapter in FIT_FILTERS:
        return "fit"
    return "fill"


def plan(
    body: Node,
    frame: tuple[int, int],
    downloads: dict[str, Download],
    *,
    antialias: int,
    max_pixels: int,
    tmpdir: Path,
    tag: str,
) -> dict[int, StillJob | TextJob]:
    """One job per visible picture and text; ``downloads`` maps URLs to ``Download``."""
    jobs: dict[int, StillJob | TextJob] = {}
    kenburns_scale = 2 if antialias >= 2 else 1
    for parent in body.walk():
        for node in parent.content:
            if node.end <= node.begin:
                continue
            out = str(tmpdir / f"{tag}-{node.uid}")
            if node.tag == "image" and node.attrs.get("filename"):
                download = downloads[node.attrs["filename"]]
                kenburns = parent.tag == "effect" and is_kenburns(parent)
                jobs[node.uid] = StillJob(
                    source=str(download.path),
                    name=f"{node.where()} {download.url}",
                    mime=download.mime,
                    out=out,
                    frame=frame,
                    spec=layout.placement(parent.attrs) if parent.tag == "overlay" else None,
                    mode=media_mode(parent, node),
                    scale=kenburns_scale if kenburns else 1,
                    max_pixels=max_pixels,
                )
            elif node.tag == "text":
                spec = layout.placement(node.attrs)
                jobs[node.uid] = TextJob(
                    text=node.text,
                    kind=node.attrs.get("type", "zone"),
                    frame=frame,
                    spec=spec or None,
                    fontsize=node.number("fontsize"),
                    fontname=node.attrs.get("fontname"),
                    color=node.color("fontcolor", WHITE),
                    background=node.color("backgroundcolor"),
                    align=node.attrs.get("align", ""),
                    scale=antialias,
                    out=out + ".png",
                )
    return jobs


async def draw(ctx: InPool, jobs: dict[int, StillJob | TextJob]) -> dict[int, Raster | None]:
    """Run the jobs in the process pool, a few at a time."""

    async def one(uid: int, job: StillJob | TextJob) -> tuple[int, Raster | None]:
        fn = render_still if isinstance(job, StillJob) else render_text
        return uid, await ctx.in_process(fn, job)

    return dict(await gather((one(uid, job) for uid, job in jobs.items()), limit=DRAW_CONCURRENCY))
