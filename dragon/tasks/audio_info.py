"""audio.info: duration, content type and codec of an audio file, from one ffprobe run;
with ``loudness: true`` also its EBU R128 loudness (a decode of the whole audio stream,
``dragon.media.loudness``)."""

from __future__ import annotations

from typing import Any

from marshmallow import fields

from dragon.media import loudness, probe
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema, Url

TASK_NAME = "audio.info"
HEAVY = False


class Schema(TaskSchema):
    url = Url(required=True)
    loudness = fields.Boolean(
        load_default=False,
        metadata={
            "description": "also measure integrated loudness (LUFS), true peak (dBTP) and"
            " loudness range (LU)"
        },
    )


async def run(ctx: TaskContext) -> dict[str, Any]:
    info = await probe.fetch_source(ctx, ctx.params["url"], "audio")
    result: dict[str, Any] = {
        "duration": round(info.duration, 2) if info.duration is not None else None,
        "content_type": info.content_type,
        "codec": info.audio_codec,
    }
    if ctx.params["loudness"]:
        result["loudness"] = (await loudness.measure(ctx, info)).report()
    return result
