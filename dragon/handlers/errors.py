"""The one place where failures become HTTP answers, plus CORS on every API answer.

Request-level problems use the Dragon API's shape (Cornice's):
``{"status": "error", "errors": [{"name", "location", "description"}]}``.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from dragon.database.interface import Busy, DiskFull
from dragon.errors import (
    CursorGone,
    LowDisk,
    NoSuchPath,
    NoSuchTemplate,
    Overloaded,
    RateLimited,
    Refused,
    RequestError,
    SecretRequired,
    TooManyActive,
    Unauthorized,
    UploadRefused,
)

log = logging.getLogger("dragon.http")

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "86400",
}

# Resumable uploads (tus, ``/v2/uploads``): a browser on another origin sends the protocol's
# headers (a preflight for each) and must read the answers' (the creation's Location, the
# offset to resume from), which CORS hides unless exposed.
UPLOADS_PATH = "/v2/uploads"
TUS_VERSION = "1.0.0"
UPLOAD_CORS_HEADERS = {
    **CORS_HEADERS,
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Tus-Resumable, Upload-Length,"
    " Upload-Metadata, Upload-Offset, Upload-Checksum, Upload-Defer-Length, Upload-Concat,"
    " X-HTTP-Method-Override, X-Requested-With",
    "Access-Control-Expose-Headers": "Location, Upload-Offset, Upload-Length, Upload-Metadata,"
    " Upload-Expires, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size,"
    " Tus-Checksum-Algorithm",
    "Tus-Resumable": TUS_VERSION,
}
# The status of each ``UploadRefused.reason`` (460: the checksum extension's own).
UPLOAD_STATUSES = {
    "unknown": 404,
    "gone": 410,
    "offset": 409,
    "too_large": 413,
    "checksum": 460,
    "busy": 423,
    "invalid": 400,
    "unavailable": 503,
}


# An answer (not a preflight) needs only its origin allowed, and for uploads, the headers a
# page may read exposed.
ANSWER_CORS_HEADERS = {"Access-Control-Allow-Origin": "*"}
UPLOAD_ANSWER_CORS_HEADERS = {
    name: UPLOAD_CORS_HEADERS[name]
    for name in ("Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "Tus-Resumable")
}


def _uploads(path: str) -> bool:
    return path == UPLOADS_PATH or path.startswith(UPLOADS_PATH + "/")


def answer_cors_headers(path: str) -> dict[str, str]:
    """The CORS headers of an answer at ``path`` (an upload's expose the protocol's)."""
    return UPLOAD_ANSWER_CORS_HEADERS if _uploads(path) else ANSWER_CORS_HEADERS


def cors_headers(path: str) -> dict[str, str]:
    """The CORS headers of a preflight at ``path`` (and the tus version for uploads)."""
    return UPLOAD_CORS_HEADERS if _uploads(path) else CORS_HEADERS


class DatabaseHealth:
    """When a write last failed because the database is read-only (for ``/healthz``).

    SQLite answers ``attempt to write a readonly database`` when its file or folder lost
    write permission, its filesystem was remounted read-only, or the file was replaced
    under it. Creates then get 503 (not 500) and ``/healthz`` stops saying ok.
    """

    RECENT_SECONDS = 60.0

    def __init__(self) -> None:
        self.read_only_at: float | None = None

    def failed_read_only(self) -> None:
        self.read_only_at = time.monotonic()

    def recently_read_only(self) -> bool:
        at = self.read_only_at
        return at is not None and time.monotonic() - at < self.RECENT_SECONDS


DATABASE_HEALTH = web.AppKey("dragon_database_health", DatabaseHealth)


def read_only_error(exc: BaseException) -> bool:
    """Is ``exc`` SQLite refusing a write because the database is read-only?"""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return isinstance(exc, sqlite3.OperationalError) and (
        name.startswith("SQLITE_READONLY") or "readonly database" in str(exc)
    )


def error_response(
    status: int,
    name: str,
    description: str,
    location: str = "body",
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {
        "status": "error",
        "errors": [{"name": name, "location": location, "description": description}],
    }
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def refused_response(exc: Refused) -> web.Response:
    """The HTTP answer to a request the engine refused (docs/api.md, docs/compat.md)."""
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        status, name, location = 401, "authorization", exc.source or "header"
        headers["WWW-Authenticate"] = "Secret"
    elif isinstance(exc, SecretRequired):
        status, name, location = 403, "authorization", exc.source
    elif isinstance(exc, TooManyActive):  # 401, as the original service answered it
        status, name, location = 401, "tasks", "body"
    elif isinstance(exc, RateLimited):
        status, name, location = 429, "tasks", "body"
    elif isinstance(exc, Overloaded):
        status, name, location = 503, "tasks", "body"
    elif isinstance(exc, LowDisk):
        status, name, location = 503, "disk", "server"
    elif isinstance(exc, NoSuchPath):
        status, name, location = 404, "url", "path"
    elif isinstance(exc, NoSuchTemplate):
        status, name, location = 404, "name", "path"
    elif isinstance(exc, CursorGone):
        status, name, location = 410, "after", "querystring"
    elif isinstance(exc, UploadRefused):
        status, name, location = UPLOAD_STATUSES[exc.reason], "upload", "header"
    else:
        raise TypeError(f"no HTTP answer for {type(exc).__name__}")
    if exc.retry_after is not None:
        headers["Retry-After"] = str(math.ceil(exc.retry_after))
    response = error_response(status, name, exc.description, location, headers)
    if status == 460:  # no reason phrase of its own in HTTP's registry
        response.set_status(460, "Checksum Mismatch")
    return response


def http_error_response(exc: web.HTTPException) -> web.Response:
    """The documented answer to an HTTP error aiohttp raised (an unknown path, a method the
    path does not take, a body over the limit)."""
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return error_response(413, "body", exc.text or "request body is too large")
    allow = exc.headers.get("Allow")  # a 405's: the methods the path takes
    headers = {"Allow": allow} if allow else None
    return error_response(exc.status, "url", exc.reason, "path", headers)


def preflight_response(path: str) -> web.Response:
    """The answer to a CORS preflight (``OPTIONS``) on a path with no handler of its own."""
    return web.Response(status=204, headers=cors_headers(path))


def _why(exc: RequestPayloadError) -> str:
    """aiohttp's reason, without its ``400, message:`` prefix, on one short line."""
    text = " ".join(str(exc).split())
    return text.partition("message: ")[2][:200] or text[:200]


def failure_response(request: web.Request, exc: Exception) -> web.Response:
    """The answer to a handler's failure: a request refused (malformed, or by the engine),
    a database that cannot take the write now, or a bug (500, logged with its traceback:
    called while ``exc`` is being handled)."""
    if isinstance(exc, RequestError):
        headers = {"WWW-Authenticate": "Secret"} if exc.status == 401 else {}
        response = error_response(
            exc.status, exc.name, exc.description, exc.location, {**headers, **exc.headers}
        )
        if exc.status == 408:  # the client stalled: do not wait for the rest of its body
            response.force_close()
        return response
    if isinstance(exc, RequestPayloadError):  # a body aiohttp could not decode (gzip, chunks)
        response = error_response(400, "body", f"the request body is malformed: {_why(exc)}")
        # The rest cannot be read either: ended here, so aiohttp does not linger reading it
        # (and log the same failure again, with a traceback), and the connection closes.
        request.content.feed_eof()
        response.force_close()
        return response
    if isinstance(exc, Refused):
        return refused_response(exc)
    if isinstance(exc, Busy):
        return error_response(
            503, "database", "the database is busy; retry shortly", headers={"Retry-After": "1"}
        )
    if isinstance(exc, DiskFull):
        return error_response(
            503,
            "disk",
            "the server's disk is full; nothing was stored, retry later",
            "server",
            {"Retry-After": "60"},
        )
    if read_only_error(exc):
        log.error(
            "the database is read-only: %s %s refused (%s)", request.method, request.path, exc
        )
        if DATABASE_HEALTH in request.app:
            request.app[DATABASE_HEALTH].failed_read_only()
        return error_response(
            503,
            "database",
            "the database is read-only (a disk or permission problem on"
            " the server); nothing was stored, retry later",
            headers={"Retry-After": "30"},
        )
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "server", "internal server error", "server")
