"""video.upload.youtube: the source video sent to YouTube (Data API v3 resumable upload).

The source is downloaded and probed (it must be a video), then streamed from disk to
`{DRAGON_YOUTUBE_API_URL}/upload/youtube/v3/videos` with the `snippet` (title,
description, tags, category) and `status` (privacy) given. After a server error or a
dropped connection the upload asks the session how much it holds and goes on from there,
with backoff, up to `DRAGON_UPLOAD_MAX_TRIES` tries without progress; `progress` follows
the bytes sent. Result: `output` (`https://www.youtube.com/watch?v=<id>`) and `duration`
(seconds, from the source). Errors: `upload_unauthorized` (token or key refused),
`upload_quota_exceeded`, `upload_failed`. The `youtube` store uses the same upload.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dragon.media import probe
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema, Url
from dragon.uploads import youtube

TASK_NAME = "video.upload.youtube"
HEAVY = False
SENT_OUTPUTS = ("output",)  # the video's page on the platform


class Schema(TaskSchema, youtube.Metadata):
    url = Url(required=True)


async def run(ctx: TaskContext) -> dict[str, Any]:
    p = ctx.params
    info = await probe.fetch_source(ctx, p["url"], "video")
    source = await ctx.fetch(p["url"])
    output = await youtube.upload(
        ctx.settings,
        Path(source.path),
        info.content_type,
        youtube.Video.from_params(p),
        access_token=p["access_token"],
        developer_key=p["developer_key"],
        on_progress=ctx.progress,
    )
    return {"output": output, "duration": info.duration}
