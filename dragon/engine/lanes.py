"""Processing slots: who runs next, fairly, and who gives a slot back while it downloads.

A *lane* (light, interactive or batch: ``dragon.engine.classes``) has a fixed number of
slots. Tasks wait in a ``FairQueue``: per account, the tasks coming back from a download
first, then its new tasks; accounts take turns. The rules that keep one account, or one
slow source, from taking a lane:

- In a processing lane a new task holds no slot at first: it is sent to download its
  inputs as soon as its account has fewer than ``prefetch`` tasks downloading or back
  (``Lane.prefetch_next``), whether a slot is free or not, and asks for a slot when its
  download ends or its work begins (``Slot.take``). So a task that arrives while every
  slot is busy is ready when the next one frees, and a download is never what makes a
  task miss its account's turn. Its other tasks wait, without downloading, for those.
- A running task hands its slot back while it waits for a download (``Slot.released``),
  so a source trickling one byte at a time holds a connection, not a slot. A task back
  from its download queues at the front of its *account's* line, not of the lane's: it
  does not jump ahead of other accounts' tasks. In a processing lane an account's tasks
  start their work in the order they were dispatched, so positions hold.
- Accounts take turns. An account that starts waiting goes ahead of the accounts that
  hold a slot of the lane now (they have had their turn), behind those that wait without
  one: a single task of a quiet account starts when the next slot frees, even while
  another account keeps the lane busy.
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
    # Whose slot it becomes: marked held at the grant itself, so that nothing reading the
    # lane in between (queue positions) sees a task neither queued nor holding a slot.
    slot: Slot | None = None


class FairQueue:
    """Per account, its tasks back from a download, then its new keys; accounts take turns.

    The ring holds the accounts in the order of their next turn. The first account in it
    that may take a slot now is served and goes to the end; an account that may not (its
    next task still downloads, or it is at a limit) keeps its place. An account whose
    tasks are downloading stays in the ring with nothing queued, so a task coming back
    from its download is served at its account's turn, not after every account that queued
    meanwhile. An account's tasks start their work in the order they lent their slots
    (``lending``): a task back from a download waits for its account's older ones, so an
    account's tasks run in the order it created them.
    """

    def __init__(
        self,
        lending: dict[int, dict[str, None]] | None = None,
        *,
        ordered: bool = True,
        holding: Callable[[int], bool] = lambda account: False,
    ) -> None:
        self._items: dict[int, deque[str]] = {}
        self._back: dict[int, dict[str, Comeback]] = {}
        self._ring: deque[int] = deque()
        self._members: set[int] = set()
        # Per account, the keys of its tasks that lent their slot out, oldest first.
        self._lending = lending if lending is not None else {}
        self._ordered = ordered  # False: any task back from its download may go first
        self._holding = holding  # whether an account holds a slot of the lane now
        self.size = 0  # new keys waiting (not the comebacks)

    def put(self, account_id: int, key: str) -> None:
        self._join(account_id)
        self._items.setdefault(account_id, deque()).append(key)
        self.size += 1

    def put_back(self, account_id: int, comeback: Comeback) -> None:
        self._join(account_id)
        self._back.setdefault(account_id, {})[comeback.key] = comeback

    def _join(self, account_id: int) -> None:
        """A new account waits: its turn comes before those holding a slot now."""
        if account_id not in self._members:
            self._members.add(account_id)
            at = next((i for i, a in enumerate(self._ring) if self._holding(a)), len(self._ring))
            self._ring.insert(at, account_id)

    def take_new(self, allowed: Callable[[int], bool]) -> tuple[int, str] | None:
        """The next new key, in turn order, of an account that ``allowed`` lets send one to
        download; turns do not move (a download is not a turn)."""
        for account_id in self._ring:
            items = self._items.get(account_id)
            if items and allowed(account_id):
                key = items.popleft()
                self.size -= 1
                return account_id, key
        return None

    def _next_back(self, account_id: int) -> Comeback | None:
        """The account's oldest lending task, if it is back and still waits (unordered:
        the first of its tasks that came back)."""
        lending = self._lending.get(account_id)
        back = self._back.get(account_id)
        if not lending or not back:
            return None
        if not self._ordered:
            return next((c for c in back.values() if not c.granted.done()), None)
        comeback = back.get(next(iter(lending)))
        return comeback if comeback is not None and not comeback.granted.done() else None

    def discard(self, key: str) -> bool:
        """Take a new key out of the queue (its task was cancelled); False if not there.
        Linear in the queue's length: a cancel is rare, a pick is not."""
        for items in self._items.values():
            if key in items:
                items.remove(key)
                self.size -= 1
                return True
        return False

    def accounts(self, new: bool = True) -> list[int]:
        """Accounts with tasks waiting for a slot, in the order of their turns (``new``:
        counting new keys; else only tasks back from their downloads)."""
        return [a for a in self._ring if (new and self._items.get(a)) or self._next_back(a)]

    def snapshot(self) -> tuple[list[int], dict[int, list[str]], dict[int, list[str]]]:
        """Copies of the ring, the new keys and, per account, its lending tasks (back or
        still downloading) in the order they will start (queue positions)."""
        lending = {account: list(keys) for account, keys in self._lending.items() if keys}
        return list(self._ring), {a: list(keys) for a, keys in self._items.items()}, lending

    def pop(
        self, allowed: Callable[[int, bool], bool] = lambda account, new: True
    ) -> tuple[int, str | Comeback] | None:
        """The first ``(account, key or comeback)`` in turn order that ``allowed(account,
        new)`` lets take a slot now (``new``: for a new key; else for a comeback)."""
        for index, account_id in enumerate(self._ring):
            item: str | Comeback | None = None
            comeback = self._next_back(account_id)
            if comeback is not None:
                if allowed(account_id, False):
                    item = self._back[account_id].pop(comeback.key)
            elif self._items.get(account_id) and allowed(account_id, True):
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
        """Drop the accounts with nothing queued and nothing downloading from the ring, and
        the comebacks of tasks that ended meanwhile (cancelled)."""
        for account_id in list(self._ring):
            back = self._back.get(account_id)
            if back:
                for key in [k for k, c in back.items() if c.granted.done()]:
                    del back[key]
            if not back:
                self._back.pop(account_id, None)
            if not self._items.get(account_id):
                self._items.pop(account_id, None)
            if account_id in self._items or self._lending.get(account_id):
                continue
            self._back.pop(account_id, None)
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
        spare_only: Callable[[], bool] = lambda: False,
    ) -> None:
        self.name = name
        self.capacity = max(1, capacity)
        # Tasks per account downloading ahead (lent slots): one more than the slots, so the
        # next task's inputs are in when a slot frees; an account's tasks start in order.
        # Light work (``prefetch=False``), whose downloads are its work: no bound, and a
        # probe of a fast source need not wait for the same account's slow one.
        self.prefetch: int | None = self.capacity + 1 if prefetch else None
        self.busy = 0
        self.held: Counter[int] = Counter()  # slots held, per account
        # Per account, its tasks that lent their slot out (downloading, or back and
        # waiting), in the order they lent it: the order they start their work.
        self.lending: dict[int, dict[str, None]] = {}
        self.queue = FairQueue(
            self.lending, ordered=prefetch, holding=lambda account: self.held[account] > 0
        )
        # The account's slots held in every lane its limit covers, and that limit (0: none).
        self._running = running or (lambda account: self.held[account])
        self._limit = limit or (lambda account: 0)
        # True while other nodes could run this lane's queued tasks: send none to download
        # beyond the free slots (``prefetch_next``), so an idle node claims them instead.
        self.spare_only = spare_only

    def lent(self, account_id: int | None = None) -> int:
        """Tasks of ``account_id`` (None: of every account) that lent their slot out."""
        if account_id is None:
            return sum(len(keys) for keys in self.lending.values())
        return len(self.lending.get(account_id, ()))

    def allowed(self, waiting: set[int]) -> Callable[[int, bool], bool]:
        """Who may take a free slot now (``waiting``: the accounts with tasks queued)."""

        def allowed(account_id: int, new: bool) -> bool:
            if new and self.prefetch is not None:  # its new tasks start by downloading
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
        next new task to start holding a slot, if any (light lane only)."""
        while self.busy < self.capacity:
            # Who waits for the last slot: in a processing lane, a task that is back (a new
            # one downloads first, without a slot; it does not hold a slot free meanwhile).
            waiting = self.queue.accounts(new=self.prefetch is None)
            picked = self.queue.pop(self.allowed(set(waiting)))
            if picked is None:
                return None
            account_id, item = picked
            self._acquire(account_id)
            if isinstance(item, str):
                return account_id, item
            self.unlend(account_id, item.key)  # now, so the ring sees it at once
            if item.slot is not None:
                item.slot.held = item.slot.came_back = True
            item.granted.set_result(None)
        return None

    def prefetch_next(self) -> tuple[int, str] | None:
        """The next new task to send downloading without a slot (processing lanes): an
        account's, in turn order, while it has fewer than ``prefetch`` lent out (and, with
        other nodes about, while the lane has a slot for every task lent out)."""
        prefetch = self.prefetch
        if prefetch is None or (self.spare_only() and self.busy + self.lent() >= self.capacity):
            return None
        picked = self.queue.take_new(lambda account: self.lent(account) < prefetch)
        if picked is not None:
            account_id, key = picked
            self.lending.setdefault(account_id, {})[key] = None
        return picked

    def _acquire(self, account_id: int) -> None:
        self.busy += 1
        self.held[account_id] += 1

    def release(self, account_id: int) -> None:
        self.busy -= 1
        self.held[account_id] -= 1
        if self.held[account_id] <= 0:
            del self.held[account_id]

    def lend(self, account_id: int, key: str) -> None:
        """A running task of the account gives its slot back to download."""
        self.release(account_id)
        self.lending.setdefault(account_id, {})[key] = None

    def unlend(self, account_id: int, key: str) -> None:
        """A task that lent its slot got it back, or ended (cancelled) without it."""
        keys = self.lending.get(account_id)
        if keys is not None:
            keys.pop(key, None)
            if not keys:
                del self.lending[account_id]

    def come_back(
        self, account_id: int, key: str, slot: Slot | None = None
    ) -> asyncio.Future[None]:
        """Queue a task back from its download; the future resolves when it has its slot
        (``slot``, marked held at once)."""
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.put_back(account_id, Comeback(key, granted, slot))
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
        *,
        held: bool = True,
    ) -> None:
        self.lane = lane
        self.account_id = account_id
        self.key = key
        self.held = held  # False: sent to download first (``Lane.prefetch_next``)
        self.came_back = False  # it lent the slot (or had none) and got one
        self.asking = False  # back from its downloads, it waits for the lane to grant one
        self._downloads = downloads
        self._changed = changed
        self._lent = 0

    @property
    def fetching(self) -> bool:
        """Its task's download runs (not: back from it, waiting for the slot)."""
        return self._lent > 0

    @contextlib.asynccontextmanager
    async def released(self) -> AsyncIterator[None]:
        self._lent += 1
        if self._lent == 1 and self.held:
            self.lane.lend(self.account_id, self.key)
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
            if self._lent == 0 and not self.held and not self.asking:
                if cancelled:
                    self.lane.unlend(self.account_id, self.key)
                else:
                    await self._reacquire()

    async def take(self) -> None:
        """The task's work begins: wait for a slot if it holds none (it was sent to download
        first and had nothing to fetch, or its downloads still run)."""
        if not self.held and not self.asking:
            await self._reacquire()

    async def _reacquire(self) -> None:
        granted = self.lane.come_back(self.account_id, self.key, self)
        self.asking = True
        self._changed()
        try:
            await asyncio.shield(granted)
        except asyncio.CancelledError:
            if granted.done():  # granted just as we were cancelled: keep it, the task ends
                self.held = True
            else:
                granted.cancel()
                self.lane.unlend(self.account_id, self.key)
            raise
        finally:
            self.asking = False
        self.held = True  # the lane counted it back when it granted the slot
        self.came_back = True

    def give_back(self) -> None:
        """The task ended: free the slot if it holds one, or its place among the tasks
        lent out if it never got one back."""
        if self.held:
            self.lane.release(self.account_id)
            self.held = False
        else:
            self.lane.unlend(self.account_id, self.key)
        self._changed()
