"""video.info: what a video holds, from one ffprobe run (no decoding)."""

from __future__ import annotations

from typing import Any

from dragon.media import probe
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema, Url

TASK_NAME = "video.info"
HEAVY = False


class Schema(TaskSchema):
    url = Url(required=True)


async def run(ctx: TaskContext) -> dict[str, Any]:
    info = await probe.fetch_source(ctx, ctx.params["url"], "video")
    return info_values(info)


def info_values(info: probe.MediaInfo) -> dict[str, Any]:
    """The video.info output values (4.12), shared by video.convert and video.reverse.

    ``width``/``height`` are the stored size; ``rotation`` says how to turn it upright.
    """
    return {
        "content_type": info.content_type,
        "width": info.width,
        "height": info.height,
        "duration": round(info.duration, 3) if info.duration is not None else None,
        "frame_rate": round(info.frame_rate, 3) if info.frame_rate else None,
        "alpha": info.alpha,
        "rotation": info.rotation,
        "audio_codec": info.audio_codec,
        "video_codec": info.video_codec,
    }
