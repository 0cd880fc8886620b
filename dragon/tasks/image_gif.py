"""image.gif: an animated GIF with one frame per image.

Sources are fetched concurrently; one that fails ends the task with an error naming its
URL. The GIF has the first image's size unless ``width``/``height`` say otherwise (one
alone keeps its aspect); every frame is fitted into it, letterboxed on black.
``frame_duration`` is rounded to 1/100 s, the GIF's unit. ``loop``: 0 forever, -1 play
once (no loop extension), n: n loops. Identical consecutive images become one frame
showing for their total duration.

Beyond the original API: ``format: "webp"`` makes an animated WebP instead (full colour,
usually smaller), with the same frames, durations and looping as the GIF would have.
"""

from __future__ import annotations

import functools
from typing import Any

from marshmallow import fields, validate

from dragon import errors
from dragon.media import image
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import Choice, Size, TaskSchema, Url

TASK_NAME = "image.gif"
HEAVY = True
INTERACTIVE = True

MAX_IMAGES = 500


class Schema(TaskSchema):
    images = fields.List(Url(), required=True, validate=validate.Length(min=1, max=MAX_IMAGES))
    loop = fields.Integer(load_default=0, validate=validate.Range(min=-1, max=65535))
    frame_duration = fields.Float(load_default=0.1, validate=validate.Range(min=0.01, max=655.35))
    width = Size(load_default=None, allow_none=True)
    height = Size(load_default=None, allow_none=True)
    format = Choice(
        ["gif", "webp"],
        load_default="gif",
        metadata={"description": "webp: an animated WebP, with the GIF's frame timing"},
    )


async def run(ctx: TaskContext) -> dict[str, Any]:
    """Pillow only, never ImageMagick (see ``dragon.media.image``, which also explains the
    shared palette, dithering and frame optimisation); sources are fetched a bounded number
    at a time.
    """
    p = ctx.params
    max_pixels = ctx.settings.max_pixels
    if not image.can_write(p["format"]):
        raise errors.ParameterError.one("format", f"{p['format']} output is not available here")
    if p["width"] and p["height"] and p["width"] * p["height"] * len(p["images"]) > max_pixels:
        raise errors.ParameterError.one(
            "images",
            f"{len(p['images'])} frames of {p['width']}x{p['height']} are over the "
            f"limit of {max_pixels} pixels",
        )
    sources = await image.fetch_sources(ctx, p["images"])
    ctx.progress(50)
    dest = image.output_path(ctx.tmpdir, p["format"])
    made = await ctx.in_process(
        functools.partial(
            image.gif,
            sources,
            str(dest),
            p["width"],
            p["height"],
            p["loop"],
            p["frame_duration"],
            max_pixels,
            p["format"],
        )
    )
    await ctx.output("output", dest, image.OUTPUTS[p["format"]][1])
    return {**made}  # width, height and count: beyond the original API, which lists only the file
