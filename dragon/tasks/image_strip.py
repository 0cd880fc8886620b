"""image.strip: images side by side in equal cells, ``wrap`` cells per row.

Sources are fetched concurrently; one that fails ends the task with an error
naming its URL. Without ``crop`` each image fits its cell, letterboxed on black (on
transparency in PNG); with it, each fills its cell, centre-cropped. One missing cell side
follows the first image's aspect; with neither, a cell is the first image fitted into
160x120, never enlarged.

Beyond the original API: ``watermark`` draws a logo on the whole strip, placed and sized
relative to the strip as on every task that takes one (the logo is fetched like the
sources).
"""

from __future__ import annotations

import functools
from typing import Any

from marshmallow import fields, validate

from dragon import errors
from dragon.media import geometry, image, watermark
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import Choice, Size, TaskSchema, Url, Watermark

TASK_NAME = "image.strip"
HEAVY = True
INTERACTIVE = True

MAX_IMAGES = 500


class Schema(TaskSchema):
    urls = fields.List(Url(), required=True, validate=validate.Length(min=1, max=MAX_IMAGES))
    width = Size(load_default=None, allow_none=True)
    height = Size(load_default=None, allow_none=True)
    crop = fields.Boolean(load_default=False)
    wrap = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1))
    format = Choice(["jpeg", "png"], load_default="jpeg")
    watermark = Watermark()


async def run(ctx: TaskContext) -> dict[str, Any]:
    """Pillow only, never ImageMagick (see ``dragon.media.image``); sources are fetched a
    bounded number at a time.
    """
    p = ctx.params
    max_pixels = ctx.settings.max_pixels
    if p["width"] and p["height"]:
        cols, rows = geometry.grid(len(p["urls"]), p["wrap"])
        if cols * p["width"] * rows * p["height"] > max_pixels:
            raise errors.ParameterError.one(
                "width",
                f"a strip of {cols}x{rows} cells of {p['width']}x{p['height']} is "
                f"over the limit of {max_pixels} pixels",
            )
    spec: watermark.Watermark | None = p["watermark"]
    sources = await image.fetch_sources(ctx, [*p["urls"], *([spec.url] if spec else [])])
    overlay = None
    if spec:
        logo = sources.pop()
        overlay = functools.partial(watermark.apply, src=logo, spec=spec, max_pixels=max_pixels)
    ctx.progress(50)
    dest = image.output_path(ctx.tmpdir, p["format"])
    result = await ctx.in_process(
        functools.partial(
            image.strip,
            sources,
            str(dest),
            p["width"],
            p["height"],
            p["crop"],
            p["wrap"],
            p["format"],
            max_pixels,
            overlay,
        )
    )
    await ctx.output("output", dest, result["content_type"])
    return {**result}  # the TypedDict as the JSON object it is
