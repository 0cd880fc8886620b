"""Reading requests the way real Dragon clients send them (docs/compat.md).

Bodies are JSON whatever their Content-Type (none, text/plain...), GET bodies are ignored,
and booleans arrive as JSON booleans or as strings in query strings.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from dragon.api.state import state
from dragon.errors import RequestError

# A request body that sends nothing for this long is answered 408 (or for the idle timeout,
# when shorter): bodies come in one go from real clients, and a connection waiting on a
# stalled body holds a descriptor and a place under the connection cap.
BODY_STALL_SECONDS = 10.0

# Deepest JSON a request may nest. Task parameters are stored (and sent back) as JSON, and
# the serialiser refuses past 254 levels, so deeper input is refused up front with a 400.
MAX_JSON_DEPTH = 64


async def json_body(request: web.Request) -> dict[str, Any]:
    if request.method in ("GET", "HEAD"):
        return {}
    settings = state(request).settings
    max_size = settings.max_body_bytes
    stall = min(settings.http_idle_timeout_seconds, BODY_STALL_SECONDS)
    if request.content_length is not None and request.content_length > max_size:
        raise RequestError("body", f"request body is over {max_size} bytes", status=413)
    raw = bytearray()  # read() may return part of the body: read until the end or the limit
    while len(raw) <= max_size:
        try:
            async with asyncio.timeout(stall):
                chunk = await request.content.read(max_size + 1 - len(raw))
        except TimeoutError:
            # The rest of the body is abandoned (ended here, so aiohttp does not linger
            # waiting for it) and the error middleware closes the connection after the 408.
            request.content.feed_eof()
            raise RequestError(
                "body", f"the request body stalled for {stall:g} s", status=408
            ) from None
        except ConnectionError:  # closed to make room (web.connections), or by the client
            raise RequestError("body", "the connection closed before the body ended") from None
        if not chunk:
            break
        raw += chunk
    if len(raw) > max_size:
        raise RequestError("body", f"request body is over {max_size} bytes", status=413)
    if not raw.strip():
        return {}
    try:
        body = parse_json(bytes(raw), "body", "body")
    except orjson.JSONDecodeError as exc:
        raise RequestError("body", f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise RequestError("body", "body must be a JSON object")
    return body


def parse_json(raw: bytes, name: str, location: str) -> object:
    """``raw`` parsed as JSON, refused with a 400 on ``name`` when it nests too deep.

    Every JSON a request carries goes through here (bodies, and query-string values that
    hold JSON), so every one meets the same depth limit: deeper input would parse, then
    fail to store or to hash with a 500. Malformed JSON raises ``orjson.JSONDecodeError``
    for the caller to decide (a body is refused, a query value stays a string).
    """
    value = orjson.loads(raw)
    # Only text with more brackets than the limit can nest deeper: most skip the walk.
    brackets = raw.count(b"[") + raw.count(b"{")
    if (
        isinstance(value, dict | list)
        and brackets > MAX_JSON_DEPTH
        and too_deep(value, MAX_JSON_DEPTH)
    ):
        raise RequestError(name, f"JSON nests deeper than {MAX_JSON_DEPTH} levels", location)
    return value


def too_deep(value: dict[str, Any] | list[Any], limit: int) -> bool:
    """Does ``value`` nest lists and objects more than ``limit`` levels (iteratively)?"""
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def json_response(value: object) -> web.Response:
    return web.Response(body=orjson.dumps(value), content_type="application/json")


def truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
