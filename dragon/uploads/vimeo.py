"""Vimeo API 3.4 upload with the tus resumable protocol (``upload.approach = tus``).

1. GET ``{api}/me``: the account's ``upload_quota.space.free``; a file larger than that is
   ``upload_quota_exceeded`` before a byte is sent.
2. POST ``{api}/me/videos`` with ``upload.approach=tus``, ``upload.size``, ``name`` and
   ``description``: the answer has the video's ``link`` and ``upload.upload_link``.
3. PATCH chunks to the upload link (``Tus-Resumable: 1.0.0``, ``Upload-Offset``,
   ``Content-Type: application/offset+octet-stream``); each answer (204) carries the new
   ``Upload-Offset``. After a failure, or a 409 (our offset is not the server's), HEAD the
   link for its ``Upload-Offset`` and go on from there.
4. GET ``/me`` again for the free space left.

An upload abandoned while it sends (its task cancelled or timed out) is ended on Vimeo:
tus termination (DELETE on the upload link), then DELETE of the video the second step
created (its ``uri``). That one needs the token's ``delete`` scope; without it Vimeo keeps
an empty video in the account.

The token goes to the API only; the upload link is a capability of its own (tus), so the
PATCH and HEAD requests carry no ``Authorization``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dragon.config import Settings
from dragon.uploads import transfer

ACCEPT = "application/vnd.vimeo.*+json;version=3.4"
TUS = {"Tus-Resumable": "1.0.0"}


@dataclasses.dataclass(frozen=True)
class Uploaded:
    link: str
    size: int
    free_space: int | None


async def upload(
    settings: Settings,
    path: Path,
    *,
    token: str,
    title: str,
    description: str,
    on_progress: Callable[[float], None] | None = None,
) -> Uploaded:
    size = path.stat().st_size
    async with transfer.Client(settings, "Vimeo", [token]) as client:
        run = _Upload(client, settings, path, size, token, transfer.Progress(size, on_progress))
        try:
            free = await run.free_space()
        except ValueError as exc:
            raise client.failed(f"/me reported an upload space that is not a size: {exc}") from None
        if free is not None and free < size:
            raise client.quota(
                f"the video is {size} bytes and the account has {free} bytes of upload space left"
            )
        link, upload_link = await run.create(title, description)
        try:
            await run.send(upload_link)
        except asyncio.CancelledError:
            await transfer.abandon(lambda: run.terminate(upload_link), run.delete_video)
            raise
        try:
            free = await run.free_space()
        except ValueError:  # the video is up: the result says the space left is unknown
            free = None
        return Uploaded(link, size, free)


class _Upload:
    def __init__(
        self,
        client: transfer.Client,
        settings: Settings,
        path: Path,
        size: int,
        token: str,
        progress: transfer.Progress,
    ) -> None:
        self.client = client
        self.api = settings.vimeo_api_url.rstrip("/")
        self.auth = {"Authorization": f"bearer {token}", "Accept": ACCEPT}
        self.path = path
        self.size = size
        self.chunk = settings.upload_chunk_bytes
        self.progress = progress
        self.backoff = client.backoff()
        self.uri: str | None = None  # the created video's, e.g. /videos/123

    async def api_call(self, method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
        """A JSON call to the API, retried on 5xx and connection failures."""
        headers = dict(self.auth)
        if body is not None:
            headers["Content-Type"] = "application/json"
        while True:
            try:
                answer = await self.client.call(method, self.api + path, body=body, headers=headers)
            except transfer.Transient as exc:
                await self.backoff.wait(exc.why)
                continue
            if answer.status >= 500 or answer.status == 429:
                await self.backoff.wait(transfer.answer_text(answer))
                continue
            if not 200 <= answer.status < 300:
                raise self.refusal(answer)
            doc = answer.json()
            if not isinstance(doc, dict):
                raise self.client.failed(f"{method} {path} answered something not JSON")
            self.backoff.progress()
            return doc

    async def free_space(self) -> int | None:
        """The account's free upload space in bytes (None: not reported); ``ValueError``
        when what is reported is not a byte count."""
        me = await self.api_call("GET", "/me")
        quota = me.get("upload_quota")
        space = quota.get("space") if isinstance(quota, dict) else None
        return transfer.byte_count(space.get("free") if isinstance(space, dict) else None)

    async def create(self, title: str, description: str) -> tuple[str, str]:
        body: dict[str, Any] = {"upload": {"approach": "tus", "size": str(self.size)}}
        # Left out when empty: Vimeo then names the video itself.
        body.update({k: v for k, v in (("name", title), ("description", description)) if v})
        video = await self.api_call("POST", "/me/videos", json.dumps(body).encode())
        upload = video.get("upload")
        if not isinstance(upload, dict):
            upload = {}
        link, upload_link = video.get("link"), upload.get("upload_link")
        uri = video.get("uri")
        self.uri = uri if isinstance(uri, str) and uri.startswith("/videos/") else None
        if not isinstance(link, str) or not isinstance(upload_link, str):
            raise self.client.failed("the created video has no link or upload link")
        if upload.get("approach", "tus") != "tus":
            raise self.client.failed(
                f"Vimeo offered the {upload.get('approach')!r} approach, not tus"
            )
        return link, upload_link

    async def send(self, link: str) -> None:
        offset = 0
        while offset < self.size:
            end = min(self.size, offset + self.chunk)
            body = transfer.FileRange(self.path, offset, end - offset, on_piece=self.progress)
            headers = {
                **TUS,
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
            }
            try:
                answer = await self.client.call("PATCH", link, body=body, headers=headers)
            except transfer.Transient as exc:
                await self.backoff.wait(exc.why)
                offset = await self.held(link)
                continue
            if answer.status in (200, 204):
                offset = self.offset_of(answer)
                await self.backoff.moved(offset)
                continue
            if answer.status == 409 or answer.status >= 500 or answer.status == 429:
                await self.backoff.wait(transfer.answer_text(answer))
                offset = await self.held(link)
                continue
            raise self.refusal(answer)

    async def terminate(self, link: str) -> None:
        """tus termination: the upload server drops what it holds of the upload."""
        await self.client.call("DELETE", link, headers=TUS)

    async def delete_video(self) -> None:
        """DELETE the video created for an abandoned upload (needs the ``delete`` scope)."""
        if self.uri is not None:
            await self.client.call("DELETE", self.api + self.uri, headers=self.auth)

    async def held(self, link: str) -> int:
        """The upload's offset on the server (tus HEAD)."""
        while True:
            try:
                answer = await self.client.call("HEAD", link, headers=TUS)
            except transfer.Transient as exc:
                await self.backoff.wait(exc.why)
                continue
            if answer.status in (200, 204):
                return self.offset_of(answer)
            if answer.status >= 500 or answer.status == 429:
                await self.backoff.wait(f"HTTP {answer.status}")
                continue
            raise self.refusal(answer)

    def offset_of(self, answer: transfer.Answer) -> int:
        try:
            offset = int(answer.headers["Upload-Offset"])
        except (KeyError, ValueError):
            raise self.client.failed("the upload server sent no Upload-Offset") from None
        if not 0 <= offset <= self.size:
            raise self.client.failed(f"the upload server claims offset {offset} of {self.size}")
        return offset

    def refusal(self, answer: transfer.Answer) -> Exception:
        doc = answer.json()
        message = transfer.answer_text(answer)
        if isinstance(doc, dict) and doc.get("error"):
            message = str(doc["error"])
        if answer.status in (401, 403):
            return self.client.unauthorized(message)
        return self.client.failed(message)
