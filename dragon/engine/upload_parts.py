"""Resumable uploads held in S3, so that any of several nodes takes an upload's next PATCH.

On several nodes (PostgreSQL and a bucket, docs/scaling.md) an upload's bytes do not sit
on the disk of the node that created it: they go to an S3 multipart upload made with the
upload (its ``multipart`` column), as tusd's S3 store keeps them. S3 takes parts of at
least 5 MiB (all but the last), so a body is cut into parts of ``part_size`` bytes, each
stored as soon as it fills; the bytes past the last full part, fewer than a part, are kept
in an object of their own (the ``pending_key`` of the row), which the next writer, on any
node, reads back and continues. The database row says what is stored: the offset, the
parts (number, ETag, size) and the pending object, always moved together and only from
the offset the writer started at (``Database.store_upload_parts``), so of two requests
writing one upload at once (two nodes, or a client resuming while its old request still
stores what it sent) one wins and the other ends with the protocol's 409.

Two writers never write the same part or pending object: part numbers come from a counter
in the row (``Database.number_upload_part``), pending objects get random names, and a
part the losing writer stored is simply not listed when the parts are joined (S3 drops
unlisted parts). Once the last byte is stored, S3 joins the parts into the upload's object
(``CompleteMultipartUpload``) and the row is finished; a node that died between the two is
relieved by the next request that finds the upload whole but unfinished (``finish``).
Termination and expiry abort the multipart upload and delete what is under its prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterable, Callable, Iterator
from pathlib import Path
from typing import Protocol

import orjson

from dragon.database.interface import Database
from dragon.database.rows import UploadRow
from dragon.errors import UploadRefused
from dragon.stores.s3 import S3Backend, S3Failed

log = logging.getLogger(__name__)

MIN_PART = 5 * 1024**2  # S3's smallest part, but for the last one
# S3's part numbers go up to 10,000; an upload is cut into at most this many parts, the
# rest are spare for the parts of writers that lost a race (never listed, never reused).
MOST_PARTS = 9000
Part = tuple[int, str, int]  # number, ETag, size


class Hasher(Protocol):
    """What an Upload-Checksum's digest is computed with (hashlib's objects)."""

    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


def part_size(length: int) -> int:
    """The size of an upload's parts: S3's 5 MiB, more when the upload would otherwise
    need more than ``MOST_PARTS``. The same on every node: it depends on the length only."""
    return max(MIN_PART, -(-length // MOST_PARTS))


def object_key(upload_id: str) -> str:
    """Where a finished upload's bytes are in the bucket."""
    return f"uploads/{upload_id}/data"


def _prefix(upload_id: str) -> str:
    return f"uploads/{upload_id}/"


def parts_of(upload: UploadRow) -> list[Part]:
    return [(int(n), str(e), int(s)) for n, e, s in orjson.loads(upload["parts"] or "[]")]


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    """A failing bucket is the server's problem: 503, retry later (the offset is intact)."""
    try:
        yield
    except S3Failed as exc:
        refused = UploadRefused("unavailable", f"the upload's storage failed: {exc}")
        refused.retry_after = 5
        raise refused from exc


def _lost(failure: BaseException | None) -> bool:
    """Did the body fail because the upload moved on or went (nothing of it to store)?"""
    return isinstance(failure, UploadRefused) and failure.reason in ("offset", "unknown")


async def _forget(bucket: S3Backend, key: str) -> None:
    """Delete a pending object no row names any more; one left over is deleted with the
    upload (its prefix), so a failure here only costs space until then."""
    try:
        await bucket.delete(key)
    except Exception:  # noqa: BLE001 - botocore's and the network's, all alike here
        log.warning("could not delete %s", key, exc_info=True)


class BucketUploads:
    """The bytes of uploads in the bucket: their multipart uploads, parts and objects."""

    def __init__(self, database: Database, bucket: S3Backend) -> None:
        self.db = database
        self.bucket = bucket

    async def start(self, upload_id: str) -> str:
        """The multipart upload of a new upload."""
        with _unavailable():
            return await self.bucket.start_parts(object_key(upload_id))

    async def receive(
        self,
        upload: UploadRow,
        body: AsyncIterable[bytes],
        algorithm: str | None,
        digest: bytes | None,
        kept_until: Callable[[float], float],
    ) -> UploadRow:
        """Append ``body`` to ``upload``; store what arrived even when the body broke off,
        unless a checksum (``algorithm``, ``digest``) must cover it whole."""
        with _unavailable():
            writer = await PartsWriter.open(self, upload, algorithm)
            failure: BaseException | None = None
            try:
                await writer.pour(body, checkpoints=algorithm is None)
            except BaseException as exc:  # noqa: BLE001 - stored below, then raised again
                failure = exc
            try:
                if algorithm is not None and failure is None and writer.digest() != digest:
                    raise UploadRefused("checksum", "the body does not match Upload-Checksum")
                if (algorithm is None or failure is None) and not _lost(failure):
                    upload = await asyncio.shield(writer.store())
            finally:
                await writer.abandon()
            if failure is not None:
                raise failure
            if upload["received"] == upload["length"]:
                upload = await self.finish(upload, kept_until)
        return upload

    async def finish(self, upload: UploadRow, kept_until: Callable[[float], float]) -> UploadRow:
        """S3 joins the parts of a whole upload into its object, then the row is finished.
        Also what a node does for an upload whose writer died between the two."""
        key, multipart = object_key(upload["id"]), upload["multipart"]
        assert multipart is not None
        with _unavailable():
            parts = [(number, etag) for number, etag, _ in parts_of(upload)]
            if parts:
                joined = await self.bucket.join_parts(key, multipart, parts)
            else:  # empty: S3 joins no zero parts
                await self.bucket.put(key, b"")
                await self.bucket.abort_parts(key, multipart)
                joined = True
            # Joined meanwhile by another node, with the same parts: its object is there.
            if not joined and await self.bucket.size(key) != upload["length"]:
                raise UploadRefused("unavailable", "the upload's parts are gone; start again")
        now = time.time()
        done = await self.db.complete_upload(upload["id"], now, kept_until(now))
        return done or await self.db.upload(upload["id"]) or upload

    async def discard(self, upload_id: str, multipart: str) -> None:
        """Abort the multipart upload (S3 drops its parts; one joined already is no
        error) and delete every object of the upload."""
        with _unavailable():
            await self.bucket.abort_parts(object_key(upload_id), multipart)
            await self.bucket.delete_under(_prefix(upload_id))

    async def copy_to(self, upload_id: str, dest: Path) -> None:
        """A finished upload's bytes into ``dest``."""
        await self.bucket.copy_to(object_key(upload_id), dest)


class PartsWriter:
    """One body appended to an upload held in S3: the bytes past the stored parts are kept
    in ``buffer`` (starting with the pending object's), and each full part goes to S3."""

    def __init__(self, uploads: BucketUploads, upload: UploadRow, pending: bytes) -> None:
        self.db = uploads.db
        self.bucket = uploads.bucket
        self.upload = upload  # as last stored by this writer
        self.parts = parts_of(upload)  # stored, plus the ones this writer added since
        self.buffer = bytearray(pending)  # the bytes past ``parts``
        self.end = upload["received"]  # where the next byte goes
        self.size = part_size(upload["length"])
        self.hasher: Hasher | None = None
        self.sending: asyncio.Task[None] | None = None  # a full part on its way to S3
        # Waiting for ``sending``, then (with checkpoints) moving the row past it: one task,
        # shielded, so a body cut meanwhile (the request cancelled) neither drops the part
        # nor leaves the row and ``upload`` apart; ``store`` waits for the same task.
        self.settling: asyncio.Future[None] | None = None
        self.checkpoints = True

    @classmethod
    async def open(
        cls, uploads: BucketUploads, upload: UploadRow, algorithm: str | None
    ) -> PartsWriter:
        """A writer from where ``upload`` stands, with its pending bytes read back."""
        pending = b""
        if upload["pending_key"] is not None:
            try:
                pending = await uploads.bucket.read(upload["pending_key"])
            except S3Failed:
                # Replaced by a writer that stored after ``upload`` was read: it moved on.
                if await uploads.db.upload(upload["id"]) != upload:
                    raise UploadRefused(
                        "offset", "another request wrote this upload meanwhile"
                    ) from None
                raise
        writer = cls(uploads, upload, pending)
        if algorithm is not None:
            writer.hasher = hashlib.new(algorithm)
        return writer

    def digest(self) -> bytes | None:
        return None if self.hasher is None else self.hasher.digest()

    async def pour(self, body: AsyncIterable[bytes], *, checkpoints: bool) -> None:
        """Take the body's chunks, never past the upload's length; store each part as it
        fills (while the next one arrives), and with ``checkpoints`` move the stored offset
        past it."""
        self.checkpoints = checkpoints
        length = self.upload["length"]
        async for chunk in body:
            if self.end + len(chunk) > length:
                raise UploadRefused(
                    "too_large", f"the body goes past the upload's length of {length}"
                )
            if self.hasher is not None:
                await asyncio.to_thread(self.hasher.update, chunk)
            self.buffer += chunk
            self.end += len(chunk)
            while len(self.buffer) >= self.size:
                # The previous part first: a body cut while waiting for it leaves this one's
                # bytes in the buffer, where ``store`` finds them.
                await self._sent()
                with memoryview(self.buffer) as view:
                    part = bytes(view[: self.size])
                del self.buffer[: self.size]
                self.sending = asyncio.create_task(self._put_part(part))

    async def _sent(self) -> None:
        """Wait for the part on its way to S3; with checkpoints, the row then moves past it."""
        if self.settling is None and self.sending is not None:
            self.settling = asyncio.ensure_future(self._settle())
        if self.settling is not None:
            await asyncio.shield(self.settling)
            self.settling = None

    async def _settle(self) -> None:
        assert self.sending is not None
        await self.sending
        self.sending = None
        if self.checkpoints:
            await self._commit(None)

    async def abandon(self) -> None:
        """Stop a part still on its way once nothing will list it (a refused body)."""
        for waiting in (self.settling, self.sending):
            if waiting is not None and not waiting.done():
                waiting.cancel()
            if waiting is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await waiting
        self.settling = self.sending = None

    async def store(self) -> UploadRow:
        """Store what is buffered: the last part when the upload is whole, else a new
        pending object; then the row says so. The upload as it then stands. After a part
        that failed, only the parts before it are kept (the bytes past it have a gap)."""
        try:
            await self._sent()
        except Exception:  # noqa: BLE001 - the part failed (the body's own failure says why)
            self.settling = self.sending = None
        stored = sum(size for _, _, size in self.parts)
        if stored + len(self.buffer) == self.end > self.upload["received"]:
            if self.end == self.upload["length"]:
                if self.buffer:
                    await self._put_part(bytes(self.buffer))
                    self.buffer.clear()
                return await self._commit(None)
            if self.buffer:
                key = f"{_prefix(self.upload['id'])}pending-{secrets.token_hex(8)}"
                await self.bucket.put(key, bytes(self.buffer))
                return await self._commit(key)
        if stored > self.upload["received"]:
            return await self._commit(None)
        return self.upload

    async def _put_part(self, data: bytes) -> None:
        number = await self.db.number_upload_part(self.upload["id"])
        if number is None:
            raise UploadRefused("unknown", "the upload was deleted meanwhile")
        multipart = self.upload["multipart"]
        assert multipart is not None
        etag = await self.bucket.put_part(object_key(self.upload["id"]), multipart, number, data)
        self.parts.append((number, etag, len(data)))

    async def _commit(self, pending_key: str | None) -> UploadRow:
        """The row holds the parts so far and ``pending_key``, moved from the offset this
        writer last stored; the pending object it replaces goes."""
        stored = sum(size for _, _, size in self.parts)
        received = stored + (len(self.buffer) if pending_key is not None else 0)
        moved = await self.db.store_upload_parts(
            self.upload["id"],
            self.upload["received"],
            received,
            orjson.dumps(self.parts).decode(),
            pending_key,
        )
        replaced = self.upload["pending_key"] if moved is not None else pending_key
        if replaced is not None:
            await _forget(self.bucket, replaced)
        if moved is None:  # another writer moved it meanwhile: its bytes win
            raise UploadRefused("offset", "another request wrote this upload meanwhile")
        self.upload = moved
        return moved
