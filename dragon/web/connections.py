"""Client connections may not use up the descriptors the tasks need.

Each open connection holds a file descriptor; a client that opens hundreds and sends
nothing would otherwise leave none for the tasks' downloads, files and tools, and every
task would fail. Two defences:

- ``DRAGON_HTTP_IDLE_TIMEOUT_SECONDS`` closes a connection that is idle between requests
  or slow to send its request head (aiohttp's keep-alive timer, which runs from the moment
  a connection opens and is not reset by a partial head), and ``api.request`` answers
  408 when a request body stalls that long.
- At most ``connection_limit`` connections are open at once. When a new one would pass
  the limit, the oldest idle connection (waiting for a request, or for the rest of a
  request head, or answered and dropping the rest of a body nobody read) is closed to
  make room, as nginx reuses its keep-alive connections; if
  none is idle, the oldest one still sending its request body is answered 503 and closed
  (nothing was done for it yet, and a body that stalls is cut off after
  ``api.request.BODY_STALL_SECONDS`` anyway). So sockets that send a head and a byte of
  body, however many a client opens, cannot lock new clients out. Only when every
  connection is in the middle of handling a request is the new one answered a bare 503
  with ``Retry-After`` and closed, so its descriptor is freed at once. Long-lived streams
  and requests waiting for tasks to end are shared between accounts by
  ``handlers.events.AccountStreams`` (each account holds at most ``streams_per_account``
  of them; its oldest goes first).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from dragon.config import Settings

log = logging.getLogger("dragon.http")

# Descriptors kept for everything but client connections: the database's connections, the
# process pool's pipes, logs, listening sockets; and per processing slot a download socket,
# its file, a tool's three pipes and its outputs.
BASE_RESERVE = 128
PER_SLOT = 8
MIN_CONNECTIONS = 32
MIN_STREAMS_PER_ACCOUNT = 4

_BODY = (
    b'{"status": "error", "errors": [{"name": "server", "location": "server",'
    b' "description": "too many open connections; retry shortly"}]}'
)
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 5\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BODY), _BODY)
)


def raise_descriptor_limit(most: int = 65536) -> int:
    """Raise this process's soft descriptor limit to its hard one (at most ``most``)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = most if hard == resource.RLIM_INFINITY else min(hard, most)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        soft = wanted
    return soft


def connection_limit(settings: Settings) -> int:
    """``DRAGON_MAX_CONNECTIONS``, or what the descriptor limit leaves after the tasks."""
    if settings.max_connections > 0:
        return settings.max_connections
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65536
    slots = settings.heavy_slots + settings.interactive_slots + settings.light_concurrency
    return max(MIN_CONNECTIONS, soft - BASE_RESERVE - PER_SLOT * slots)


def idle(handler: RequestHandler) -> bool:
    """Whether an aiohttp connection waits for a request (aiohttp's own test before it
    closes a keep-alive connection) and is not already closing."""
    waiter = getattr(handler, "_waiter", None)
    return (
        getattr(handler, "transport", None) is not None
        and waiter is not None
        and not waiter.done()
        and not getattr(handler, "_request_in_progress", True)
    )


def reading_body(handler: RequestHandler) -> bool:
    """Whether an aiohttp connection's request waits for more of its body: the handler has
    done nothing it cannot drop yet (the body is read before anything is decided)."""
    request = getattr(handler, "_current_request", None)
    waiter = getattr(getattr(request, "content", None), "_waiter", None)
    return (
        getattr(handler, "transport", None) is not None and waiter is not None and not waiter.done()
    )


# Connections whose request was answered before its body was read (a GET with a body, an
# unknown route, a refusal), by id: aiohttp then "lingers", reading and dropping the rest of
# the body for up to 10 s, and such a connection is neither idle nor reading for a handler.
_UNREAD: dict[int, RequestHandler] = {}
_UNREAD_PRUNE = 1024  # entries past which the closed ones are dropped


def forget_unread(request: web.Request) -> None:
    """A new request on the connection: whatever its last one left unread is gone."""
    _UNREAD.pop(id(request.protocol), None)


def note_unread(request: web.Request) -> None:
    """Note a request answered with its body unread, so that, at the connection cap, its
    connection (which then only drops the rest of that body) can be closed to make room
    like one whose body stalls; before, 20 GETs with a stalled body locked every other
    client out for 10 s, again and again (``dragon.web.frame``)."""
    if request.body_exists and not request.content.is_eof():
        if len(_UNREAD) >= _UNREAD_PRUNE:
            for key in [k for k, h in _UNREAD.items() if h.transport is None]:
                del _UNREAD[key]
        _UNREAD[id(request.protocol)] = request.protocol


def lingering(handler: RequestHandler) -> bool:
    """Whether an aiohttp connection has answered its request and only drops the rest of a
    body nobody read (``note_unread``)."""
    return (
        _UNREAD.get(id(handler)) is handler
        and getattr(handler, "transport", None) is not None
        and not getattr(handler, "_request_in_progress", True)
        and getattr(handler, "_waiter", None) is None
    )


def streams_per_account(limit: int) -> int:
    """Long-lived streams one account may hold: a quarter of the connections (at least 4,
    a few followers for a command line and a dashboard), so one account's streams cannot
    take every connection."""
    return max(MIN_STREAMS_PER_ACCOUNT, limit // 4)


class ConnectionLimit:
    """Keeps an aiohttp ``web.Server`` within ``limit`` connections.

    aiohttp has no such setting; its server tells ``connection_made`` of every new
    connection, so that call is wrapped: the connection is counted and, over the limit,
    makes room by closing the oldest idle connection, or else is answered and closed
    before it reads a byte.
    """

    def __init__(self, server: web.Server, limit: int) -> None:
        self.server = server
        self.limit = limit
        self.refused = 0
        self.reclaimed = 0
        self._last_warning = 0.0
        self._made = server.connection_made
        server.connection_made = self.connection_made  # type: ignore[method-assign]

    @staticmethod
    def _make_room(others: list[RequestHandler]) -> bool:
        """Close the oldest idle connection (or answered one dropping an unread body), else
        the oldest still sending its body (told 503 first); False when every other
        connection is busy handling a request."""
        oldest_idle = next((h for h in others if idle(h) or lingering(h)), None)
        if oldest_idle is not None:
            _UNREAD.pop(id(oldest_idle), None)
            oldest_idle.force_close()
            return True
        stalled = next((h for h in others if reading_body(h)), None)
        if stalled is None or stalled.transport is None:
            return False
        stalled.transport.write(REFUSAL)  # the client learns why, and to retry
        stalled.force_close()
        return True

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        self._made(handler, transport)
        if len(self.server.connections) <= self.limit:
            return
        # Connections closed a moment ago stay listed until the loop reports them lost.
        open_ = [h for h in self.server.connections if getattr(h, "transport", None) is not None]
        if len(open_) <= self.limit:
            return
        if self._make_room([h for h in open_ if h is not handler]):
            self.reclaimed += 1
        else:
            self.refused += 1
            transport.write(REFUSAL)
            handler.force_close()  # the answer still goes out before the socket closes
        now = time.monotonic()
        if now - self._last_warning > 10:
            self._last_warning = now
            log.warning(
                "%d connections open, the most allowed (DRAGON_MAX_CONNECTIONS): closed %d idle"
                " or body-sending ones to make room and refused %d so far",
                self.limit,
                self.reclaimed,
                self.refused,
            )
