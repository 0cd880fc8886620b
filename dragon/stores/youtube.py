"""youtube store (docs/api.md): a task's video output sent to YouTube, the result's URL YouTube's.

The options are those of video.upload.youtube (``access_token``, ``developer_key``,
``title``, optional ``description``, ``tags``, ``category_id``, ``privacy_status``),
checked when the task is created, and the upload is the same (``dragon.uploads.youtube``).
Only the task's main output (``output``, or video.create's ``export``) goes to YouTube;
video.create's preview and thumbnail go to persistent storage, and so does a main output
that is not a video (YouTube takes videos only), with a warning in the result.
"""

from __future__ import annotations

from pathlib import Path

from marshmallow import EXCLUDE, ValidationError

from dragon.stores.base import BaseStore, Options, Producer
from dragon.uploads import youtube

MAIN_OUTPUTS = ("output", "export")


class Store(BaseStore):
    type = "youtube"

    @classmethod
    def problems(cls, options: Options) -> list[str]:
        try:
            cls.metadata(options)
        except ValidationError as exc:
            messages = exc.messages if isinstance(exc.messages, dict) else {"": exc.messages}
            return [
                f"{field}: {text}".replace("Missing data for required field.", "required")
                for field, texts in messages.items()
                for text in (texts if isinstance(texts, list) else [texts])
            ]
        return []

    @staticmethod
    def metadata(options: Options) -> Options:
        loaded: Options = youtube.Metadata(unknown=EXCLUDE).load(
            {k: v for k, v in options.items() if k != "type"}
        )
        return loaded

    def sent(self, name: str, url: str) -> bool:
        return name in MAIN_OUTPUTS and url.startswith(youtube.WATCH_URL)

    async def put(self, ctx: Producer, name: str, path: Path, content_type: str) -> str:
        if name not in MAIN_OUTPUTS:  # video.create's preview and thumbnail
            return await self.stores.for_task(None).put(ctx, name, path, content_type)
        if not content_type.startswith("video/"):
            ctx.warn(f"{name} is not a video, so it is in persistent storage, not on YouTube")
            return await self.stores.for_task(None).put(ctx, name, path, content_type)
        p = self.metadata(self.options)
        return await youtube.upload(
            ctx.settings,
            path,
            content_type,
            youtube.Video.from_params(p),
            access_token=p["access_token"],
            developer_key=p["developer_key"],
        )
