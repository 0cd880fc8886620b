"""video.thumb: one frame of a video at ``time``, as a JPEG or PNG thumbnail.

A ``time`` past the last frame gives the last frame: the video's duration minus one
frame, or, when the video stream ends before the file does, the last frame decoded in
the final seconds. The frame is upright (the video's rotation applied), sized and cropped
exactly as image.thumb would size the same picture, with the ``poster`` play icon when
asked; ``quality`` is the usual JPEG quality. Alpha is not kept.

Beyond the original API: ``pick: "best"`` looks at frames over the 10 seconds from
``time`` (10 candidates, one per tenth of that window) and keeps the sharpest one that
is neither black, white nor flat, so a fade-in, a black leader or a motion-blurred frame
does not become the thumbnail. ``pick: "time"`` (the default) is the frame at ``time``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from marshmallow import fields, validate
from PIL import Image

from dragon import errors
from dragon.config import Settings
from dragon.media import ffmpeg, geometry, probe
from dragon.media.image import play_badge
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import Choice, Size, TaskSchema, Url

TASK_NAME = "video.thumb"
HEAVY = True
INTERACTIVE = True

TAIL_SECONDS = 5.0
# pick "best": the window after ``time`` that is searched, and how many frames of it are
# scored. One ffmpeg decodes the window once and keeps ``BEST_CANDIDATES`` frames evenly
# spread over it (the ``fps`` filter), scored in the pool: on 10 s of a 1080p H.264 clip,
# 0.6 s to decode and write the candidates and 26 ms to score them, against 1.05 s for
# ffmpeg's ``thumbnail`` filter over the same frames (its histogram of every frame costs
# about as much as the decode again), which moreover cannot see blur.
BEST_WINDOW = 10.0
BEST_CANDIDATES = 10
# Scoring a candidate: on a grey copy about this wide, a frame whose mean is outside
# DARKEST..BRIGHTEST or whose standard deviation is under FLATTEST (black, white, a fade,
# a title card's plain ground) is only kept when every candidate is; of the others the
# sharpest (the variance of the Laplacian, which blur lowers) wins.
SCORE_WIDTH = 480
DARKEST, BRIGHTEST, FLATTEST = 24.0, 232.0, 12.0


class Schema(TaskSchema):
    url = Url(required=True)
    width = Size(load_default=None, allow_none=True)
    height = Size(load_default=None, allow_none=True)
    crop = fields.Boolean(load_default=False)
    time = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=1e7))
    format = Choice(list(ffmpeg.FRAME_FORMATS), load_default="jpeg")
    poster = fields.Boolean(load_default=False)
    quality = fields.Integer(load_default=75, validate=validate.Range(min=1, max=95))
    pick = Choice(
        ["time", "best"],
        load_default="time",
        metadata={"description": "best: the sharpest frame that is not black in 10 s from time"},
    )


def frame_argv(
    path: Path,
    demuxer: str,
    out: Path,
    settings: Settings,
    *,
    seek: float | None = None,
    from_end: float | None = None,
) -> list[str]:
    """Decode one frame at ``seek`` (or the last frame within ``from_end`` s of the end)."""
    source = probe.path_input_args(path, demuxer, seek=seek)
    if from_end is not None:
        source = ["-sseof", f"-{from_end:g}", *source]
    count = [] if from_end is not None else ["-frames:v", "1"]
    return ffmpeg.ffmpeg_argv(
        *ffmpeg.decoder_guard(settings),
        *source,
        "-map",
        "0:V:0",
        *count,
        "-an",
        "-sn",
        "-dn",
        "-c:v",
        "ppm",
        "-pix_fmt",
        "rgb24",
        "-f",
        "image2",
        "-update",
        "1",
        str(out),
    )


def candidates_argv(
    path: Path, demuxer: str, pattern: Path, settings: Settings, *, seek: float, window: float
) -> list[str]:
    """Decode ``window`` seconds from ``seek`` once, writing ``BEST_CANDIDATES`` frames
    evenly spread over it to ``pattern`` (an image2 pattern such as ``cand%02d.ppm``)."""
    rate = BEST_CANDIDATES / window
    return ffmpeg.ffmpeg_argv(
        *ffmpeg.decoder_guard(settings),
        "-t",
        f"{window:.6f}",
        *probe.path_input_args(path, demuxer, seek=seek),
        "-map",
        "0:V:0",
        "-vf",
        f"fps={rate:.6f}",
        "-frames:v",
        str(BEST_CANDIDATES),
        "-an",
        "-sn",
        "-dn",
        "-c:v",
        "ppm",
        "-pix_fmt",
        "rgb24",
        "-f",
        "image2",
        str(pattern),
    )


async def extract(ctx: TaskContext, argv: list[str], source: Path, out: Path) -> Path | None:
    """Run one extraction; ``out`` when it left a frame there."""
    result = await ctx.run(argv, check=False)
    if out.exists() and out.stat().st_size > 0:
        return out
    if result.returncode != 0:
        raise errors.TaskError(
            errors.INVALID_MEDIA,
            f"no frame could be decoded: {probe.tool_reason(result, source)}",
        )
    return None


async def discard(task: asyncio.Future[Path | None]) -> None:
    """Cancel the early extraction (ctx.run kills its ffmpeg) and wait for it to end,
    without swallowing a cancellation of this task itself."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except errors.TaskError:
        pass


async def run(ctx: TaskContext) -> dict[str, Any]:
    """Speed: the frame is found by *input* seeking (``-ss`` before ``-i``: jump to the
    keyframe before ``time``, decode only from there), and the extraction starts at the
    same time as the probe instead of after it, which hides ffprobe's ~65 ms behind
    ffmpeg's own start-up. That is safe because by then the source
    has passed the sniffer (so the forced demuxer is known), the decoder refuses frames above
    ``max_pixels`` by itself (``-max_pixels``), and only one frame is decoded; if the probe
    then refuses the source, the extraction is killed and its frame never used.

    The frame leaves ffmpeg as an uncompressed PPM (upright: ffmpeg applies the rotation);
    Pillow then scales and crops it with ``dragon.media.geometry`` (the same sizes as
    image.thumb), draws the ``poster`` play icon and encodes it.
    """
    p = ctx.params
    fmt, ext, content_type = ffmpeg.FRAME_FORMATS[p["format"]]
    download = await ctx.fetch(p["url"])
    demuxer = probe.source_demuxer(download)
    path = Path(download.path)

    def attempt(name: str, **where: float) -> asyncio.Future[Path | None]:
        out = ctx.tmpdir / name
        return asyncio.ensure_future(
            extract(ctx, frame_argv(path, demuxer, out, ctx.settings, **where), path, out)
        )

    # pick "best" needs the probe's duration first, so it starts nothing early.
    early = None if p["pick"] == "best" else attempt("frame.ppm", seek=p["time"])
    try:
        info = await probe.probe(ctx, download)
        source_size = probe.require_video(info)
        size = geometry.output_size(*source_size, p["width"], p["height"], p["crop"])
        ffmpeg.check_size(*size, ctx.settings)
    except BaseException:
        if early is not None:
            await discard(early)
        raise

    last = probe.last_frame_time(info)
    frame = None
    if early is None:
        frame = await best_candidate(ctx, path, demuxer, p["time"], last)
    if frame is None:
        frame = await frame_at(p["time"], last, early, attempt)
    if frame is None:
        raise errors.TaskError(errors.INVALID_MEDIA, "the video has no decodable frame")

    out = ctx.tmpdir / f"thumb.{ext}"
    width, height = await ctx.in_process(
        render,
        str(frame),
        str(out),
        p["width"],
        p["height"],
        p["crop"],
        fmt,
        p["quality"],
        p["poster"],
    )
    await ctx.output("output", out, content_type)
    return {
        "width": width,
        "height": height,
        "original_width": info.width,
        "original_height": info.height,
        "duration": round(info.duration, 3) if info.duration is not None else None,
        "content_type": content_type,
    }


async def frame_at(
    time: float,
    last: float | None,
    early: asyncio.Future[Path | None] | None,
    attempt: Callable[..., asyncio.Future[Path | None]],
) -> Path | None:
    """The frame at ``time`` (``early`` when its extraction is already under way), the
    last frame when ``time`` is past it, or, when the video stream ends before the
    container does, the last frame decoded in the final seconds."""
    if last is not None and time > last:
        if early is not None:
            await discard(early)
        frame = await attempt("last.ppm", seek=last)
    else:
        frame = await (early if early is not None else attempt("frame.ppm", seek=time))
    if frame is None:
        frame = await attempt("tail.ppm", from_end=TAIL_SECONDS)
    return frame


async def best_candidate(
    ctx: TaskContext, path: Path, demuxer: str, time: float, last: float | None
) -> Path | None:
    """The best of ``BEST_CANDIDATES`` frames over the window from ``time`` (``best_frame``);
    None when there is no window (an unknown duration, ``time`` at or past the last frame)
    or it gave no frame, and the frame at ``time`` is used instead."""
    if last is None or last <= time:
        return None
    window = min(BEST_WINDOW, last - time)
    argv = candidates_argv(
        path, demuxer, ctx.tmpdir / "candidate%02d.ppm", ctx.settings, seek=time, window=window
    )
    result = await ctx.run(argv, check=False)
    found = sorted(f for f in ctx.tmpdir.glob("candidate*.ppm") if f.stat().st_size > 0)
    if not found:
        if result.returncode != 0:
            raise errors.TaskError(
                errors.INVALID_MEDIA,
                f"no frame could be decoded: {probe.tool_reason(result, path)}",
            )
        return None
    return found[await ctx.in_process(best_frame, [str(f) for f in found])]


def frame_score(frame: str) -> tuple[bool, float]:
    """(usable: neither dark, bright nor flat; sharpness) of one extracted frame."""
    with Image.open(frame, formats=["PPM"]) as im:
        grey = im.convert("L")
    grey = grey.reduce(max(1, grey.width // SCORE_WIDTH))
    a = np.asarray(grey, dtype=np.float32)
    usable = DARKEST <= a.mean() <= BRIGHTEST and a.std() >= FLATTEST
    if min(a.shape) < 3:
        return bool(usable), 0.0
    laplacian = 4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:]
    return bool(usable), float(laplacian.var())


def best_frame(frames: list[str]) -> int:
    """The index of the frame to keep: the sharpest usable one (``frame_score``), the
    earliest of equals."""
    scores = [frame_score(f) for f in frames]
    return max(range(len(frames)), key=scores.__getitem__)


def render(
    frame: str,
    out: str,
    width: int | None,
    height: int | None,
    crop: bool,
    fmt: str,
    quality: int,
    poster: bool,
) -> tuple[int, int]:
    """Scale/crop the extracted frame, add the play icon, encode; returns the final size."""
    with Image.open(frame, formats=["PPM"]) as im:
        img = im.convert("RGB")
    sw, sh = img.size
    size = geometry.output_size(sw, sh, width, height, crop)
    box = None
    if crop and width and height:
        x, y, cw, ch = geometry.crop_box(sw, sh, *size)
        box = (x, y, x + cw, y + ch)
    if size != (sw, sh) or box:
        img = img.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    if poster:
        img = play_badge(img)  # the same badge as image.thumb
    if fmt == "JPEG":
        img.save(out, "JPEG", quality=quality)
    else:
        img.save(out, "PNG", compress_level=4)
    return img.size
