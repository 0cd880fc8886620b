"""The callback sender sends each attempt once, even when a read of the outbox races the
attempt's end, and a stop hands back every delivery it took, even one whose claim was
under way (dragon.engine.callbacks.CallbackSender).

The outbox here is a small in-memory stand-in whose reads can be held open, so the race a
busy server meets now and then (an attempt recorded while the next pass's read is under way,
which then returns the row as it was: still pending) happens every time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from dragon.config import Settings
from dragon.engine.callbacks import CallbackSender


class Outbox:
    """One delivery; the second read takes its snapshot, then waits for the attempt's record."""

    def __init__(self) -> None:
        self.row: dict[str, Any] = {
            "id": 1,
            "account_id": 7,
            "task_key": "K",
            "url": "http://receiver.example/hook",
            "state": "pending",
            "attempts": 0,
            "next_at": time.time() - 1,
            "body": b"{}",
            "webhook_id": "msg_1",
            "webhook_secret": "whsec_c2VjcmV0",
            "previous_webhook_secret": None,
        }
        self.reads = 0
        self.second_read = asyncio.Event()
        self.recorded = asyncio.Event()

    async def due_deliveries(self, now: float, limit: int) -> list[dict[str, Any]]:
        self.reads += 1
        snapshot = [dict(self.row)] if self.row["state"] == "pending" else []
        if self.reads == 2:
            self.second_read.set()
            await self.recorded.wait()
        return snapshot

    async def next_delivery_time(self) -> float | None:
        return None

    async def record_delivery(self, delivery_id: int, state: str, attempts: int, *rest: Any):
        self.row.update(state=state, attempts=attempts)
        self.recorded.set()

    async def release_deliveries(self, ids: list[int], now: float) -> None:
        pass


class Receiver:
    """Answers 200 once the sender's next read is under way."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.sent = 0
        self.started = asyncio.Event()

    async def send(self, method: str, url: str, **kwargs: Any) -> tuple[int, str]:
        self.sent += 1
        self.started.set()
        await self.outbox.second_read.wait()
        return 200, "OK"


async def test_an_attempt_that_ends_during_a_read_is_not_sent_again():
    outbox = Outbox()
    receiver = Receiver(outbox)
    sender = CallbackSender(Settings.load({}), outbox, receiver)  # type: ignore[arg-type]
    sender.start()
    try:
        await asyncio.wait_for(receiver.started.wait(), 10)
        sender.wake()  # the next pass reads while the attempt is still out
        await asyncio.wait_for(outbox.recorded.wait(), 10)
        for _ in range(20):  # let the stale row reach the dispatcher, and any resend start
            await asyncio.sleep(0.01)
    finally:
        await sender.stop()
    assert outbox.row["state"] == "delivered"
    assert receiver.sent == 1


class ClaimingOutbox(Outbox):
    """A claim that commits, then answers only after the stop has begun (PostgreSQL's
    claim pushes the rows ahead for minutes: unless sent or handed back, they wait that
    long)."""

    def __init__(self) -> None:
        super().__init__()
        self.claim_committed = asyncio.Event()
        self.answer = asyncio.Event()
        self.released: list[int] = []

    async def due_deliveries(self, now: float, limit: int) -> list[dict[str, Any]]:
        snapshot = [dict(self.row)]
        self.claim_committed.set()
        await self.answer.wait()
        return snapshot

    async def release_deliveries(self, ids: list[int], now: float) -> None:
        self.released.extend(ids)


class Prompt:
    async def send(self, method: str, url: str, **kwargs: Any) -> tuple[int, str]:
        return 200, "OK"


async def test_a_stop_during_a_claim_still_settles_what_the_claim_took():
    outbox = ClaimingOutbox()
    sender = CallbackSender(Settings.load({}), outbox, Prompt())  # type: ignore[arg-type]
    sender.start()
    await asyncio.wait_for(outbox.claim_committed.wait(), 10)
    stopping = asyncio.ensure_future(sender.stop())
    await asyncio.sleep(0.05)  # the stop has cancelled the loop in the middle of the claim
    outbox.answer.set()
    await asyncio.wait_for(stopping, 10)
    # Sent (or else handed back), never left claimed by a node that is gone.
    assert outbox.row["state"] == "delivered" and outbox.released == []
