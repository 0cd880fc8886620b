"""image.info: format, size, transparency and camera EXIF of an image, without decoding it.

``width``/``height`` are the stored pixels; ``rotation`` is the clockwise turn that shows
the image as shot (null when the EXIF orientation needs a flip or is absent). Every
EXIF-derived value is null when the file lacks it.
"""

from __future__ import annotations

from typing import Any

from dragon.media import image
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema, Url

TASK_NAME = "image.info"
HEAVY = False


class Schema(TaskSchema):
    url = Url(required=True)


async def run(ctx: TaskContext) -> dict[str, Any]:
    """Pillow only (no ImageMagick): see ``dragon.media.image`` for how sources are checked."""
    download = await ctx.fetch(ctx.params["url"])
    source = image.Source(str(download.path), ctx.params["url"], download.mime)
    # Header parsing only: a thread is enough and keeps the heavy process pool free.
    info = await ctx.in_thread(image.info, source, ctx.settings.max_pixels)
    return {**info}  # the TypedDict as the JSON object it is
