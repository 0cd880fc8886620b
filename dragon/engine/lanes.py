"""Processing slots: who runs next, fairly, and who gives a slot back while it downloads.

A *lane* (light, interactive or batch: ``dragon.engine.classes``) has a fixed number of
slots. Tasks wait in a ``FairQueue``: per account, the tasks coming back from a download
first, then its new tasks; accounts are served round-robin. The rules that keep one account,
or one slow source, from taking a lane:

- A running task hands its slot back while it waits for a download (``Slot.released``),
  so a source trickling one byte at a time holds a connection, not a slot. When its
  download ends it queues again at the front of its *account's* line, not of the lane's:
  it does not jump ahead of other accounts' tasks.
- An account downloads at most ``prefetch`` tasks ahead per lane (tasks that lent their
  slot out): its other tasks wait, without downloading, for those to run.
- An account may not take the last free slot of a lane while another account has tasks
  waiting; and an account with a ``max_running`` limit holds at most that many slots of
  the processing lanes at once. (Nothing is preempted: slots already held are kept until
  their tasks end or download.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass


@dataclass(eq=False)
class Comeback:
    """A task back from its download, waiting for a slot of its lane again."""

    key: str
    granted: asyncio.Future[None]


class FairQueue:
    """Per account, tasks back from a download then new keys; accounts take turns.

    The ring holds the accounts in the order of their next turn. The first account in it
    that may take a slot now is served and goes to the end; an account that may not (its
    tasks are all downloading, or it is at a limit) keeps its place. An account whose
    tasks are all downloading (``keep``) stays in the ring with nothing queued, so a task
    coming back from its download is served at its account's turn, not after every
    account that queued meanwhile.
    """

    def __init__(self, keep: Callable[[int], bool] = lambda account: False) -> None:
        self._items: dict[int, deque[str]] = {}
        self._back: dict[int, deque[Comeback]] = {}
        self._ring: deque[int] = deque()
        self._members: set[int] = set()
        self._keep = keep
        self.size = 0  # new keys waiting (not the comebacks)

    def put(self, account_id: int, key: str) -> None:
        self._join(account_id)
        self._items.setdefault(account_id, deque()).append(key)
        self.size += 1

    def put_back(self, account_id: int, comeback: Comeback) -> None:
        self._join(account_id)
        self._back.setdefault(account_id, deque()).append(comeback)

    def _join(self, account_id: int) -> None:
        if account_id not in self._members:
            self._members.add(account_id)
            self._ring.append(account_id)

    def _waiting(self, account_id: int) -> bool:
        back = self._back.get(account_id)
        while back and back[0].granted.done():  # its task was cancelled meanwhile
            back.popleft()
        if not back:
            self._back.pop(account_id, None)
        if not self._items.get(account_id):
            self._items.pop(account_id, None)
        return account_id in self._items or account_id in self._back

    def discard(self, key: str) -> bool:
        """Take a new key out of the queue (its task was cancelled); False if not there.
        Linear in the queue's length: a cancel is rare, a pick is not."""
        for items in self._items.values():
            if key in items:
                items.remove(key)
                self.size -= 1
                return True
        return False

    def accounts(self) -> list[int]:
        """Accounts with tasks waiting for a slot, in the order of their turns."""
        return [a for a in self._ring if self._items.get(a) or self._back.get(a)]

    def snapshot(self) -> tuple[list[int], dict[int, list[str]], dict[int, list[str]]]:
        """Copies of the ring, the new keys and the comebacks' keys (queue positions)."""
        back = {
            account: [c.key for c in comebacks if not c.granted.done()]
            for account, comebacks in self._back.items()
        }
        return list(self._ring), {a: list(keys) for a, keys in self._items.items()}, back

    def pop(
        self, allowed: Callable[[int, bool], bool] = lambda account, new: True
    ) -> tuple[int, str | Comeback] | None:
        """The first ``(account, key or comeback)`` in turn order that ``allowed(account,
        new)`` lets take a slot now (``new``: for a new key; else for a comeback)."""
        for index, account_id in enumerate(self._ring):
            if not self._waiting(account_id):
                continue
            item: str | Comeback | None = None
            back = self._back.get(account_id)
            if back:
                if allowed(account_id, False):
                    item = back.popleft()
            elif allowed(account_id, True):
                item = self._items[account_id].popleft()
                self.size -= 1
            if item is not None:
                del self._ring[index]
                self._ring.append(account_id)
                self._prune()
                return account_id, item
        self._prune()
        return None

    def _prune(self) -> None:
        """Drop the accounts with nothing queued and nothing downloading from the ring."""
        gone = [a for a in self._ring if not self._waiting(a) and not self._keep(a)]
        for account_id in gone:
            self._ring.remove(account_id)
            self._members.discard(account_id)


class Lane:
    """The slots of one lane and the tasks waiting for them."""

    def __init__(
        self,
        name: str,
        capacity: int,
        *,
        running: Callable[[int], int] | None = None,
        limit: Callable[[int], int] | None = None,
        prefetch: bool = True,
    ) -> None:
        self.name = name
        self.capacity = max(1, capacity)
        # Tasks per account downloading ahead (lent slots): one more than the slots, so the
        # next task's inputs are in when a slot frees. None: no bound (light work, whose
        # downloads are its work).
        self.prefetch: int | None = self.capacity + 1 if prefetch else None
        self.busy = 0
        self.held: Counter[int] = Counter()  # slots held, per account
        # Tasks that lent their slot out (downloading, or back and waiting), per account.
        self.lent: Counter[int] = Counter()
        self.queue = FairQueue(keep=lambda account: self.lent[account] > 0)
        # The account's slots held in every lane its limit covers, and that limit (0: none).
        self._running = running or (lambda account: self.held[account])
        self._limit = limit or (lambda account: 0)

    def allowed(self, waiting: set[int]) -> Callable[[int, bool], bool]:
        """Who may take a free slot now (``waiting``: the accounts with tasks queued)."""

        def allowed(account_id: int, new: bool) -> bool:
            if new and self.prefetch is not None and self.lent[account_id] >= self.prefetch:
                return False
            limit = self._limit(account_id)
            if limit and self._running(account_id) >= limit:
                return False
            if self.capacity - self.busy > 1 or self.capacity == 1:
                return True
            return self.held[account_id] < self.busy or not waiting - {account_id}

        return allowed

    def take(self) -> tuple[int, str] | None:
        """Give free slots to whoever is next (comebacks are granted here); returns the
        next new task to start, if any."""
        while self.busy < self.capacity:
            picked = self.queue.pop(self.allowed(set(self.queue.accounts())))
            if picked is None:
                return None
            account_id, item = picked
            self._acquire(account_id)
            if isinstance(item, str):
                return account_id, item
            self.unlend(account_id)  # now, so the ring sees it at once
            item.granted.set_result(None)
        return None

    def _acquire(self, account_id: int) -> None:
        self.busy += 1
        self.held[account_id] += 1

    def release(self, account_id: int) -> None:
        self.busy -= 1
        self.held[account_id] -= 1
        if self.held[account_id] <= 0:
            del self.held[account_id]

    def lend(self, account_id: int) -> None:
        """A running task of the account gives its slot back to download."""
        self.release(account_id)
        self.lent[account_id] += 1

    def unlend(self, account_id: int) -> None:
        """A task that lent its slot got it back, or ended (cancelled) without it."""
        self.lent[account_id] -= 1
        if self.lent[account_id] <= 0:
            del self.lent[account_id]

    def come_back(self, account_id: int, key: str) -> asyncio.Future[None]:
        """Queue a task back from its download; the future resolves when it has its slot."""
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.put_back(account_id, Comeback(key, granted))
        return granted


class Slot:
    """The slot a running task holds; ``released()`` lends it out for a download.

    Concurrent downloads of one task share one release: the slot is given back when the
    first starts and taken again when the last ends.
    """

    def __init__(
        self,
        lane: Lane,
        account_id: int,
        key: str,
        downloads: asyncio.Semaphore,
        changed: Callable[[], None],
    ) -> None:
        self.lane = lane
        self.account_id = account_id
        self.key = key
        self.held = True
        self._downloads = downloads
        self._changed = changed
        self._lent = 0

    @property
    def downloading(self) -> bool:
        """Lent out for a download (or waiting to come back from one)."""
        return not self.held

    @contextlib.asynccontextmanager
    async def released(self) -> AsyncIterator[None]:
        self._lent += 1
        if self._lent == 1 and self.held:
            self.lane.lend(self.account_id)
            self.held = False
            self._changed()
        cancelled = False
        try:
            async with self._downloads:
                yield
        except asyncio.CancelledError:  # the task ends (cancelled, shut down): no slot again
            cancelled = True
            raise
        finally:
            self._lent -= 1
            if self._lent == 0 and not self.held:
                if cancelled:
                    self.lane.unlend(self.account_id)
                else:
                    await self._reacquire()

    async def _reacquire(self) -> None:
        granted = self.lane.come_back(self.account_id, self.key)
        self._changed()
        try:
            await asyncio.shield(granted)
        except asyncio.CancelledError:
            if granted.done():  # granted just as we were cancelled: keep it, the task ends
                self.held = True
            else:
                granted.cancel()
                self.lane.unlend(self.account_id)
            raise
        self.held = True  # the lane counted it back when it granted the slot

    def give_back(self) -> None:
        """The task ended: free the slot if it holds one."""
        if self.held:
            self.lane.release(self.account_id)
            self.held = False
            self._changed()
