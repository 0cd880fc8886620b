"""``GET /v2/events``: the account's event feed, as NDJSON or Server-Sent Events.

``after`` (or, for SSE, the ``Last-Event-ID`` header a browser's EventSource sends when it
reconnects) is the cursor to resume from; without it the feed starts at the oldest change
still kept. ``follow=true`` keeps the response open for new changes; each account holds
at most its share of such streams (``AccountStreams``), its oldest closed first.
Credentials may come in the query string (``?secret=``), since EventSource cannot set
headers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from aiohttp import web

from dragon.api.openapi import BOOLEAN, STRING, documented, errors, query
from dragon.api.request import truthy
from dragon.api.state import state
from dragon.engine.events import EventFeed
from dragon.errors import RequestError
from dragon.handlers.credentials import BY_API_KEY, credentials_of
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


class AccountStreams:
    """Long-lived responses (event feeds, status streams, and requests that wait for tasks
    to end: ``block=true``, ``/v1/create_file``) per account, at most ``per_account``
    each: a new one past it closes that account's oldest.

    A stream holds a connection for as long as its reader likes, so without a share one
    account's followers could take every connection the server allows and lock other
    accounts out (their creates answered 503). The oldest goes because a reader that
    reconnects leaves its dead stream behind, and its newest is the one it reads.

    What the api key opens is counted apart from what the secret opens, each with its
    share: the api key is public in web pages, and whoever copies it must not be able to
    close the account's own streams and blocked requests by opening more.
    """

    def __init__(self, per_account: int) -> None:
        self.per_account = per_account
        self.closed = 0  # streams closed to make room, for tests and logs
        self._open: dict[tuple[int, bool], dict[asyncio.Task[object], web.Request]] = {}

    @contextlib.contextmanager
    def hold(self, account_id: int, request: web.Request) -> Iterator[None]:
        """Count the current request as one of the account's streams while inside (those
        of its api key, or those of its secret)."""
        task = asyncio.current_task()
        assert task is not None, "streams are served by a task"
        account = (account_id, request.get(BY_API_KEY, False))
        streams = self._open.setdefault(account, {})
        while len(streams) >= self.per_account:
            oldest = next(iter(streams))
            _close(oldest, streams.pop(oldest))
            self.closed += 1
        streams[task] = request
        try:
            yield
        finally:
            streams.pop(task, None)
            if not streams and self._open.get(account) is streams:
                del self._open[account]


def _close(task: asyncio.Task[object], request: web.Request) -> None:
    """End a stream now: its socket first (the descriptor is what is short), then its task."""
    if request.transport is not None:
        request.transport.close()
    task.cancel()


ACCOUNT_STREAMS = web.AppKey("account_streams", AccountStreams)


def streams(request: web.Request) -> AccountStreams:
    return request.app[ACCOUNT_STREAMS]


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
    account = await state(request).auth.authenticate(credentials_of(request, {}))
    sse = "text/event-stream" in request.headers.get("Accept", "")
    after = cursor(request, sse)
    follow = truthy(request.query.get("follow", ""))
    events_feed = feed(request)
    if after is not None:
        await events_feed.check(after)
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
    with (
        streams(request).hold(account.id, request),
        contextlib.suppress(ConnectionResetError, TimeoutError),
    ):
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
