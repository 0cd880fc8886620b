"""Processing slots: who runs next, fairly, and who gives a slot back while it downloads.

A *lane* (heavy or light) has a fixed number of slots. Queued tasks wait in a ``FairQueue``
(one queue per account, accounts served round-robin). Two rules keep one account, or one
slow source, from taking a lane:

- A running task hands its slot back while it waits for a download (``Slot.released``)
  and gets it back ahead of tasks that have not started yet. A source trickling one byte at
  a time then holds a connection, not a slot that an ffmpeg run of another account needs.
- An account may not take the last free slot of a lane while another account has tasks
  waiting: the slot goes to the other account. (Nothing is preempted: slots already held
  are kept until their tasks end or download.)

Downloads have their own per-account cap (``max_account_downloads``), so one account's
slow sources cannot hold every connection of the fetcher either.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable


class FairQueue:
    """Keys per account, served round-robin across accounts."""

    def __init__(self) -> None:
        self._items: dict[int, deque[str]] = {}
        self._ring: deque[int] = deque()
        self.size = 0

    def put(self, account_id: int, key: str) -> None:
        items = self._items.get(account_id)
        if items is None:
            items = self._items[account_id] = deque()
            self._ring.append(account_id)
        items.append(key)
        self.size += 1

    def accounts(self) -> list[int]:
        """Accounts with queued keys, in the order they will be served."""
        return list(self._ring)

    def snapshot(self) -> tuple[list[int], dict[int, list[str]]]:
        """A copy of the ring and the queues, to replay the picks (queue positions)."""
        return list(self._ring), {a: list(keys) for a, keys in self._items.items()}

    def pop(self, allowed: Callable[[int], bool] = lambda account: True) -> tuple[int, str] | None:
        """The next ``(account, key)`` in round-robin order among ``allowed`` accounts."""
        for _ in range(len(self._ring)):
            account_id = self._ring.popleft()
            if not allowed(account_id):
                self._ring.append(account_id)
                continue
            items = self._items[account_id]
            key = items.popleft()
            if items:
                self._ring.append(account_id)
            else:
                del self._items[account_id]
            self.size -= 1
            return account_id, key
        return None


class Lane:
    """The slots of one lane and the tasks waiting for them."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = max(1, capacity)
        self.queue = FairQueue()
        self.busy = 0
        self.held: Counter[int] = Counter()  # slots held, per account
        self._resuming: deque[tuple[int, asyncio.Future[None]]] = deque()

    def _allowed(self, waiting: set[int]) -> Callable[[int], bool]:
        """Who may take a free slot now: anyone, but not the last one for an account that
        holds every other slot while another account (of ``waiting``) has tasks queued."""

        def allowed(account_id: int) -> bool:
            if self.capacity - self.busy > 1 or self.capacity == 1:
                return True
            return self.held[account_id] < self.busy or not waiting - {account_id}

        return allowed

    def take(self) -> tuple[int, str] | None:
        """Give a free slot to whoever is next: a task coming back from a download first,
        else the next queued task. Returns the queued task started, if any."""
        while self.busy < self.capacity and self._resuming:
            account_id, waiter = self._resuming.popleft()
            if waiter.done():
                continue
            self._acquire(account_id)
            waiter.set_result(None)
        if self.busy >= self.capacity:
            return None
        picked = self.queue.pop(self._allowed(set(self.queue.accounts())))
        if picked is not None:
            self._acquire(picked[0])
        return picked

    def _acquire(self, account_id: int) -> None:
        self.busy += 1
        self.held[account_id] += 1

    def release(self, account_id: int) -> None:
        self.busy -= 1
        self.held[account_id] -= 1
        if self.held[account_id] <= 0:
            del self.held[account_id]

    def resuming_accounts(self) -> list[int]:
        """Accounts of the tasks waiting to get their slot back, in the order they will."""
        return [account for account, waiter in self._resuming if not waiter.done()]

    def wait_to_resume(self, account_id: int) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._resuming.append((account_id, waiter))
        return waiter


class Slot:
    """The slot a running task holds; ``released()`` lends it out for a download.

    Concurrent downloads of one task share one release: the slot is given back when the
    first starts and taken again when the last ends.
    """

    def __init__(
        self, lane: Lane, account_id: int, downloads: asyncio.Semaphore, changed: Callable[[], None]
    ) -> None:
        self.lane = lane
        self.account_id = account_id
        self.held = True
        self._downloads = downloads
        self._changed = changed
        self._lent = 0

    @contextlib.asynccontextmanager
    async def released(self) -> AsyncIterator[None]:
        self._lent += 1
        if self._lent == 1 and self.held:
            self.lane.release(self.account_id)
            self.held = False
            self._changed()
        try:
            async with self._downloads:
                yield
        finally:
            self._lent -= 1
            if self._lent == 0 and not self.held:
                await self._reacquire()

    async def _reacquire(self) -> None:
        waiter = self.lane.wait_to_resume(self.account_id)
        self._changed()
        try:
            await asyncio.shield(waiter)
        except asyncio.CancelledError:
            if waiter.done():  # granted just as we were cancelled: keep it, the task ends
                self.held = True
            else:
                waiter.cancel()
            raise
        self.held = True

    def give_back(self) -> None:
        """The task ended: free the slot if it holds one."""
        if self.held:
            self.lane.release(self.account_id)
            self.held = False
            self._changed()
