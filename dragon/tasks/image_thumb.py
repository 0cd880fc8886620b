"""image.thumb: a resized, optionally cropped, rotated or badged copy of an image.

The image is first made
upright from its EXIF orientation, then turned ``rotation`` degrees counter-clockwise;
``width``/``height`` describe that final image (one alone keeps the aspect ratio, neither
keeps the size). ``crop`` fills the box and centre-crops, otherwise the image fits inside
it. ``poster`` draws a play badge at the centre. JPEG and GIF outputs are opaque (alpha
flattened on white).

Beyond the original API: ``format`` also accepts ``webp`` and ``avif`` when this server
can write them (a parameter error otherwise). ``crop: "smart"`` crops around the most
interesting region instead of the centre (edges, saturation and contrast, as libvips'
``attention``), so a subject off-centre stays in the picture. ``watermark`` draws a logo
on the thumbnail, placed and sized relative to the thumbnail as on every task that takes
one (the logo is fetched like any source).
"""

from __future__ import annotations

import functools
from typing import Any

from marshmallow import fields, validate

from dragon import errors
from dragon.media import image, watermark
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import Choice, Crop, Size, TaskSchema, Url, Watermark

TASK_NAME = "image.thumb"
HEAVY = True
INTERACTIVE = True


class Schema(TaskSchema):
    url = Url(required=True)
    width = Size(load_default=None, allow_none=True)
    height = Size(load_default=None, allow_none=True)
    crop = Crop(load_default=False)
    rotation = fields.Integer(load_default=0, validate=validate.OneOf([0, 90, 180, 270]))
    poster = fields.Boolean(load_default=False)
    format = Choice(list(image.OUTPUTS), load_default="jpeg")
    watermark = Watermark()


async def run(ctx: TaskContext) -> dict[str, Any]:
    """Pillow only, never ImageMagick (see ``dragon.media.image``)."""
    p = ctx.params
    max_pixels = ctx.settings.max_pixels
    if not image.can_write(p["format"]):
        raise errors.ParameterError.one("format", f"{p['format']} output is not available here")
    if p["width"] and p["height"] and p["width"] * p["height"] > max_pixels:
        raise errors.ParameterError.one(
            "width", f"{p['width']}x{p['height']} is over the limit of {max_pixels} pixels"
        )
    spec: watermark.Watermark | None = p["watermark"]
    if spec:
        source, logo = await image.fetch_sources(ctx, [p["url"], spec.url])
        overlay = functools.partial(watermark.apply, src=logo, spec=spec, max_pixels=max_pixels)
    else:
        download = await ctx.fetch(p["url"])
        source, overlay = image.Source(str(download.path), p["url"], download.mime), None
    ctx.progress(50)
    dest = image.output_path(ctx.tmpdir, p["format"])
    result = await ctx.in_process(
        functools.partial(
            image.thumb,
            source,
            str(dest),
            p["width"],
            p["height"],
            p["crop"],
            p["rotation"],
            p["poster"],
            p["format"],
            max_pixels,
            overlay,
        )
    )
    await ctx.output("output", dest, image.OUTPUTS[p["format"]][1])
    return {**result}  # the TypedDict as the JSON object it is
