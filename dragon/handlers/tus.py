"""Resumable uploads over HTTP: tus 1.0.0 at ``/v2/uploads`` (docs/api.md, "Uploads").

The core protocol (HEAD for the offset, PATCH to append) and the creation,
creation-with-upload, expiration, checksum and termination extensions. Requests are
authenticated as creates are (the secret, or an api key from an allowed Referer or
Origin), and every answer carries the CORS headers a browser on another origin needs to
read the protocol's headers (``handlers.errors.UPLOAD_CORS_HEADERS``). Refusals follow the
protocol's statuses (``handlers.errors.UPLOAD_STATUSES``) with the API's error body. The
work is ``dragon.engine.resumable``'s; this module reads the headers and streams the body.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from dragon.api.openapi import Operation, documented, errors, path_parameter
from dragon.api.state import state
from dragon.database.rows import UploadRow
from dragon.engine.auth import Account
from dragon.engine.resumable import CHECKSUMS, Checksum
from dragon.errors import RequestError
from dragon.handlers.credentials import credentials_of
from dragon.handlers.errors import TUS_VERSION, UPLOADS_PATH

EXTENSIONS = "creation,creation-with-upload,expiration,checksum,termination"
OCTETS = "application/offset+octet-stream"
MAX_METADATA = 4096  # characters of Upload-Metadata kept with an upload
READ_BYTES = 1024**2  # most of the body handed to the disk at once
MAX_DIGITS = 19  # an Upload-Length or Upload-Offset longer than this is no int64


def _header_error(name: str, description: str, status: int = 400) -> RequestError:
    return RequestError(name, description, "header", status)


def _check_version(request: web.Request) -> None:
    """Every request but OPTIONS names the protocol's version (412 otherwise)."""
    given = request.headers.get("Tus-Resumable")
    if given != TUS_VERSION:
        raise RequestError(
            "Tus-Resumable",
            f"this server speaks tus {TUS_VERSION}; the request says {given!r}",
            "header",
            412,
            {"Tus-Version": TUS_VERSION},
        )


def _integer(request: web.Request, name: str) -> int:
    value = request.headers.get(name, "").strip()
    if not (value.isascii() and value.isdigit() and len(value) <= MAX_DIGITS):
        raise _header_error(name, f"{name} must be a whole number of bytes, 0 or more")
    return int(value)


def _metadata(header: str | None) -> str | None:
    """Upload-Metadata as sent, once checked: comma-separated ``key base64value`` pairs."""
    if header is None or not header.strip():
        return None
    if len(header) > MAX_METADATA:
        raise _header_error("Upload-Metadata", f"at most {MAX_METADATA} characters")
    for pair in header.split(","):
        key, _, value = pair.strip().partition(" ")
        try:
            base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = ""
        if not key or not key.isascii() or " " in value.strip():
            raise _header_error(
                "Upload-Metadata", "must be comma-separated pairs of a key and a base64 value"
            )
    return header.strip()


def _checksum(header: str | None) -> Checksum | None:
    """Upload-Checksum: ``ALGORITHM BASE64DIGEST``."""
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm.lower() not in CHECKSUMS:
        raise _header_error(
            "Upload-Checksum", f"the algorithms are {', '.join(CHECKSUMS)}, not {algorithm!r}"
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _header_error("Upload-Checksum", "the digest must be base64") from None
    return Checksum(algorithm.lower(), digest)


def _expires(upload: UploadRow) -> dict[str, str]:
    """Upload-Expires of an unfinished upload (the expiration extension)."""
    if upload["completed_at"] is not None:
        return {}
    return {"Upload-Expires": email.utils.formatdate(upload["expires_at"], usegmt=True)}


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; a stall past the idle timeout is a 408, a lost
    connection a 400 (the engine has stored what came before either)."""
    stall = state(request).settings.http_idle_timeout_seconds
    while True:
        try:
            async with asyncio.timeout(stall):
                chunk = await request.content.read(READ_BYTES)
        except TimeoutError:
            request.content.feed_eof()
            raise RequestError("body", f"the body stalled for {stall:g} s", status=408) from None
        except ConnectionError:
            raise RequestError("body", "the connection closed before the body ended") from None
        if not chunk:
            return
        yield chunk


async def _authenticated(request: web.Request) -> Account:
    _check_version(request)
    return await state(request).auth.authenticate(credentials_of(request))


async def _write(request: web.Request, account: Account, upload_id: str, offset: int) -> UploadRow:
    if request.content_type != OCTETS:
        raise _header_error("Content-Type", f"the body must be sent as {OCTETS}", 415)
    return await state(request).uploads.write(
        account,
        upload_id,
        offset,
        _body(request),
        size=request.content_length,
        checksum=_checksum(request.headers.get("Upload-Checksum")),
    )


# -- what the OpenAPI document says of these routes ------------------------------------------
UPLOAD_ID = path_parameter("upload_id", "the last segment of the upload's Location")


def _header(name: str, description: str, required: bool = False) -> Operation:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "schema": {"type": "string"},
        "description": description,
    }


RESUMABLE = _header("Tus-Resumable", f"the protocol version, {TUS_VERSION}", required=True)
CHECKSUM = _header("Upload-Checksum", "ALGORITHM BASE64DIGEST of the body (sha1, sha256...)")
OCTET_BODY = {"content": {OCTETS: {"schema": {"type": "string", "format": "binary"}}}}


def _answer(description: str, *headers: str) -> Operation:
    string = {"schema": {"type": "string"}}
    return {"description": description, "headers": dict.fromkeys(headers, string)}


@documented(
    {
        "summary": "Create a resumable upload (tus 1.0.0; creation-with-upload)",
        "description": "HEAD on the upload's Location answers its Upload-Offset; OPTIONS on"
        " /v2/uploads answers Tus-Version, Tus-Extension, Tus-Max-Size and"
        " Tus-Checksum-Algorithm. Use the upload in a task as `upload:ID` or by its URL.",
        "operationId": "uploads_create",
        "tags": ["uploads"],
        "parameters": [
            RESUMABLE,
            _header("Upload-Length", "the upload's size in bytes", required=True),
            _header("Upload-Metadata", "comma-separated `key base64value` pairs"),
            CHECKSUM,
        ],
        "requestBody": OCTET_BODY,
        "responses": {
            "201": _answer("created", "Location", "Upload-Offset", "Upload-Expires"),
            **errors(400, 401, 408, 412, 413, 460, 503),
        },
    }
)
async def create(request: web.Request) -> web.Response:
    """Create an upload; with a body, its first bytes (creation-with-upload)."""
    account = await _authenticated(request)
    if "Upload-Defer-Length" in request.headers:
        raise _header_error("Upload-Defer-Length", "send Upload-Length: its length is needed")
    length = _integer(request, "Upload-Length")
    metadata = _metadata(request.headers.get("Upload-Metadata"))
    uploads = state(request).uploads
    upload = await uploads.create(account, length, metadata)
    headers = {"Location": uploads.url(upload["id"])}
    if request.body_exists and request.content_type == OCTETS:
        upload = await _write(request, account, upload["id"], 0)
        headers["Upload-Offset"] = str(upload["received"])
    return web.Response(status=201, headers={**headers, **_expires(upload)})


async def offset(request: web.Request) -> web.Response:
    """HEAD: where the upload stands (Upload-Offset, Upload-Length, Upload-Metadata)."""
    account = await _authenticated(request)
    upload = await state(request).uploads.offset(account, request.match_info["upload_id"])
    headers = {
        "Upload-Offset": str(upload["received"]),
        "Upload-Length": str(upload["length"]),
        "Cache-Control": "no-store",
        **_expires(upload),
    }
    if upload["metadata"]:
        headers["Upload-Metadata"] = upload["metadata"]
    return web.Response(status=200, headers=headers)


@documented(
    {
        "summary": "Append to a resumable upload (tus 1.0.0)",
        "operationId": "uploads_patch",
        "tags": ["uploads"],
        "parameters": [
            UPLOAD_ID,
            RESUMABLE,
            _header("Upload-Offset", "where the body goes: the upload's offset", required=True),
            CHECKSUM,
        ],
        "requestBody": {"required": True, **OCTET_BODY},
        "responses": {
            "204": _answer("stored", "Upload-Offset", "Upload-Expires"),
            **errors(400, 401, 404, 408, 409, 410, 412, 413, 415, 423, 460, 503),
        },
    }
)
async def append(request: web.Request) -> web.Response:
    """PATCH: the body goes at Upload-Offset, which must be where the upload stands."""
    account = await _authenticated(request)
    upload_id = request.match_info["upload_id"]
    upload = await _write(request, account, upload_id, _integer(request, "Upload-Offset"))
    return web.Response(
        status=204, headers={"Upload-Offset": str(upload["received"]), **_expires(upload)}
    )


@documented(
    {
        "summary": "Delete a resumable upload (tus termination)",
        "operationId": "uploads_delete",
        "tags": ["uploads"],
        "parameters": [UPLOAD_ID, RESUMABLE],
        "responses": {
            "204": {"description": "deleted"},
            **errors(401, 404, 410, 412, 423, 503),
        },
    }
)
async def terminate(request: web.Request) -> web.Response:
    """DELETE: the upload and its bytes go."""
    account = await _authenticated(request)
    await state(request).uploads.delete(account, request.match_info["upload_id"])
    return web.Response(status=204)


OVERRIDES = {"PATCH": append, "DELETE": terminate, "HEAD": offset}


@documented(
    {
        "summary": "PATCH or DELETE for clients that can only POST (X-HTTP-Method-Override)",
        "operationId": "uploads_override",
        "tags": ["uploads"],
        "parameters": [
            UPLOAD_ID,
            RESUMABLE,
            _header("X-HTTP-Method-Override", "PATCH or DELETE", required=True),
        ],
        "responses": {
            "204": _answer("done", "Upload-Offset"),
            **errors(400, 401, 404, 409, 410, 412, 413, 415, 423, 460, 503),
        },
    }
)
async def override(request: web.Request) -> web.Response:
    """POST with X-HTTP-Method-Override: the request as that method."""
    method = request.headers.get("X-HTTP-Method-Override", "").strip().upper()
    handler = OVERRIDES.get(method)
    if handler is None:
        raise _header_error("X-HTTP-Method-Override", "must be PATCH or DELETE")
    return await handler(request)


async def options(request: web.Request) -> web.Response:
    """OPTIONS: the protocol's version, extensions, largest upload and checksums."""
    return web.Response(
        status=204,
        headers={
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": EXTENSIONS,
            "Tus-Max-Size": str(state(request).settings.max_upload_bytes),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
        },
    )


# The routes of the protocol, ``(method, path, handler)``.
ITEM = UPLOADS_PATH + "/{upload_id}"
ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", UPLOADS_PATH, create),
    ("OPTIONS", UPLOADS_PATH, options),
    ("HEAD", ITEM, offset),
    ("PATCH", ITEM, append),
    ("DELETE", ITEM, terminate),
    ("POST", ITEM, override),
    ("OPTIONS", ITEM, options),
]
