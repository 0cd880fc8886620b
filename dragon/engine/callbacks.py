"""Delivering ``url_callback`` / ``url_errback`` (docs/api.md) from the outbox.

A delivery is written in the same transaction that ends the task, so the final status is
committed before any callback leaves (a poll made after a callback arrives shows the final
status), and deliveries survive restarts. The body is the final status JSON, signed the way
Standard Webhooks does it: ``webhook-id`` (the same on every retry, so receivers can
deduplicate), ``webhook-timestamp`` and ``webhook-signature`` = ``v1,`` + base64
HMAC-SHA256 of ``id.timestamp.body`` under the account's webhook secret.

Retries back off exponentially (first after ``webhook_first_delay_seconds``, then x6: with
the defaults 10 s, 1 min, 6 min, 36 min: five attempts over about 45 minutes). A 2xx ends
it, a 410 Gone stops it, redirects are not followed (a 3xx counts as a failure), and every
attempt goes through the guarded fetcher's address policy.

``MAX_PARALLEL`` deliveries run at once, shared so that a receiver that hangs (each attempt
holds its slot up to ``webhook_timeout_seconds``) delays only its own callbacks: one
receiver (scheme, host and port) holds at most ``PER_RECEIVER`` slots, one account at most
``PER_ACCOUNT``, and free slots go to accounts in turn, the one served longest ago first.
Each pass fetches at most ``MAX_PARALLEL`` due deliveries, in turns across accounts; one
that may not start yet waits in memory (a backend that claims rows for this node,
PostgreSQL, does not return it again) and starts when a slot of its share frees. An
account keeps at most ``WAITING_PER_ACCOUNT`` waiting: its further rows are left for a later
pass (or, claimed, for the claim to expire), so memory stays bounded and a backlog cannot
crowd out other accounts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlsplit

from dragon import errors
from dragon.config import Settings
from dragon.database.interface import Busy, Database, DiskFull, Row
from dragon.engine import metrics
from dragon.runtime.background import BackgroundLoop

log = logging.getLogger("dragon.engine.callbacks")

BACKOFF_FACTOR = 6.0
MAX_PARALLEL = 16
PER_ACCOUNT = MAX_PARALLEL // 2
PER_RECEIVER = MAX_PARALLEL // 4
WAITING_PER_ACCOUNT = 4 * PER_ACCOUNT


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signatures(secrets: list[str], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,`` signature per secret, space-separated
    (during a rotation, receivers holding either secret can verify)."""
    return " ".join(signature(s, webhook_id, timestamp, body) for s in secrets)


def receiver_of(url: str) -> str:
    """Who answers a delivery: its URL's scheme, host and port (one share of the slots)."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{(parts.hostname or '').lower()}:{parts.port or ''}"
    except ValueError:
        return url


def retry_delay(first: float, attempts: int) -> float:
    """Delay after the ``attempts``-th failed attempt (1-based)."""
    return first * BACKOFF_FACTOR ** (attempts - 1)


class Sender(Protocol):
    """How a delivery goes out: one request, through the guarded fetcher in the server."""

    async def send(
        self, method: str, url: str, *, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[int, str]: ...


class CallbackSender(BackgroundLoop):
    def __init__(self, settings: Settings, database: Database, fetcher: Sender) -> None:
        self.settings = settings
        self.db = database
        self.fetcher = fetcher
        self._wake = asyncio.Event()
        self._inflight: dict[int, asyncio.Task[None]] = {}  # delivery id -> its attempt
        self._waiting: dict[int, Row] = {}  # due, fetched, not started: id -> row
        self._finished: set[int] = set()  # attempts ended during the current pass's read
        self._by_account: Counter[int] = Counter()  # deliveries running, per account
        self._by_receiver: Counter[str] = Counter()
        self._served: dict[int, int] = {}  # account -> when it last got a slot (a counter)
        self._starts = 0
        self._claiming: asyncio.Future[None] | None = None  # the pass's claim, if under way

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Stop taking deliveries. Attempts under way get the webhook timeout to finish, so
        their outcome is recorded; deliveries taken but not attempted are handed back. On
        PostgreSQL a taken delivery is claimed for minutes: one left claimed by a stopped
        node would wait that long before anyone sent it."""
        await super().stop()
        if self._claiming is not None:  # a claim the stop cut into: let it land, hand it back
            with contextlib.suppress(Exception):
                await self._claiming
        if self._inflight:
            await asyncio.wait(
                list(self._inflight.values()), timeout=self.settings.webhook_timeout_seconds + 5
            )
        unsent = [*self._waiting, *self._inflight]
        for attempt in self._inflight.values():
            attempt.cancel()
        if unsent:
            with contextlib.suppress(Busy, DiskFull):
                await self.db.release_deliveries(unsent, time.time())

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            # A row read while its attempt ends may still show it pending: that attempt is
            # remembered here so the stale row is not sent a second time.
            self._finished.clear()
            try:
                # Shielded: on PostgreSQL a claim takes its rows for minutes, so a stop must
                # not cut it between the commit and the rows reaching ``_waiting``.
                self._claiming = asyncio.ensure_future(self._claim())
                await asyncio.shield(self._claiming)
                nxt = await self.db.next_delivery_time()
            except Exception:
                log.exception("callback loop failed; retrying")
                nxt = None
            delay = 60.0 if nxt is None else max(0.05, min(60.0, nxt - time.time()))
            if self._inflight and nxt is not None and nxt <= time.time():
                # What is due is running or waits for a slot: a finished attempt wakes us.
                delay = 1.0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _claim(self) -> None:
        self._dispatch(await self.db.due_deliveries(time.time(), MAX_PARALLEL))

    def _dispatch(self, due: Sequence[Row]) -> None:
        """Start the waiting deliveries the shares allow, accounts in turn."""
        self._hold(due)
        waiting: dict[int, list[Row]] = {}
        for row in sorted(self._waiting.values(), key=lambda r: r["next_at"]):
            waiting.setdefault(row["account_id"], []).append(row)
        while waiting and len(self._inflight) < MAX_PARALLEL:
            account = min(waiting, key=lambda a: self._served.get(a, 0))
            rows = waiting.pop(account)
            if self._by_account[account] >= PER_ACCOUNT:
                continue
            chosen = next(
                (r for r in rows if self._by_receiver[receiver_of(r["url"])] < PER_RECEIVER), None
            )
            if chosen is None:
                continue
            rows.remove(chosen)
            if rows:
                waiting[account] = rows
            self._start(chosen)

    def _hold(self, due: Sequence[Row]) -> None:
        """Keep the ``due`` deliveries not sent yet, up to ``WAITING_PER_ACCOUNT`` each."""
        held = Counter(r["account_id"] for r in self._waiting.values())
        for row in due:
            account = row["account_id"]
            if row["id"] in self._finished:
                continue
            if row["id"] in self._waiting:
                self._waiting[row["id"]] = row
            elif row["id"] not in self._inflight and held[account] < WAITING_PER_ACCOUNT:
                self._waiting[row["id"]] = row
                held[account] += 1

    def _start(self, row: Row) -> None:
        del self._waiting[row["id"]]
        self._starts += 1
        self._served[row["account_id"]] = self._starts
        self._by_account[row["account_id"]] += 1
        self._by_receiver[receiver_of(row["url"])] += 1
        self._inflight[row["id"]] = asyncio.create_task(self._deliver(row))

    async def _deliver(self, row: Row) -> None:
        try:
            await self._attempt(row)
        except Exception:
            log.exception("callback %s failed unexpectedly", row["id"])
        finally:
            del self._inflight[row["id"]]
            self._finished.add(row["id"])
            self._by_account[row["account_id"]] -= 1
            if not self._by_account[row["account_id"]]:
                del self._by_account[row["account_id"]]
            receiver = receiver_of(row["url"])
            self._by_receiver[receiver] -= 1
            if not self._by_receiver[receiver]:
                del self._by_receiver[receiver]
            self._wake.set()

    async def _record(
        self,
        delivery_id: int,
        state: str,
        attempts: int,
        next_at: float,
        last_status: int | None,
        last_error: str | None,
    ) -> None:
        """Record an attempt's outcome, retried while the database is busy or its disk full:
        an attempt made but not recorded would be sent again at every pass meanwhile (the
        delivery keeps its slot until it is recorded)."""
        delay = 0.1
        while True:
            try:
                return await self.db.record_delivery(
                    delivery_id, state, attempts, next_at, last_status, last_error
                )
            except (Busy, DiskFull) as exc:
                log.warning(
                    "could not record callback %s (%s); retrying in %.1f s", delivery_id, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _attempt(self, row: Row) -> None:
        attempts = row["attempts"] + 1
        stamp = int(time.time())
        body = bytes(row["body"])
        headers = {
            "Content-Type": "application/json",
            "webhook-id": row["webhook_id"],
            "webhook-timestamp": str(stamp),
            "webhook-signature": signatures(
                [s for s in (row["webhook_secret"], row["previous_webhook_secret"]) if s],
                row["webhook_id"],
                stamp,
                body,
            ),
        }
        status = None
        try:
            status, reason = await self.fetcher.send(
                "POST",
                row["url"],
                body=body,
                headers=headers,
                timeout=self.settings.webhook_timeout_seconds,
            )
            error = None if 200 <= status < 300 else f"receiver answered {status} {reason}"
        except Exception as exc:  # any failure is a recorded attempt, never a hot loop
            if not isinstance(exc, errors.TaskError):
                log.exception("callback %s: unexpected failure", row["id"])
                exc = errors.TaskError(errors.SEND_FAILED, f"{type(exc).__name__}: {exc}")
            if exc.code == errors.URL_FORBIDDEN:
                await self._record(
                    row["id"],
                    "failed",
                    attempts,
                    time.time(),
                    None,
                    f"url_forbidden: {exc.message}",
                )
                metrics.CALLBACKS.labels("refused").inc()
                log.warning("callback for %s refused: %s", row["task_key"], exc.message)
                return
            error = f"{exc.code}: {exc.message}"
        now = time.time()
        if error is None:
            state, next_at = "delivered", now
        elif status == 410:
            state, next_at = "stopped", now
        elif attempts >= self.settings.webhook_max_attempts:
            state, next_at = "failed", now
        else:
            state = "pending"
            next_at = now + retry_delay(self.settings.webhook_first_delay_seconds, attempts)
        await self._record(row["id"], state, attempts, next_at, status, error)
        metrics.CALLBACKS.labels("retry" if state == "pending" else state).inc()
        if error:
            log.info("callback for %s attempt %d: %s (%s)", row["task_key"], attempts, error, state)
