"""``GET /v2/events``: the account's event feed, as NDJSON or Server-Sent Events.

``after`` (or, for SSE, the ``Last-Event-ID`` header a browser's EventSource sends when it
reconnects) is the cursor to resume from; without it the feed starts at the oldest change
still kept. ``follow=true`` keeps the response open for new changes. Credentials may come
in the query string (``?secret=``), since EventSource cannot set headers.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from dragon.api.openapi import BOOLEAN, STRING, documented, errors, query
from dragon.api.request import truthy
from dragon.api.state import state
from dragon.engine.events import CursorGone, EventFeed
from dragon.errors import RequestError
from dragon.handlers.errors import CORS_HEADERS

HEARTBEAT_SECONDS = 15.0
MAX_CURSOR = 2**63 - 1


def cursor(request: web.Request, sse: bool) -> int | None:
    raw = request.query.get("after")
    if raw is None and sse:
        raw = request.headers.get("Last-Event-ID")
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_CURSOR:  # cursors are 64-bit in both databases
        raise RequestError(
            "after", f"after must be a cursor (an integer >= 0), not {raw[:40]!r}", "querystring"
        )
    return value


def feed(request: web.Request) -> EventFeed:
    st = state(request)
    return EventFeed(st.db, st.bus, st.settings.events_days)


@documented(
    {
        "summary": "The account's event feed (NDJSON, or Server-Sent Events with Accept:"
        " text/event-stream)",
        "operationId": "events",
        "tags": ["v2"],
        "parameters": [
            query(
                "after",
                {"type": "integer", "minimum": 0, "maximum": MAX_CURSOR},
                "the cursor to resume from (or the Last-Event-ID header, for SSE)",
            ),
            query("follow", BOOLEAN, "keep the response open for new changes"),
        ],
        "responses": {
            "200": {
                "description": "one event per line (or per SSE message)",
                "content": {
                    "application/x-ndjson": {"schema": STRING},
                    "text/event-stream": {"schema": STRING},
                },
            },
            **errors(400, 401, 410, 503),
        },
    }
)
async def events(request: web.Request) -> web.StreamResponse:
    account = await state(request).auth.authenticate(request, {})
    sse = "text/event-stream" in request.headers.get("Accept", "")
    after = cursor(request, sse)
    follow = truthy(request.query.get("follow", ""))
    events_feed = feed(request)
    if after is not None:
        try:
            await events_feed.check(after)
        except CursorGone as exc:
            raise RequestError("after", str(exc), "querystring", status=410) from None
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8"
            if sse
            else "application/x-ndjson; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **CORS_HEADERS,
        }
    )
    await response.prepare(request)
    stall = state(request).settings.stream_write_timeout_seconds
    lines = events_feed.lines(account.id, after or 0, follow, HEARTBEAT_SECONDS if sse else None)
    # A reader that stops reading is cut off after the write timeout, like status streams.
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        async with contextlib.aclosing(lines):
            if sse:
                await response.write(b"retry: 2000\n\n")
            async for item in lines:
                if item is None:
                    chunk = b": keep-alive\n\n"
                elif sse:
                    chunk = b"id: %d\ndata: %s\n\n" % item
                else:
                    chunk = item[1] + b"\n"
                async with asyncio.timeout(stall):
                    await response.write(chunk)
        await response.write_eof()
    return response
