"""The S3 backend: persistent and volatile files in an S3-compatible bucket (aiobotocore).

Selected when ``DRAGON_S3_BUCKET`` is set; ``DRAGON_S3_ENDPOINT_URL`` points at MinIO,
moto or another S3-compatible service. Credentials come from the usual AWS variables.

Output URLs (docs/scaling.md): by default an output's URL is on this server
(``<public url>/storage/<location>``, as on local disk), which answers with a redirect to a
pre-signed GET of the object made at that moment. New buckets are private, and a signed URL
opens one object for a while whatever the bucket's policy; signing at each request keeps
the output URL working long after any one signature has expired. With
``DRAGON_S3_DIRECT_URLS`` (or a ``DRAGON_S3_PUBLIC_URL``, a CDN in front of the bucket) the
URLs point straight into the bucket instead, whose policy then decides who may read them.

Large files go up in parts; a failed upload is aborted so no partial object is left. A
failure says what went wrong but not where (``S3Failed``): botocore's texts name the
endpoint URL ("Could not connect to the endpoint URL: http://minio.internal:9000/..."),
an internal address that a status document must not show to the account.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from aiobotocore.client import AioBaseClient
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from dragon.config import Settings
from dragon.stores.backends import Backend

PART_SIZE = 16 * 1024 * 1024
COPY_CHUNK = 1024 * 1024
_URL = re.compile(r"\b[a-z][a-z0-9+.-]{0,20}://[^\s\"'<>]*", re.I)


class S3Failed(Exception):
    """An S3 failure told without URLs; the store makes it ``storage_error`` naming the
    output."""


@contextlib.contextmanager
def _storage_errors() -> Iterator[None]:
    """botocore's failures as ``S3Failed``, their text without URLs (the endpoint's)."""
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise S3Failed("S3: " + _URL.sub("the storage endpoint", str(exc))) from exc


def _code(exc: S3Failed) -> str:
    """The S3 error code behind ``exc`` (``NoSuchUpload``, ``404``...), or ""."""
    cause = exc.__cause__
    if isinstance(cause, ClientError):
        return str(cause.response.get("Error", {}).get("Code", ""))
    return ""


def _read(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


class S3Backend(Backend):
    name = "s3"

    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket
        self.endpoint = settings.s3_endpoint_url or None
        self.region = settings.s3_region
        self.presign_seconds = settings.s3_presign_seconds
        if settings.s3_public_url:
            self.bucket_url = settings.s3_public_url.rstrip("/")
        elif self.endpoint:
            self.bucket_url = f"{self.endpoint.rstrip('/')}/{self.bucket}"
        else:
            self.bucket_url = f"https://{self.bucket}.s3.{self.region}.amazonaws.com"
        self.direct = settings.s3_direct_urls or bool(settings.s3_public_url)
        # Where output URLs point: into the bucket, or at this server's redirects.
        self.base_url = self.bucket_url if self.direct else f"{settings.base_url}/storage"
        self._stack = contextlib.AsyncExitStack()
        self._client: AioBaseClient  # once started

    async def start(self) -> None:
        session = get_session()
        # Bounded retries and timeouts: a failing bucket ends the task with storage_error
        # in seconds, not after botocore's default patience.
        # Signature version 4 for pre-signed URLs too: botocore signs them with the legacy
        # version 2 in some set-ups (us-east-1 with an endpoint URL), which S3 refuses for
        # buckets made since June 2020.
        config = AioConfig(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            signature_version="s3v4",
        )
        self._client = await self._stack.enter_async_context(
            session.create_client(
                "s3", endpoint_url=self.endpoint, region_name=self.region, config=config
            )
        )

    async def close(self) -> None:
        await self._stack.aclose()

    async def save(self, location: str, path: Path, content_type: str) -> None:
        with _storage_errors():
            await self._save(location, path, content_type)

    async def _save(self, location: str, path: Path, content_type: str) -> None:
        size = path.stat().st_size
        if size <= PART_SIZE:
            body = await asyncio.to_thread(path.read_bytes)
            await self._client.put_object(
                Bucket=self.bucket, Key=location, Body=body, ContentType=content_type
            )
            return
        upload = await self._client.create_multipart_upload(
            Bucket=self.bucket, Key=location, ContentType=content_type
        )
        upload_id = upload["UploadId"]
        try:
            parts = []
            for number, offset in enumerate(range(0, size, PART_SIZE), start=1):
                chunk = await asyncio.to_thread(_read, path, offset, PART_SIZE)
                part = await self._client.upload_part(
                    Bucket=self.bucket,
                    Key=location,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                )
                parts.append({"ETag": part["ETag"], "PartNumber": number})
            await self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=location,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=location, UploadId=upload_id
                )
            raise

    async def delete(self, location: str) -> None:
        await self._client.delete_object(Bucket=self.bucket, Key=location)

    def url(self, location: str) -> str:
        return f"{self.base_url}/{location}"

    async def presigned(self, location: str, method: str = "GET") -> str:
        """A URL that lets its bearer ``GET`` (or ``HEAD``) the object at ``location`` for
        ``presign_seconds``. Made locally (an HMAC of the request with the credentials):
        no call to S3."""
        operation = "head_object" if method == "HEAD" else "get_object"
        with _storage_errors():
            url: str = await self._client.generate_presigned_url(
                operation,
                Params={"Bucket": self.bucket, "Key": location},
                ExpiresIn=self.presign_seconds,
            )
        return url

    # -- resumable uploads held in the bucket (engine/upload_parts.py) ---------------------
    async def start_parts(self, key: str) -> str:
        """A new multipart upload at ``key``; its UploadId."""
        with _storage_errors():
            answer = await self._client.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload_id: str = answer["UploadId"]
        return upload_id

    async def put_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        """Part ``number`` of the multipart upload; its ETag."""
        with _storage_errors():
            answer = await self._client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
            )
        etag: str = answer["ETag"]
        return etag

    async def join_parts(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> bool:
        """Complete the multipart upload with ``parts`` (number, ETag), ascending; False
        when S3 no longer knows it (completed or aborted before)."""
        listed = [{"PartNumber": number, "ETag": etag} for number, etag in parts]
        try:
            with _storage_errors():
                await self._client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": listed},
                )
        except S3Failed as exc:
            if _code(exc) == "NoSuchUpload":
                return False
            raise
        return True

    async def abort_parts(self, key: str, upload_id: str) -> None:
        """Abort the multipart upload (S3 drops its parts); one already gone is no error."""
        try:
            with _storage_errors():
                await self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id
                )
        except S3Failed as exc:
            if _code(exc) != "NoSuchUpload":
                raise

    async def put(self, key: str, body: bytes) -> None:
        with _storage_errors():
            await self._client.put_object(Bucket=self.bucket, Key=key, Body=body)

    async def size(self, key: str) -> int | None:
        """The size of the object at ``key``; None when there is none."""
        try:
            with _storage_errors():
                answer = await self._client.head_object(Bucket=self.bucket, Key=key)
        except S3Failed as exc:
            if _code(exc) in ("404", "NoSuchKey"):
                return None
            raise
        size: int = answer["ContentLength"]
        return size

    async def delete_under(self, prefix: str) -> None:
        """Delete every object whose key starts with ``prefix``."""
        page: dict[str, str] = {}
        with _storage_errors():
            while True:
                listing = await self._client.list_objects_v2(
                    Bucket=self.bucket, Prefix=prefix, **page
                )
                keys = [{"Key": o["Key"]} for o in listing.get("Contents", [])]
                if keys:
                    await self._client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                    )
                if not listing.get("IsTruncated"):
                    return
                page = {"ContinuationToken": listing["NextContinuationToken"]}

    async def copy_to(self, location: str, dest: Path) -> None:
        """Stream the object at ``location`` to ``dest``, a chunk in memory at a time."""
        with _storage_errors():
            answer = await self._client.get_object(Bucket=self.bucket, Key=location)
            async with answer["Body"] as body:
                f = await asyncio.to_thread(open, dest, "wb")
                try:
                    while chunk := await body.read(COPY_CHUNK):
                        await asyncio.to_thread(f.write, chunk)
                finally:
                    await asyncio.to_thread(f.close)

    async def read(self, location: str) -> bytes:
        """The whole object at ``location`` (small ones only: it is held in memory)."""
        with _storage_errors():
            answer = await self._client.get_object(Bucket=self.bucket, Key=location)
            async with answer["Body"] as body:
                data: bytes = await body.read()
        return data
