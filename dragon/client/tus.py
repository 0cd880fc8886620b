"""The tus 1.0.0 client behind ``Client.upload`` and ``AsyncClient.upload``, minus the I/O.

A file goes up to ``/v2/uploads`` (docs/api.md, "Uploads") as the protocol's core and its
creation and checksum extensions say: a POST creates the upload (its length, and the file's
name as metadata), then PATCHes append chunks at the offset the server holds, each with its
SHA-256 (``Upload-Checksum``) so a corrupted chunk is refused (460) rather than stored. A
cut connection, a 409 (the offset moved) or a refused chunk is followed by a HEAD, which
says how much the server kept durably, and the upload goes on from there: what was sent
before the cut is not sent again. ``url`` resumes an upload started earlier (by this or
another process) the same way.

The creation is retried only when its connection could not be opened (as a create is: a
POST that went out may have made an upload). The other requests may run twice, so any
failure of theirs is retried, up to ``retries`` failures in a row; each chunk that goes
through starts the count again.

Credentials go to the API's own origin only: the ``Location`` the server answers is
followed on the client's server URL (the server may name itself otherwise, behind a proxy).
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from dragon.client import wire

TUS_VERSION = "1.0.0"
UPLOADS_PATH = "/v2/uploads"
CHUNK_BYTES = 8 * 1024**2
OCTETS = "application/offset+octet-stream"
RETRYABLE = frozenset({409, 423, 429, 460, 500, 502, 503, 504})


@dataclass(frozen=True)
class Upload:
    """A finished upload: ``ref`` (``upload:ID``) or ``url`` is what a task's ``url`` (or
    any parameter that takes a URL) takes to read it from the server's storage."""

    id: str
    url: str
    size: int

    @property
    def ref(self) -> str:
        return f"upload:{self.id}"


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None


class Transfer:
    """One file's upload: which request comes next, and what each answer means."""

    def __init__(
        self,
        server: str,
        path: str | os.PathLike[str],
        *,
        retries: int,
        chunk_bytes: int = CHUNK_BYTES,
        url: str | None = None,
    ) -> None:
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be 1 or more")
        self.server = server
        self.path = Path(path)
        self.size = self.path.stat().st_size
        self.retries = retries
        self.chunk_bytes = chunk_bytes
        self.location = url  # the upload's URL, as the server named it
        self.offset: int | None = None if url else 0  # None: to be asked with a HEAD
        self.failures = 0
        self._last: Request | None = None

    @property
    def done(self) -> bool:
        return self.location is not None and self.offset == self.size

    def next_request(self, file: BinaryIO) -> Request | None:
        """The next request (reading its chunk from ``file``), or None when all is stored.

        Blocking file I/O: the async client calls it in a thread."""
        headers = {"Tus-Resumable": TUS_VERSION}
        if self.location is None:
            name = base64.b64encode(self.path.name.encode()).decode()
            headers.update({"Upload-Length": str(self.size), "Upload-Metadata": f"filename {name}"})
            request = Request("POST", self.server + UPLOADS_PATH, headers)
        elif self.offset is None:
            request = Request("HEAD", self._on_server(), headers)
        elif self.offset < self.size:
            file.seek(self.offset)
            chunk = file.read(min(self.chunk_bytes, self.size - self.offset))
            digest = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
            headers.update(
                {
                    "Upload-Offset": str(self.offset),
                    "Content-Type": OCTETS,
                    "Upload-Checksum": f"sha256 {digest}",
                }
            )
            request = Request("PATCH", self._on_server(), headers, chunk)
        else:
            return None
        self._last = request
        return request

    def answered(self, response: httpx.Response) -> float:
        """Take the answer to the last request: seconds to wait before the next one, or
        raise ``DragonError`` for an answer no retry changes (bad credentials, too large,
        an upload that expired)."""
        method = self._last.method if self._last else ""
        status = response.status_code
        if method == "POST" and status == 201 and response.headers.get("Location"):
            self.location = urljoin(self.server + UPLOADS_PATH, response.headers["Location"])
            self.offset = _offset(response, "0")
        elif method == "HEAD" and status in (200, 204):
            self.offset = _offset(response)
            return 0.0
        elif method == "PATCH" and status == 204:
            self.offset = _offset(response)
        elif (method != "POST" and status in RETRYABLE) or wire.retryable_status(response):
            return self._again(wire.retry_after(response), wire.error_from(response))
        else:
            raise wire.error_from(response)
        self.failures = 0
        return 0.0

    def failed(self, exc: Exception) -> float:
        """The connection failed: seconds to wait before asking where the upload stands."""
        creating = self._last is not None and self._last.method == "POST"
        if creating and not wire.retryable_error(exc, safe=False):
            raise wire.unreachable(self.server, exc) from exc
        return self._again(None, wire.unreachable(self.server, exc))

    def result(self) -> Upload:
        assert self.location is not None
        upload_id = urlsplit(self.location).path.rstrip("/").rsplit("/", 1)[-1]
        return Upload(upload_id, self.location, self.size)

    def _again(self, hinted: float | None, error: wire.DragonError) -> float:
        """Another try, after a HEAD for the offset once the upload exists; ``error`` when
        the failures in a row are more than the retries."""
        if self.failures >= self.retries:
            raise error
        self.failures += 1
        if self.location is not None:
            self.offset = None
        return wire.backoff(self.failures - 1, hinted)

    def _on_server(self) -> str:
        """The upload's URL on the client's own server (scheme, host and port)."""
        assert self.location is not None
        ours, theirs = urlsplit(self.server), urlsplit(self.location)
        return urlunsplit((ours.scheme, ours.netloc, theirs.path, theirs.query, ""))


def _offset(response: httpx.Response, default: str | None = None) -> int:
    """The answer's ``Upload-Offset``; a server that sends none, or not a number, is not
    speaking tus (``DragonError`` with the answer's status)."""
    value = response.headers.get("Upload-Offset", default)
    if value is None or not value.isdigit():
        raise wire.DragonError(
            response.status_code, message=f"HTTP {response.status_code} without an Upload-Offset"
        )
    return int(value)
