"""video.strip: ``count`` frames taken at equal intervals, tiled into one image.

Frames at least 10 seconds apart are the keyframe at or before each time (within one
keyframe interval of it, several times faster); closer frames are exact, so short videos
do not show the same keyframe in every cell.

Cells: ``width``/``height`` give the cell; one alone keeps the aspect. By default a cell is
the video fitted into 160x120 (160x90 for 16:9), never enlarged. Without ``crop`` frames
are fitted inside the cell on black; with it they fill the cell, centre-cropped.

Beyond the original API: ``format: "webp"`` makes an animated WebP of the frames instead
of a sheet: one cell-sized frame per time, each shown ``frame_duration`` seconds (rounded
to 1/100 s, as image.gif's frames), looping forever; ``wrap`` does not apply.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from marshmallow import fields, validate
from PIL import Image

from dragon import errors
from dragon.config import Settings
from dragon.media import ffmpeg, geometry, image, probe
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import Choice, Size, TaskSchema, Url

TASK_NAME = "video.strip"
HEAVY = True
INTERACTIVE = True

# Speed: one ffmpeg process seeks each frame with its own input (``-ss t -i file`` per
# frame) and a filtergraph scales every frame into its cell and stacks them, so nothing
# between the frames is decoded and ffmpeg starts once per ``BATCH`` frames, not once per
# frame. Memory grows with the inputs open at once (one decoder each), hence the batches;
# Pillow lays the rows out and encodes.
#
# Accuracy: when the frames are at least ``KEYFRAME_STEP`` seconds apart, each input
# decodes only the keyframe at or before its time (``-skip_frame nokey``): a frame within
# one GOP of the requested time, 3-8x faster. Closer frames are seeked exactly (decoding
# from the previous keyframe), so short videos do not show the same keyframe in every cell.
DEFAULT_CELL = (160, 120)
BATCH = 10
KEYFRAME_STEP = 10.0
MAX_JPEG_SIDE = 65_500
JPEG_QUALITY = 85
# Output formats: (Pillow format, extension, content type); webp is animated.
FORMATS = {**ffmpeg.FRAME_FORMATS, "webp": ("WEBP", "webp", "image/webp")}


class Schema(TaskSchema):
    url = Url(required=True)
    width = Size(load_default=None, allow_none=True)
    height = Size(load_default=None, allow_none=True)
    crop = fields.Boolean(load_default=False)
    wrap = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1))
    start = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=1e7))
    end = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0, max=1e7))
    count = fields.Integer(load_default=10, validate=validate.Range(min=1, max=200))
    format = Choice(list(FORMATS), load_default="jpeg")
    frame_duration = fields.Float(
        load_default=0.5,
        validate=validate.Range(min=0.01, max=655.35),
        metadata={"description": "webp: how long each frame shows, in seconds"},
    )


def frame_times(start: float, end: float, count: int) -> list[float]:
    if count == 1:
        return [start]
    step = (end - start) / (count - 1)
    return [start + i * step for i in range(count)]


def cell_size(src: tuple[int, int], width: int | None, height: int | None) -> tuple[int, int]:
    if width and height:
        return width, height
    if width or height:
        return geometry.scale_to(*src, width, height)
    if src[0] <= DEFAULT_CELL[0] and src[1] <= DEFAULT_CELL[1]:
        return src
    return geometry.scale_to(*src, *DEFAULT_CELL)


def batch_argv(
    info: probe.MediaInfo,
    times: list[float],
    cell: tuple[int, int],
    crop: bool,
    keyframes: bool,
    out: Path,
    settings: Settings,
) -> list[str]:
    """One process: an input per time, each frame into its cell, the cells side by side."""
    args: list[str] = []
    graph: list[str] = []
    fit = ffmpeg.cell_filter(probe.require_video(info), cell, crop)
    for i, t in enumerate(times):
        if keyframes:
            args += ["-skip_frame", "nokey", "-noaccurate_seek"]
        args += [*ffmpeg.decoder_guard(settings), *probe.input_args(info, seek=t)]
        graph.append(f"[{i}:V:0]trim=end_frame=1,{fit}[c{i}]")
    cells = "".join(f"[c{i}]" for i in range(len(times)))
    if len(times) > 1:
        layout = "|".join(f"{i * cell[0]}_0" for i in range(len(times)))
        graph.append(f"{cells}xstack=inputs={len(times)}:layout={layout}[row]")
    else:
        graph.append(f"{cells}null[row]")
    return ffmpeg.ffmpeg_argv(
        *args,
        "-filter_complex",
        ";".join(graph),
        "-map",
        "[row]",
        "-frames:v",
        "1",
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


async def run(ctx: TaskContext) -> dict[str, Any]:
    p = ctx.params
    fmt, ext, content_type = FORMATS[p["format"]]
    if fmt == "WEBP" and not image.can_write("webp"):
        raise errors.ParameterError.one("format", "webp output is not available here")
    info = await probe.fetch_source(ctx, p["url"], "video")
    last = probe.last_frame_time(info)
    if last is None:
        raise errors.TaskError(errors.INVALID_MEDIA, "the video's duration is unknown")

    start = min(p["start"], last)
    end = last if p["end"] is None else min(p["end"], last)
    if end < start:
        raise errors.ParameterError.one("end", "must not be before start")
    times = frame_times(start, end, p["count"])
    cell = cell_size(probe.require_video(info), p["width"], p["height"])
    cols, rows = geometry.grid(len(times), p["wrap"])
    size = (cols * cell[0], rows * cell[1])
    ffmpeg.check_size(*size, ctx.settings)  # an animation holds as many pixels as a sheet
    if fmt == "WEBP":
        size = cell
    if fmt == "JPEG" and max(size) > MAX_JPEG_SIDE:
        raise errors.ParameterError.one(
            "count", f"a {size[0]}x{size[1]} strip is too large for JPEG"
        )
    keyframes = len(times) > 1 and (times[1] - times[0]) >= KEYFRAME_STEP

    rows_made = []
    for n, first in enumerate(range(0, len(times), BATCH)):
        batch = times[first : first + BATCH]
        row = ctx.tmpdir / f"row{n}.ppm"
        await ctx.run(batch_argv(info, batch, cell, p["crop"], keyframes, row, ctx.settings))
        ffmpeg.check_output(row, ctx.settings)
        rows_made.append(str(row))
        ctx.progress(90.0 * (first + len(batch)) / len(times))

    out = ctx.tmpdir / f"strip.{ext}"
    if fmt == "WEBP":
        await ctx.in_process(animate, rows_made, str(out), cell, len(times), p["frame_duration"])
    else:
        await ctx.in_process(compose, rows_made, str(out), cell, cols, rows, len(times), fmt)
    await ctx.output("output", out, content_type)
    return {
        "count": len(times),
        "width": size[0],
        "height": size[1],
        "original_width": info.width,
        "original_height": info.height,
        "duration": round(info.duration, 3) if info.duration is not None else None,
        "frame_rate": round(info.frame_rate, 3) if info.frame_rate else None,
        "content_type": content_type,
    }


def cells(batches: list[str], cell: tuple[int, int], count: int) -> Iterator[Image.Image]:
    """The first ``count`` cells of the batches (rows of cells side by side), in order."""
    index = 0
    for path in batches:
        with Image.open(path, formats=["PPM"]) as strip:
            strip.load()
            for k in range(strip.width // cell[0]):
                if index >= count:
                    return
                yield strip.crop((k * cell[0], 0, (k + 1) * cell[0], cell[1]))
                index += 1


def compose(
    batches: list[str], out: str, cell: tuple[int, int], cols: int, rows: int, count: int, fmt: str
) -> None:
    """Cut the batches into cells and lay them out ``cols`` per row, on black."""
    sheet = Image.new("RGB", (cols * cell[0], rows * cell[1]), (0, 0, 0))
    for index, tile in enumerate(cells(batches, cell, count)):
        sheet.paste(tile, ((index % cols) * cell[0], (index // cols) * cell[1]))
    if fmt == "JPEG":
        sheet.save(out, "JPEG", quality=JPEG_QUALITY)
    else:
        sheet.save(out, "PNG", compress_level=6)


def animate(
    batches: list[str], out: str, cell: tuple[int, int], count: int, frame_duration: float
) -> None:
    """The cells as an animated WebP, in time order, looping forever (as image.gif's)."""
    image.animated_webp(list(cells(batches, cell, count)), out, frame_duration, 0)
