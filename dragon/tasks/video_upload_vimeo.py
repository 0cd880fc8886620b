"""video.upload.vimeo: the source video sent to Vimeo (API 3.4, tus resumable upload).

Only OAuth2 works (`oauth2_token`, scopes upload and edit): Vimeo retired API v2 and its
OAuth1 keys, so a request that brings only those (`consumer_key`, `consumer_secret`,
`access_token_key`, `access_token_secret`) is a parameter error that names
`oauth2_token`. The account's free upload space is checked first
(`upload_quota_exceeded`); the upload resumes from the server's offset after failures.
Result: `output` (the video's `link`), `uploaded_file_size` (bytes), `free_space` (bytes
left afterwards, as Vimeo reports it) and `duration`. Endpoint: `DRAGON_VIMEO_API_URL`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marshmallow import ValidationError, fields, validates_schema

from dragon.media import probe
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import TaskSchema, Url
from dragon.uploads import vimeo

TASK_NAME = "video.upload.vimeo"
HEAVY = False
SENT_OUTPUTS = ("output",)  # the video's page on the platform

OAUTH1 = ("consumer_key", "consumer_secret", "access_token_key", "access_token_secret")


class Schema(TaskSchema):
    url = Url(required=True)
    title = fields.String(load_default="")
    description = fields.String(load_default="")
    oauth2_token = fields.String(load_default=None)
    consumer_key = fields.String(load_default=None)
    consumer_secret = fields.String(load_default=None)
    access_token_key = fields.String(load_default=None)
    access_token_secret = fields.String(load_default=None)

    @validates_schema
    def needs_oauth2(self, data: dict[str, Any], **kwargs: object) -> None:
        if data.get("oauth2_token"):
            return
        if any(data.get(name) for name in OAUTH1):
            raise ValidationError(
                "Vimeo retired API v2 and its OAuth1 keys; send an OAuth2 access token"
                " (scopes upload and edit) as oauth2_token",
                "oauth2_token",
            )
        raise ValidationError("this field is required", "oauth2_token")


async def run(ctx: TaskContext) -> dict[str, Any]:
    p = ctx.params
    info = await probe.fetch_source(ctx, p["url"], "video")
    source = await ctx.fetch(p["url"])
    uploaded = await vimeo.upload(
        ctx.settings,
        Path(source.path),
        token=p["oauth2_token"],
        title=p["title"],
        description=p["description"],
        on_progress=ctx.progress,
    )
    return {
        "output": uploaded.link,
        "uploaded_file_size": uploaded.size,
        "free_space": uploaded.free_space,
        "duration": info.duration,
    }
