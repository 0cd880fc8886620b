"""video.thumb: one frame of a video at ``time``, as a JPEG or PNG thumbnail.

A ``time`` past the last frame gives the last frame: the video's duration minus one
frame, or, when the video stream ends before the file does, the last frame decoded in
the final seconds. The frame is upright (the video's rotation applied), sized and cropped
exactly as image.thumb would size the same picture, with the ``poster`` play icon when
asked; ``quality`` is the usual JPEG quality. Alpha is not kept.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

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

TAIL_SECONDS = 5.0


class Schema(TaskSchema):
    url = Url(required=True)
    width = Size(load_default=None, allow_none=True)
    height = Size(load_default=None, allow_none=True)
    crop = fields.Boolean(load_default=False)
    time = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=1e7))
    format = Choice(list(ffmpeg.FRAME_FORMATS), load_default="jpeg")
    poster = fields.Boolean(load_default=False)
    quality = fields.Integer(load_default=75, validate=validate.Range(min=1, max=95))


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

    early = attempt("frame.ppm", seek=p["time"])
    try:
        info = await probe.probe(ctx, download)
        source_size = probe.require_video(info)
        size = geometry.output_size(*source_size, p["width"], p["height"], p["crop"])
        ffmpeg.check_size(*size, ctx.settings)
    except BaseException:
        await discard(early)
        raise

    last = probe.last_frame_time(info)
    if last is not None and p["time"] > last:
        await discard(early)
        frame = await attempt("last.ppm", seek=last)
    else:
        frame = await early
    if frame is None:  # the video stream ends before the container does
        frame = await attempt("tail.ppm", from_end=TAIL_SECONDS)
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
