"""Facebook Graph API chunked video upload on ``{graph}/{version}/me/videos``.

1. ``upload_phase=start`` with ``file_size``: the answer names the ``video_id``, the
   ``upload_session_id`` and the first range to send (``start_offset``, ``end_offset``).
2. ``upload_phase=transfer``: multipart, the range's bytes as ``video_file_chunk`` at
   ``start_offset``; each answer names the next range, until ``start_offset`` equals
   ``end_offset`` (the file is whole). The server decides the ranges: we send what it asks.
   An offset mismatch (error subcode 1363037) carries the range to send instead in
   ``error_data``; a transient error (5xx, ``is_transient``, a dropped connection) sends the
   same range again after a pause.
3. ``upload_phase=finish`` with ``title``, ``description``, ``privacy={"value": ...}``
   (left out for ``AUTO``: the app's default) and ``no_story``.

An upload abandoned after the start phase (its task cancelled or timed out) is ended with
``upload_phase=cancel`` and its ``upload_session_id``.

Every call carries ``access_token`` in the form body (never in the URL) and, when an app
secret is given, ``appsecret_proof``: HMAC-SHA256 of the token keyed with the secret, hex.
Refusals: Graph code 190 (and the permission codes) are ``upload_unauthorized``, the
rate-limit codes ``upload_quota_exceeded``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from dragon.config import Settings
from dragon.uploads import transfer

AUTH_CODES = {190, 102, 10} | set(range(200, 300))
QUOTA_CODES = {4, 17, 32, 613}
TRANSIENT_CODES = {1, 2}
OFFSET_MISMATCH = 1363037
VIDEO_URL = "https://www.facebook.com/watch/?v="


def appsecret_proof(access_token: str, app_secret: str) -> str:
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


def multipart(fields: dict[str, str], file_field: str) -> tuple[bytes, bytes, str]:
    """The envelope around one file part: ``(head, tail, content type)``; the file's bytes
    go between head and tail, streamed."""
    boundary = "dragon" + secrets.token_hex(16)
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}";'
        f' filename="chunk"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    return head, f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def upload(
    settings: Settings,
    path: Path,
    *,
    access_token: str,
    app_secret: str | None,
    title: str,
    description: str,
    privacy: str,
    no_story: bool,
    on_progress: Callable[[float], None] | None = None,
) -> str:
    """Upload ``path``; returns the video's URL."""
    size = path.stat().st_size
    auth = {"access_token": access_token}
    if app_secret:
        auth["appsecret_proof"] = appsecret_proof(access_token, app_secret)
    async with transfer.Client(
        settings, "Facebook", [access_token, app_secret, auth.get("appsecret_proof")]
    ) as client:
        run = _Upload(client, settings, path, size, auth, transfer.Progress(size, on_progress))
        start = await run.form({"upload_phase": "start", "file_size": str(size)})
        video_id, session = str(start.get("video_id") or ""), start.get("upload_session_id")
        if not video_id or not session:
            raise client.failed("the start phase named no video or upload session")
        finish = {
            "upload_phase": "finish",
            "upload_session_id": str(session),
            "no_story": "true" if no_story else "false",
        }
        finish.update({k: v for k, v in (("title", title), ("description", description)) if v})
        if privacy != "AUTO":
            finish["privacy"] = json.dumps({"value": privacy})
        try:
            await run.send_ranges(str(session), run.range_of(start))
            done = await run.form(finish)
        except asyncio.CancelledError:
            await transfer.abandon(lambda: run.cancel(str(session)))
            raise
        if done.get("success") is not True:
            raise client.failed("the finish phase did not succeed")
        return VIDEO_URL + video_id


class _Upload:
    def __init__(
        self,
        client: transfer.Client,
        settings: Settings,
        path: Path,
        size: int,
        auth: dict[str, str],
        progress: transfer.Progress,
    ) -> None:
        self.client = client
        base = settings.facebook_graph_url.rstrip("/")
        self.url = f"{base}/{settings.facebook_graph_version.strip('/')}/me/videos"
        self.path = path
        self.size = size
        self.auth = auth
        self.progress = progress
        self.backoff = client.backoff()

    async def form(self, fields: dict[str, str]) -> dict[str, Any]:
        """A url-encoded phase call (start, finish), retried while transient."""
        body = urlencode({**self.auth, **fields}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        while True:
            try:
                answer = await self.client.call("POST", self.url, body=body, headers=headers)
            except transfer.Transient as exc:
                await self.backoff.wait(exc.why)
                continue
            doc = answer.json()
            if answer.status == 200 and isinstance(doc, dict) and "error" not in doc:
                self.backoff.progress()
                return doc
            error = self.error(answer)
            if self.transient(answer, error):
                await self.backoff.wait(self.message(answer, error))
                continue
            raise self.refusal(answer, error)

    async def cancel(self, session: str) -> None:
        """``upload_phase=cancel``: the Graph API ends the upload session (one try)."""
        body = urlencode(
            {**self.auth, "upload_phase": "cancel", "upload_session_id": session}
        ).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        await self.client.call("POST", self.url, body=body, headers=headers)

    async def send_ranges(self, session: str, first: tuple[int, int]) -> None:
        """The transfer phase: each range the server asks for, until it asks for none."""
        start, end = first
        while start < end:
            head, tail, content_type = multipart(
                {
                    **self.auth,
                    "upload_phase": "transfer",
                    "upload_session_id": session,
                    "start_offset": str(start),
                },
                "video_file_chunk",
            )
            body = transfer.FileRange(
                self.path, start, end - start, head=head, tail=tail, on_piece=self.progress
            )
            try:
                answer = await self.client.call(
                    "POST", self.url, body=body, headers={"Content-Type": content_type}
                )
            except transfer.Transient as exc:
                await self.backoff.wait(exc.why)
                continue
            doc = answer.json()
            if answer.status == 200 and isinstance(doc, dict) and "error" not in doc:
                start, end = self.range_of(doc)
                await self.backoff.moved(start)  # the same range again is no progress
                continue
            error = self.error(answer)
            if error.get("error_subcode") == OFFSET_MISMATCH:
                await self.backoff.wait(self.message(answer, error))
                start, end = self.range_of(self.error_data(error))
                continue
            if self.transient(answer, error):
                await self.backoff.wait(self.message(answer, error))
                continue
            raise self.refusal(answer, error)

    def range_of(self, doc: dict[str, Any]) -> tuple[int, int]:
        try:
            start, end = int(doc["start_offset"]), int(doc["end_offset"])
        except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: 1e400
            raise self.client.failed("the server named no range to send") from None
        if not 0 <= start <= end <= self.size:
            raise self.client.failed(f"the server asked for bytes {start}-{end} of {self.size}")
        return start, end

    @staticmethod
    def error(answer: transfer.Answer) -> dict[str, Any]:
        """The Graph error object, its ``code`` kept only when a number (a list there would
        break the set lookups that sort refusals)."""
        doc = answer.json()
        error = doc.get("error") if isinstance(doc, dict) else None
        if not isinstance(error, dict):
            return {}
        if not isinstance(error.get("code"), int):
            error.pop("code", None)
        return error

    @staticmethod
    def error_data(error: dict[str, Any]) -> dict[str, Any]:
        data = error.get("error_data")
        if isinstance(data, str):
            data = transfer.parse_json(data)
        return data if isinstance(data, dict) else {}

    @staticmethod
    def message(answer: transfer.Answer, error: dict[str, Any]) -> str:
        return str(error.get("message") or transfer.answer_text(answer))

    @staticmethod
    def transient(answer: transfer.Answer, error: dict[str, Any]) -> bool:
        if error.get("code") in QUOTA_CODES | AUTH_CODES:
            return False
        return (
            answer.status >= 500
            or error.get("is_transient") is True
            or error.get("code") in TRANSIENT_CODES
        )

    def refusal(self, answer: transfer.Answer, error: dict[str, Any]) -> Exception:
        code, message = error.get("code"), self.message(answer, error)
        if code in QUOTA_CODES:
            return self.client.quota(message)
        if code in AUTH_CODES or answer.status == 401:
            return self.client.unauthorized(message)
        return self.client.failed(message)
