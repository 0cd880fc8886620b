"""In-process fan-out of committed status changes to streams and blocked requests.

Only committed changes are published (the scheduler publishes after the database write resolves),
so nothing a client sees here can be rolled back. Each subscriber owns a bounded queue, so
no reader can grow memory: when a burst overflows it, the subscription is dropped and its
owner re-reads the statuses from the database and subscribes again (``Service.wait`` and
``Service.stream``). Every subscriber gets the same ``Published`` change, whose JSON line is
encoded once and shared: a change followed by 1,000 streams costs one encoding, not 1,000.
A stream whose client stops reading is closed by the handler's write timeout; one whose
client disconnects is cancelled and unsubscribed at once. With several nodes this becomes
PostgreSQL LISTEN/NOTIFY feeding the same ``publish``.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from dragon.engine.documents import in_version, ndjson_line

# Sentinels a reader finds in its queue instead of a status.
OVERFLOW = {"_overflow": True}
CLOSING = {"_closing": True}


class Published:
    """One committed status change as every subscriber sees it.

    ``line(version)`` is the change as an NDJSON line, encoded on first use and then shared
    by every stream that writes it (v1 differs from v2 only for errors).
    """

    __slots__ = ("doc", "key", "_lines")

    def __init__(self, key: str, doc: dict[str, Any]) -> None:
        self.key = key
        self.doc = doc
        self._lines: dict[int, bytes] = {}

    def line(self, version: int = 2) -> bytes:
        if version != 1 or self.doc.get("status") != "error":
            version = 2
        line = self._lines.get(version)
        if line is None:
            line = self._lines[version] = ndjson_line(in_version(self.doc, version))
        return line


class Subscription:
    closed = False

    def __init__(self, bus: Bus, keys: Iterable[str], maxsize: int) -> None:
        self.bus = bus
        self.keys = set(keys)
        self.queue: asyncio.Queue[Published | dict[str, bool]] = asyncio.Queue(maxsize)
        self.overflowed = False

    def add(self, keys: Iterable[str]) -> None:
        """Follow more keys (create_stream subscribes before its keys exist)."""
        if self.closed:  # the stream ended (client gone) before its create committed
            return
        self.bus._empty.discard(self)
        for key in keys:
            self.keys.add(key)
            self.bus._subs[key].add(self)

    def end(self) -> None:
        """Wake the reader with the closing sentinel (server shutting down)."""
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(CLOSING)

    def push(self, change: Published) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            self.overflowed = True
            self.bus.unsubscribe(self)
            # Wake the reader so it notices the overflow and closes its stream.
            self.queue.get_nowait()
            self.queue.put_nowait(OVERFLOW)

    async def get(self) -> Published | dict[str, bool]:
        """The next change, or the ``OVERFLOW`` or ``CLOSING`` sentinel."""
        return await self.queue.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True
        self.bus.unsubscribe(self)


class Follower:
    """An event feed reader: woken by any committed change, it re-reads the feed itself.

    It holds one flag, not a queue, so a slow follower costs no memory however many
    changes it misses: the event table is its queue.
    """

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.changed = asyncio.Event()

    def __enter__(self) -> Follower:
        self.bus._followers.add(self)
        if self.bus.closed:
            self.changed.set()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bus._followers.discard(self)


class Bus:
    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._empty: set[Subscription] = set()  # subscribed before their keys exist
        self._followers: set[Follower] = set()
        self.closed = False

    def follow(self) -> Follower:
        """Wake me at each committed change (``with bus.follow() as f: await f.changed...``)."""
        return Follower(self)

    def feed_changed(self) -> None:
        """New events are committed: wake every feed follower."""
        for follower in self._followers:
            follower.changed.set()

    def subscribe(self, keys: Iterable[str], maxsize: int | None = None) -> Subscription:
        sub = Subscription(self, keys, maxsize or self.queue_size)
        for key in sub.keys:
            self._subs[key].add(sub)
        if not sub.keys:
            self._empty.add(sub)
        if self.closed:
            sub.end()
        return sub

    def close(self) -> None:
        """The server is closing: every reader gets the closing sentinel, now or later."""
        self.closed = True
        for sub in {s for subs in self._subs.values() for s in subs} | self._empty:
            sub.end()
        self.feed_changed()

    def unsubscribe(self, sub: Subscription) -> None:
        self._empty.discard(sub)
        for key in sub.keys:
            subs = self._subs.get(key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[key]

    def publish(self, key: str, status: dict[str, Any]) -> None:
        self.feed_changed()  # the change may have added feed events: followers re-read
        subs = self._subs.get(key)
        if subs:
            change = Published(key, status)
            for sub in tuple(subs):
                sub.push(change)

    def subscribers(self) -> int:
        """Open subscriptions: streams, blocked requests and event feed followers."""
        subs = {s for subs in self._subs.values() for s in subs} | self._empty
        return len(subs) + len(self._followers)

    def size(self) -> int:
        """Subscriptions per key, summed: the registry's size (tests check it drains)."""
        return sum(len(s) for s in self._subs.values())
