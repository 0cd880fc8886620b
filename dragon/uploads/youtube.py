"""YouTube Data API v3 resumable upload (``videos.insert``, ``uploadType=resumable``).

1. POST ``{api}/upload/youtube/v3/videos?uploadType=resumable&part=snippet,status&key=...``
   with ``Authorization: Bearer``, ``X-Upload-Content-Length``/``-Type`` and the JSON
   ``snippet`` and ``status``; the answer's ``Location`` is the upload session URI.
2. PUT the bytes to the session URI in chunks (multiples of 256 KiB but the last) with
   ``Content-Range: bytes a-b/size``. Every chunk but the last is answered 308 with
   ``Range: bytes=0-n``: what the server holds, which may be less than was sent, so the
   next chunk starts at ``n + 1``. The last is answered 200/201 with the video resource.
3. After a 5xx, a dropped connection or a stall: pause (``transfer.Backoff``), ask the
   session's state (an empty PUT with ``Content-Range: bytes */size``, answered 308 with
   ``Range``) and go on from there. A 404 means the session expired: start again.

An abandoned upload (its task cancelled or timed out) is left as it is: the resumable
protocol has no way to end a session early, and no video exists until its last byte has
arrived; the unfinished session expires on YouTube's side.

Refusals: 401 and 403 (but quota reasons) are ``upload_unauthorized``, the quota reasons
``upload_quota_exceeded``, anything else ``upload_failed``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from marshmallow import Schema, fields, validate

from dragon.config import Settings
from dragon.uploads import transfer

GRANULE = 256 * 1024  # chunk sizes must be multiples of this (but the last)
QUOTA_REASONS = {
    "quotaExceeded",
    "uploadLimitExceeded",
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "dailyLimitExceeded",
}
PRIVACY = ["public", "private", "unlisted"]
WATCH_URL = "https://www.youtube.com/watch?v="


class Metadata(Schema):
    """What a YouTube upload needs, shared by video.upload.youtube and the youtube store."""

    access_token = fields.String(required=True, validate=validate.Length(min=1))
    developer_key = fields.String(required=True, validate=validate.Length(min=1))
    title = fields.String(required=True, validate=validate.Length(min=1, max=100))
    description = fields.String(load_default="", validate=validate.Length(max=5000))
    tags = fields.List(fields.String(), load_default=list)
    category_id = fields.Integer(load_default=22, validate=validate.Range(min=1, max=2**31 - 1))
    privacy_status = fields.String(load_default="public", validate=validate.OneOf(PRIVACY))


@dataclasses.dataclass(frozen=True)
class Video:
    title: str
    description: str = ""
    tags: tuple[str, ...] = ()
    category_id: int = 22
    privacy_status: str = "public"

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> Video:
        return cls(
            p["title"],
            p.get("description") or "",
            tuple(p.get("tags") or ()),
            p.get("category_id", 22),
            p.get("privacy_status", "public"),
        )

    def resource(self) -> dict[str, Any]:
        return {
            "snippet": {
                "title": self.title,
                "description": self.description,
                "tags": list(self.tags),
                "categoryId": str(self.category_id),
            },
            "status": {"privacyStatus": self.privacy_status},
        }


class SessionExpired(Exception):
    pass


def chunk_size(setting: int) -> int:
    return max(GRANULE, setting // GRANULE * GRANULE)


def received(answer: transfer.Answer) -> int:
    """Bytes the server holds, from a 308's ``Range: bytes=0-n`` (none: nothing yet)."""
    value = answer.headers.get("Range", "")
    try:
        return int(value.rsplit("-", 1)[1]) + 1 if value else 0
    except (IndexError, ValueError):
        return 0


async def upload(
    settings: Settings,
    path: Path,
    content_type: str,
    video: Video,
    *,
    access_token: str,
    developer_key: str,
    on_progress: Callable[[float], None] | None = None,
) -> str:
    """Upload ``path``; returns the video's watch URL."""
    size = path.stat().st_size
    async with transfer.Client(settings, "YouTube", [access_token, developer_key]) as client:
        upload = _Upload(
            client,
            settings,
            path,
            size,
            content_type,
            video,
            access_token,
            developer_key,
            transfer.Progress(size, on_progress),
        )
        return WATCH_URL + await upload.run()


class _Upload:
    def __init__(
        self,
        client: transfer.Client,
        settings: Settings,
        path: Path,
        size: int,
        content_type: str,
        video: Video,
        access_token: str,
        developer_key: str,
        progress: transfer.Progress,
    ) -> None:
        self.client = client
        self.path = path
        self.size = size
        self.content_type = content_type
        self.video = video
        self.auth = {"Authorization": f"Bearer {access_token}"}
        self.key = developer_key
        self.url = settings.youtube_api_url.rstrip("/") + "/upload/youtube/v3/videos"
        self.chunk = chunk_size(settings.upload_chunk_bytes)
        self.progress = progress
        self.backoff = client.backoff()

    async def run(self) -> str:
        while True:
            session = await self.start()
            try:
                return await self.send(session)
            except SessionExpired:
                await self.backoff.wait("the upload session expired")

    async def start(self) -> str:
        params = {"uploadType": "resumable", "part": "snippet,status", "key": self.key}
        headers = {
            **self.auth,
            "Content-Type": "application/json; charset=UTF-8",
            "X-Upload-Content-Length": str(self.size),
            "X-Upload-Content-Type": self.content_type,
        }
        body = json.dumps(self.video.resource()).encode()
        while True:
            try:
                answer = await self.client.call(
                    "POST", self.url, body=body, headers=headers, params=params
                )
            except transfer.Transient as exc:
                await self.backoff.wait(exc.why)
                continue
            if answer.status == 200 and answer.headers.get("Location"):
                return answer.headers["Location"]
            if answer.status >= 500 or answer.status == 429:
                await self.backoff.wait(transfer.answer_text(answer))
                continue
            raise self.refusal(answer)

    async def send(self, session: str) -> str:
        offset = 0
        self.backoff.begin()
        while True:
            if offset >= self.size:  # all held, yet no video: ask until it says done
                await self.backoff.wait("the server holds the whole file but named no video")
                offset, done = await self.state(session)
                if done:
                    return done
                continue
            end = min(self.size, offset + self.chunk)
            body = transfer.FileRange(self.path, offset, end - offset, on_piece=self.progress)
            headers = {
                **self.auth,
                "Content-Type": self.content_type,
                "Content-Range": f"bytes {offset}-{end - 1}/{self.size}",
            }
            try:
                answer = await self.client.call("PUT", session, body=body, headers=headers)
            except transfer.Transient as exc:
                await self.backoff.wait(exc.why)
                offset, done = await self.state(session)
                if done:
                    return done
                continue
            if answer.status in (200, 201):
                return self.video_id(answer)
            if answer.status == 308:
                offset = received(answer)
                await self.backoff.moved(offset)
                continue
            if answer.status == 404:
                raise SessionExpired
            if answer.status >= 500 or answer.status == 429:
                await self.backoff.wait(transfer.answer_text(answer))
                offset, done = await self.state(session)
                if done:
                    return done
                continue
            raise self.refusal(answer)

    async def state(self, session: str) -> tuple[int, str]:
        """Ask how much the session holds: ``(offset, "")``, or ``(size, video id)`` if whole."""
        headers = {**self.auth, "Content-Range": f"bytes */{self.size}"}
        while True:
            try:
                answer = await self.client.call("PUT", session, body=b"", headers=headers)
            except transfer.Transient as exc:
                await self.backoff.wait(exc.why)
                continue
            if answer.status == 308:
                return received(answer), ""
            if answer.status in (200, 201):
                return self.size, self.video_id(answer)
            if answer.status == 404:
                raise SessionExpired
            if answer.status >= 500 or answer.status == 429:
                await self.backoff.wait(transfer.answer_text(answer))
                continue
            raise self.refusal(answer)

    def video_id(self, answer: transfer.Answer) -> str:
        doc = answer.json()
        video_id = doc.get("id") if isinstance(doc, dict) else None
        if not isinstance(video_id, str) or not video_id:
            raise self.client.failed("the upload ended without a video id")
        return video_id

    def refusal(self, answer: transfer.Answer) -> Exception:
        doc = answer.json()
        error = doc.get("error") if isinstance(doc, dict) else None
        message = transfer.answer_text(answer)
        reasons: set[str] = set()
        if isinstance(error, dict):
            message = str(error.get("message") or message)
            listed = error.get("errors")
            reasons = {
                str(e.get("reason"))
                for e in (listed if isinstance(listed, list) else [])
                if isinstance(e, dict)
            }
        if reasons & QUOTA_REASONS:
            return self.client.quota(message)
        if answer.status in (401, 403):
            return self.client.unauthorized(message)
        return self.client.failed(message)
