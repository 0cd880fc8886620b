"""video.upload.fb: the source video sent to Facebook (Graph API chunked video upload).

Phases start, transfer (the ranges the server asks for) and finish on
`{DRAGON_FACEBOOK_GRAPH_URL}/{DRAGON_FACEBOOK_GRAPH_VERSION}/me/videos`. `privacy`
`AUTO` sends no privacy (the app's default applies); the other choices go as
`privacy={"value": ...}`. With `app_secret` (`-`: none) every call carries
`appsecret_proof`. `api_key` (the app id) is accepted for compatibility; the upload does
not need it. Result: `output` (`https://www.facebook.com/watch/?v=<id>`) and `duration`.
Errors: `upload_unauthorized` (Graph code 190 and permission errors),
`upload_quota_exceeded` (rate limits), `upload_failed`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marshmallow import fields, validate

from dragon.media import probe
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import Choice, TaskSchema, Url
from dragon.uploads import facebook

TASK_NAME = "video.upload.fb"
HEAVY = False
SENT_OUTPUTS = ("output",)  # the video's page on the platform

PRIVACY = ["AUTO", "EVERYONE", "ALL_FRIENDS", "FRIENDS_OF_FRIENDS", "SELF"]
NONE = "-"


class Schema(TaskSchema):
    url = Url(required=True)
    access_token = fields.String(required=True, validate=validate.Length(min=1))
    title = fields.String(load_default="")
    description = fields.String(load_default="")
    privacy = Choice(PRIVACY, load_default="AUTO")
    no_story = fields.Boolean(load_default=False)
    api_key = fields.String(load_default=NONE)
    app_secret = fields.String(load_default=NONE)


async def run(ctx: TaskContext) -> dict[str, Any]:
    p = ctx.params
    info = await probe.fetch_source(ctx, p["url"], "video")
    source = await ctx.fetch(p["url"])
    secret = p["app_secret"].strip()
    output = await facebook.upload(
        ctx.settings,
        Path(source.path),
        access_token=p["access_token"],
        app_secret=None if secret in ("", NONE) else secret,
        title=p["title"],
        description=p["description"],
        privacy=p["privacy"],
        no_story=p["no_story"],
        on_progress=ctx.progress,
    )
    return {"output": output, "duration": info.duration}
