"""Resumable uploads (tus 1.0.0, ``/v2/uploads``) without HTTP, and uploads as task inputs.

An upload is a row (``Database.insert_upload``: its length, what it holds, its expiry) and a
file in the data folder's ``uploads``. A write streams a request body to the file at the
upload's offset, in a worker thread one chunk behind the network (the event loop never
waits on the disk and never holds more than two chunks), and moves the stored offset only
once the bytes are on disk (``fdatasync``): a client that lost its connection, or a server
that restarted, resumes from an offset whose bytes are all there. A long body moves the
offset every ``CHECKPOINT_BYTES``, so even a server killed mid-request loses little; a body
with an Upload-Checksum moves it only once the whole body has matched.

A finished upload is an input of the account's tasks (``UploadSources``): ``upload:ID``, or
the upload's own URL on this server, is linked into the task's folder from storage and
never fetched. Another account's upload, or an unfinished one, ends the task
``unknown_upload``. Expired uploads (unfinished past ``upload_hours``, finished ones
``upload_hours`` after their last byte) are removed by the sweeper (``sweep``).

On several nodes (PostgreSQL and a bucket) the bytes go to the bucket instead, as an S3
multipart upload that any node continues (``dragon.engine.upload_parts``): the row says
which (``multipart``), so the rules above hold for both; only where the bytes go differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Hashable
from pathlib import Path
from typing import IO, Any

from dragon import errors
from dragon.config import Settings
from dragon.database.interface import Database
from dragon.database.rows import UploadRow
from dragon.engine.auth import Account
from dragon.engine.upload_parts import BucketUploads
from dragon.errors import UploadRefused
from dragon.net.fetcher import Download, fetching_account, human_size
from dragon.net.sniff import HEAD_SIZE, extension, sniff, sniff_file
from dragon.net.url_policy import UPLOAD_ID, upload_reference
from dragon.stores.s3 import S3Backend
from dragon.tasks.context import Fetcher

UPLOADS_PATH = "/v2/uploads"
CHECKPOINT_BYTES = 16 * 1024**2  # a long body's stored offset moves at least this often
LOCK_WAIT_SECONDS = 5.0  # a request waits this long for another one writing the upload
# Upload-Checksum algorithms (the checksum extension's names, hashlib's constructors).
CHECKSUMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
    "md5": hashlib.md5,
}


@dataclasses.dataclass(frozen=True)
class Checksum:
    """What an Upload-Checksum header says the body's digest is."""

    algorithm: str  # a key of ``CHECKSUMS``
    digest: bytes


class Writer:
    """One body written to an upload's file from ``offset``, each chunk in a worker thread
    while the next one arrives, hashed there too when a checksum covers the body."""

    def __init__(self, file: IO[bytes], offset: int, algorithm: str | None) -> None:
        self.file = file
        self.end = offset  # where the next chunk goes
        self.hasher = CHECKSUMS[algorithm]() if algorithm else None
        self.pending: asyncio.Future[None] | None = None

    @classmethod
    def open(cls, path: Path, offset: int, algorithm: str | None) -> Writer:
        """Blocking: run in a thread."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        file = os.fdopen(fd, "wb")
        file.seek(offset)
        return cls(file, offset, algorithm)

    def _write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        if self.hasher is not None:
            self.hasher.update(chunk)

    async def write(self, chunk: bytes) -> None:
        """Queue ``chunk`` once the previous one is written."""
        await self.drain()
        self.pending = asyncio.get_running_loop().run_in_executor(None, self._write, chunk)
        self.end += len(chunk)

    async def drain(self) -> None:
        """Wait for the chunk being written; a full disk is the server's problem (503)."""
        pending, self.pending = self.pending, None
        if pending is not None:
            await pending

    def _sync(self) -> None:
        self.file.flush()
        os.fdatasync(self.file.fileno())

    async def sync(self) -> None:
        """Everything written so far is on disk."""
        await self.drain()
        await asyncio.to_thread(self._sync)

    def digest(self) -> bytes | None:
        return None if self.hasher is None else bytes(self.hasher.digest())

    async def close(self) -> None:
        with contextlib.suppress(BaseException):
            await self.drain()
        await asyncio.to_thread(self.file.close)


@dataclasses.dataclass
class Stored:
    """The upload's row as this request last stored it, whether its body ends or breaks off:
    what the next store moves the offset from."""

    upload: UploadRow


class Uploads:
    """The uploads of every account on this node: create, find, write, delete, expire.
    With a ``bucket`` (several nodes), new uploads are held in it."""

    def __init__(
        self, database: Database, settings: Settings, bucket: S3Backend | None = None
    ) -> None:
        self.db = database
        self.settings = settings
        self.root = settings.data_path / "uploads"
        self._writing: dict[str, asyncio.Lock] = {}
        self._bucket = BucketUploads(database, bucket) if bucket is not None else None

    def path(self, upload_id: str) -> Path:
        return self.root / upload_id

    def url(self, upload_id: str) -> str:
        """The upload's URL (the creation's Location)."""
        return f"{self.settings.base_url}{UPLOADS_PATH}/{upload_id}"

    def named(self, url: str) -> str | None:
        """The ID of the upload ``url`` names: ``upload:ID`` or its URL on this server."""
        prefix = self.url("")
        if url.startswith(prefix) and UPLOAD_ID.fullmatch(url[len(prefix) :]):
            return url[len(prefix) :]
        return upload_reference(url)

    def _kept_until(self, now: float) -> float:
        return now + self.settings.upload_hours * 3600.0

    async def create(self, account: Account, length: int, metadata: str | None) -> UploadRow:
        """A new empty upload of ``length`` bytes; ``too_large`` past the largest upload or
        the account's unfinished bytes."""
        most = self.settings.max_upload_bytes
        if length > most:
            raise UploadRefused(
                "too_large", f"the upload is {length} bytes; the largest is {most} bytes"
            )
        upload_id = secrets.token_hex(16)
        now = time.time()
        multipart = None
        if self._bucket is None:
            await asyncio.to_thread(_create_file, self.path(upload_id))
        else:
            multipart = await self._bucket.start(upload_id)
        pending = self.settings.max_pending_upload_bytes
        if not await self.db.insert_upload(
            upload_id, account.id, length, metadata, now, self._kept_until(now), pending, multipart
        ):
            await self._discard(upload_id, multipart)
            raise UploadRefused(
                "too_large",
                f"this account's unfinished uploads would add up to more than {pending} bytes;"
                " finish or delete some first",
            )
        found = await self.db.upload(upload_id)
        assert found is not None  # just committed
        if length == 0:  # nothing to wait for: finished at once
            if self._bucket is not None:
                return await self._bucket.finish(found, self._kept_until)
            return (
                await self.db.advance_upload(upload_id, 0, 0, now, self._kept_until(now)) or found
            )
        return found

    def _held(self) -> BucketUploads:
        """Where an upload held in the bucket is written and read."""
        if self._bucket is None:
            raise UploadRefused("unavailable", "this node has no bucket for this upload")
        return self._bucket

    async def _settled(self, upload: UploadRow) -> UploadRow:
        """The upload, finished if it is whole in the bucket but its writer died before
        S3 joined its parts."""
        if (
            upload["multipart"] is None
            or upload["completed_at"] is not None
            or upload["received"] < upload["length"]
        ):
            return upload
        return await self._held().finish(upload, self._kept_until)

    async def find(self, account: Account, upload_id: str) -> UploadRow:
        """The account's upload; ``unknown`` if there is none, ``gone`` once expired."""
        found = await self.db.upload(upload_id) if UPLOAD_ID.fullmatch(upload_id) else None
        if found is None or found["account_id"] != account.id:
            raise UploadRefused("unknown", "no such upload")
        if found["expires_at"] <= time.time():
            raise UploadRefused("gone", "the upload has expired")
        return found

    @contextlib.asynccontextmanager
    async def _holding(
        self, upload_id: str, wait: float = LOCK_WAIT_SECONDS
    ) -> AsyncIterator[None]:
        """This node's one writer of ``upload_id``; ``busy`` after ``wait`` seconds. A
        client that lost its connection and resumes at once finds its old request still
        storing what it received: it waits for it rather than failing."""
        lock = self._writing.setdefault(upload_id, asyncio.Lock())
        try:
            async with asyncio.timeout(wait):
                await lock.acquire()
        except TimeoutError:
            raise UploadRefused("busy", "another request is writing this upload") from None
        try:
            yield
        finally:
            lock.release()
            if not lock.locked() and self._writing.get(upload_id) is lock:
                del self._writing[upload_id]

    async def offset(self, account: Account, upload_id: str) -> UploadRow:
        """The upload as it stands, after any write of it in progress here has stored what
        it received (or after ``LOCK_WAIT_SECONDS``, as it stands then)."""
        with contextlib.suppress(UploadRefused):
            async with self._holding(upload_id):
                pass
        return await self._settled(await self.find(account, upload_id))

    async def write(
        self,
        account: Account,
        upload_id: str,
        offset: int,
        body: AsyncIterable[bytes],
        *,
        size: int | None = None,
        checksum: Checksum | None = None,
    ) -> UploadRow:
        """Append ``body`` (``size`` bytes if known) at ``offset``, which must be where the
        upload stands; returns the upload as it then stands."""
        async with self._holding(upload_id):
            found = await self.find(account, upload_id)
            if found["received"] != offset:
                raise UploadRefused(
                    "offset", f"the upload holds {found['received']} bytes, not {offset}"
                )
            if size is not None and offset + size > found["length"]:
                raise UploadRefused(
                    "too_large", f"the body goes past the upload's length of {found['length']}"
                )
            if found["completed_at"] is not None or found["received"] == found["length"]:
                return await self._settled(found)
            if found["multipart"] is not None:
                return await self._held().receive(
                    found,
                    body,
                    checksum.algorithm if checksum else None,
                    checksum.digest if checksum else None,
                    self._kept_until,
                )
            return await self._receive(found, body, checksum)

    async def _receive(
        self, upload: UploadRow, body: AsyncIterable[bytes], checksum: Checksum | None
    ) -> UploadRow:
        """Stream ``body`` into the file; store what arrived, even when the body broke off
        (a lost connection, a shutdown), unless a checksum must cover it whole."""
        algorithm = checksum.algorithm if checksum else None
        path = self.path(upload["id"])
        writer = await asyncio.to_thread(Writer.open, path, upload["received"], algorithm)
        stored = Stored(upload)
        failure: BaseException | None = None
        try:
            try:
                await self._pour(stored, body, writer, checkpoints=checksum is None)
            except BaseException as exc:  # noqa: BLE001 - stored below, then raised again
                failure = exc
            if checksum is not None and failure is None:
                await writer.drain()
                if writer.digest() != checksum.digest:
                    raise UploadRefused("checksum", "the body does not match Upload-Checksum")
            if checksum is None or failure is None:
                await asyncio.shield(self._store(stored, writer))
        finally:
            await asyncio.shield(writer.close())
        if failure is not None:
            raise failure
        return stored.upload

    async def _pour(
        self, stored: Stored, body: AsyncIterable[bytes], writer: Writer, *, checkpoints: bool
    ) -> None:
        """Write the body's chunks, never past the upload's length; move the stored offset
        every ``CHECKPOINT_BYTES`` when ``checkpoints``. The body waits while a checkpoint
        flushes: the disk is the bottleneck of a long upload, and a flush that overlapped
        the next writes measured no faster, often slower (scripts/bench_tus.py)."""
        length = stored.upload["length"]
        async for chunk in body:
            if writer.end + len(chunk) > length:
                raise UploadRefused(
                    "too_large", f"the body goes past the upload's length of {length}"
                )
            await writer.write(chunk)
            if checkpoints and writer.end - stored.upload["received"] >= CHECKPOINT_BYTES:
                await self._store(stored, writer)

    async def _store(self, stored: Stored, writer: Writer) -> None:
        """The bytes written are on disk, then the upload's offset says so."""
        if writer.end == stored.upload["received"]:
            return
        await writer.sync()
        now = time.time()
        moved = await self.db.advance_upload(
            stored.upload["id"], stored.upload["received"], writer.end, now, self._kept_until(now)
        )
        if moved is None:  # another node moved it meanwhile: that writer's bytes win
            raise UploadRefused("offset", "another request wrote this upload meanwhile")
        stored.upload = moved

    async def delete(self, account: Account, upload_id: str) -> None:
        """Terminate the upload: its row and its bytes (a task reading it keeps its link)."""
        found = await self.find(account, upload_id)
        multipart = found["multipart"]
        async with self._holding(upload_id):
            # In the bucket, bytes first: if it fails, the row stays and a retry finishes.
            # A file goes after its row: a write finding the row gone makes no new file.
            if multipart is not None:
                await self._discard(upload_id, multipart)
            await self.db.delete_uploads([upload_id])
            if multipart is None:
                await self._discard(upload_id, None)

    async def _discard(self, upload_id: str, multipart: str | None) -> None:
        """The bytes of an upload go: its file, or its multipart upload and objects."""
        if multipart is None:
            await asyncio.to_thread(self.path(upload_id).unlink, True)
        else:
            await self._held().discard(upload_id, multipart)

    async def sweep(self, now: float, batch: int = 500) -> int:
        """Remove expired uploads, bytes first; returns how many went."""
        removed = 0
        while found := await self.db.expired_uploads(now, batch):
            ids = [u["id"] for u in found]
            for upload in found:
                await self._discard(upload["id"], upload["multipart"])
            await self.db.delete_uploads(ids)
            removed += len(ids)
            if len(found) < batch:
                break
        return removed

    async def source(
        self, upload_id: str, account: Hashable, dest_dir: Path, max_bytes: int | None
    ) -> Download:
        """A finished upload of ``account`` as a task's download, linked into ``dest_dir``."""
        found = await self.db.upload(upload_id)
        if found is not None and found["account_id"] == account:
            with contextlib.suppress(UploadRefused):
                found = await self._settled(found)
        if found is None or found["account_id"] != account or found["completed_at"] is None:
            raise errors.TaskError(
                errors.UNKNOWN_UPLOAD,
                f"upload {upload_id} is not a finished upload of this account",
            )
        size = found["length"]
        if max_bytes is not None and size > max_bytes:
            raise errors.TaskError(
                errors.DOWNLOAD_TOO_LARGE,
                f"the upload is {human_size(size)}; the limit is {human_size(max_bytes)}",
            )
        if found["multipart"] is None:
            path, mime = await asyncio.to_thread(_link, self.path(upload_id), Path(dest_dir))
        else:
            path, mime = await self._copy(found, Path(dest_dir))
        return Download(path=path, mime=mime, size=size, url=self.url(upload_id))

    async def _copy(self, upload: UploadRow, dest_dir: Path) -> tuple[Path, str | None]:
        """An upload held in the bucket as ``dest_dir/source.EXT``, read from there."""
        path = dest_dir / "source"
        try:
            await self._held().copy_to(upload["id"], path)
        except Exception as exc:
            raise errors.TaskError(
                errors.STORAGE_ERROR, f"could not read upload {upload['id']} from storage"
            ) from exc
        mime = await asyncio.to_thread(sniff_file, path)
        final = path.with_name(path.name + extension(mime))
        await asyncio.to_thread(path.rename, final)
        return final, mime


def _create_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(0o600)


def _link(stored: Path, dest_dir: Path) -> tuple[Path, str | None]:
    """Blocking: ``stored`` as ``dest_dir/source.EXT`` (a hard link, else a copy), with
    the type sniffed from its first bytes as a download's is."""
    try:
        with stored.open("rb") as f:
            mime = sniff(f.read(HEAD_SIZE))
    except FileNotFoundError:
        raise errors.TaskError(errors.UNKNOWN_UPLOAD, "the upload is gone") from None
    target = dest_dir / f"source{extension(mime)}"
    try:
        os.link(stored, target)
    except OSError:
        shutil.copyfile(stored, target)
    return target, mime


class UploadSources:
    """What tasks fetch with: an upload they name is read from storage
    (``Uploads.source``), for the account whose task asks (``fetching_account``);
    everything else goes to ``fetcher``, under the untrusted-URL rules."""

    def __init__(self, uploads: Uploads, fetcher: Fetcher) -> None:
        self.uploads = uploads
        self.fetcher = fetcher

    async def download(self, url: str, dest_dir: Path, *, max_bytes: int | None = None) -> Download:
        upload_id = self.uploads.named(url)
        if upload_id is None:
            return await self.fetcher.download(url, dest_dir, max_bytes=max_bytes)
        return await self.uploads.source(upload_id, fetching_account(), dest_dir, max_bytes)
