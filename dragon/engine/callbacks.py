"""Delivering ``url_callback`` / ``url_errback`` (seed chapter 3) from the outbox.

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
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import time
from typing import Any

from dragon import errors
from dragon.config import Settings
from dragon.database.interface import Database
from dragon.engine import metrics
from dragon.runtime.background import BackgroundLoop

log = logging.getLogger("dragon.engine.callbacks")

BACKOFF_FACTOR = 6.0
MAX_PARALLEL = 8


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signatures(secrets: list[str], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,`` signature per secret, space-separated
    (during a rotation, receivers holding either secret can verify)."""
    return " ".join(signature(s, webhook_id, timestamp, body) for s in secrets)


def retry_delay(first: float, attempts: int) -> float:
    """Delay after the ``attempts``-th failed attempt (1-based)."""
    return first * BACKOFF_FACTOR ** (attempts - 1)


class CallbackSender(BackgroundLoop):
    def __init__(self, settings: Settings, database: Database, fetcher: Any) -> None:
        self.settings = settings
        self.db = database
        self.fetcher = fetcher
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(MAX_PARALLEL)
        self._inflight: set[int] = set()

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                due = await self.db.due_deliveries(time.time())
                for row in due:
                    if row["id"] not in self._inflight:
                        self._inflight.add(row["id"])
                        asyncio.create_task(self._deliver(row))
                nxt = await self.db.next_delivery_time()
            except Exception:
                log.exception("callback loop failed; retrying")
                nxt = None
            delay = 60.0 if nxt is None else max(0.05, min(60.0, nxt - time.time()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _deliver(self, row: Any) -> None:
        try:
            async with self._slots:
                await self._attempt(row)
        except Exception:
            log.exception("callback %s failed unexpectedly", row["id"])
        finally:
            self._inflight.discard(row["id"])
            self._wake.set()

    async def _attempt(self, row: Any) -> None:
        attempts = row["attempts"] + 1
        stamp = int(time.time())
        body = bytes(row["body"])
        headers = {
            "Content-Type": "application/json",
            "webhook-id": row["webhook_id"],
            "webhook-timestamp": str(stamp),
            "webhook-signature": signatures(
                [s for s in (row["webhook_secret"], row["previous_webhook_secret"]) if s],
                row["webhook_id"], stamp, body),
        }
        status = None
        try:
            status, reason = await self.fetcher.send(
                "POST", row["url"], body=body, headers=headers,
                timeout=self.settings.webhook_timeout_seconds)
            error = None if 200 <= status < 300 else f"receiver answered {status} {reason}"
        except Exception as exc:  # any failure is a recorded attempt, never a hot loop
            if not isinstance(exc, errors.TaskError):
                log.exception("callback %s: unexpected failure", row["id"])
                exc = errors.TaskError(errors.SEND_FAILED, f"{type(exc).__name__}: {exc}")
            if exc.code == errors.URL_FORBIDDEN:
                await self.db.record_delivery(
                    row["id"], "failed", attempts, time.time(), None,
                    f"url_forbidden: {exc.message}")
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
        await self.db.record_delivery(row["id"], state, attempts, next_at, status, error)
        metrics.CALLBACKS.labels("retry" if state == "pending" else state).inc()
        if error:
            log.info("callback for %s attempt %d: %s (%s)", row["task_key"], attempts, error,
                     state)
