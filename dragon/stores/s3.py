"""The S3 backend: persistent and volatile files in an S3-compatible bucket (aiobotocore).

Selected when ``DRAGON_S3_BUCKET`` is set; ``DRAGON_S3_ENDPOINT_URL`` points at MinIO,
moto or another S3-compatible service, and ``DRAGON_S3_PUBLIC_URL`` at a CDN in front of
the bucket. Credentials come from the usual AWS variables. Files are served by the bucket
(or the CDN), not by dragon: the bucket's policy decides who may read them.

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
        if settings.s3_public_url:
            self.base_url = settings.s3_public_url.rstrip("/")
        elif self.endpoint:
            self.base_url = f"{self.endpoint.rstrip('/')}/{self.bucket}"
        else:
            self.base_url = f"https://{self.bucket}.s3.{self.region}.amazonaws.com"
        self._stack = contextlib.AsyncExitStack()
        self._client: AioBaseClient  # once started

    async def start(self) -> None:
        session = get_session()
        # Bounded retries and timeouts: a failing bucket ends the task with storage_error
        # in seconds, not after botocore's default patience.
        config = AioConfig(
            retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=60
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
