"""audio.info: duration, content type and codec of an audio file, from one ffprobe run."""

from __future__ import annotations

from typing import Any

from dragon.media import probe
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema, Url

TASK_NAME = "audio.info"
HEAVY = False


class Schema(TaskSchema):
    url = Url(required=True)


async def run(ctx: TaskContext) -> dict[str, Any]:
    info = await probe.fetch_source(ctx, ctx.params["url"], "audio")
    return {
        "duration": round(info.duration, 2) if info.duration is not None else None,
        "content_type": info.content_type,
        "codec": info.audio_codec,
    }
