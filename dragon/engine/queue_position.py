"""Where a queued task stands: ``queue_position`` and ``eta`` in its status document.

The position is found by replaying the lane's own rules on a copy of its state: accounts
served round-robin (``FairQueue.pop``), each account's tasks back from (or still in) a
download before its new ones, no account downloading more than the lane's ``prefetch``
ahead or running more than its ``max_running``, and an account not taking the last free
slot while it holds every other one and another account waits (``Lane.allowed``). Each
replayed pick happens when the next slot frees: the slot whose task is expected to end
first, from the recent run times of that task's name. A task still downloading is counted
as if it were back: where it will stand when it is.

``eta`` is when the task is expected to *end*: its replayed start plus the median of the
recent successful run times of its task name (the last ``HISTORY``, kept in memory and
read from the database once per name). Without any history for the name it is null; a
task ahead whose name has no history counts as the median of the names that have one.
Both fields are an estimate of the current state; they are not pushed as they change.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import statistics
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from dragon.database.interface import Database
from dragon.engine import documents
from dragon.engine.lanes import Lane
from dragon.engine.runs import Run

HISTORY = 20


@dataclasses.dataclass
class LaneState:
    """A copy of what decides a lane's next picks."""

    capacity: int
    prefetch: int | None  # tasks per account that may download ahead (None: any)
    ring: list[int]  # accounts with waiting tasks, in serving order
    items: dict[int, list[str]]  # their new keys, oldest first
    back: dict[int, list[str]]  # their tasks back from (or still in) a download, first
    running: list[tuple[int, float]]  # (account, expected end) of each slot held
    limits: dict[int, int] = dataclasses.field(default_factory=dict)  # max_running
    elsewhere: Counter[int] = dataclasses.field(default_factory=Counter)  # slots in other lanes


def replay(
    state: LaneState, wanted: set[str], now: float, duration: Callable[[str], float]
) -> dict[str, tuple[int, float]]:
    """``{key: (position, expected start)}`` for the ``wanted`` keys of the lane.

    A new key that gets its account's turn is taken to download at once (the builtin heavy
    tasks fetch first): it gives the slot back and waits for its account's next turn, as
    a task back from its download does. Positions count the starts of work.
    """
    ring = deque(state.ring)
    ring.extend(account for account in state.back if account not in ring)
    items = {account: deque(keys) for account, keys in state.items.items() if keys}
    back = {account: deque(keys) for account, keys in state.back.items() if keys}
    lent = Counter({account: len(keys) for account, keys in back.items()})
    order = itertools.count()
    slots = [(end, next(order), account) for account, end in state.running]
    heapq.heapify(slots)
    held = Counter(account for account, _ in state.running)
    found: dict[str, tuple[int, float]] = {}
    position = 0
    while (items or back) and len(found) < len(wanted):
        start = now
        if len(slots) >= state.capacity:
            start, _, freed = heapq.heappop(slots)
            held[freed] -= 1
        busy = len(slots)
        waiting = {a for a in ring if items.get(a) or back.get(a)}

        def allowed(account: int, new: bool, busy: int = busy, waiting: set[int] = waiting) -> bool:
            if new and state.prefetch is not None and lent[account] >= state.prefetch:
                return False
            limit = state.limits.get(account, 0)
            if limit and held[account] + state.elsewhere[account] >= limit:
                return False
            if state.capacity - busy > 1 or state.capacity == 1:
                return True
            return held[account] < busy or not waiting - {account}

        while True:  # turns until one starts work in the free slot
            picked = _pop(ring, items, back, allowed) or _pop(ring, items, back, _anyone)
            assert picked is not None
            account, key, came_back = picked
            if came_back:
                break
            back.setdefault(account, deque()).append(key)  # it downloads, then waits
            lent[account] += 1
        lent[account] -= 1
        position += 1
        start = max(start, now)
        if key in wanted:
            found[key] = (position, start)
        held[account] += 1
        heapq.heappush(slots, (start + duration(key), next(order), account))
    return found


def _anyone(account: int, new: bool) -> bool:
    return True


def _pop(
    ring: deque[int],
    items: dict[int, deque[str]],
    back: dict[int, deque[str]],
    allowed: Callable[[int, bool], bool],
) -> tuple[int, str, bool] | None:
    """``FairQueue.pop`` on the copy: ``(account, key, came back from a download)``."""
    for index, account in enumerate(ring):
        picked: tuple[int, str, bool] | None = None
        if back.get(account):
            if allowed(account, False):
                picked = (account, back[account].popleft(), True)
        elif items.get(account) and allowed(account, True):
            picked = (account, items[account].popleft(), False)
        if picked is not None:
            del ring[index]
            for queues in (items, back):
                if account in queues and not queues[account]:
                    del queues[account]
            ring.append(account)
            return picked
    return None


class Queues(Protocol):
    """What queue positions read of the scheduler: its lanes and the runs they hold."""

    @property
    def lanes(self) -> Mapping[str, Lane]: ...
    @property
    def runs(self) -> Mapping[str, Run]: ...
    @property
    def limits(self) -> dict[int, int]: ...


class QueueEstimates:
    """Run-time history per task name, and the annotation of queued status documents."""

    def __init__(self, queues: Queues, database: Database) -> None:
        self.queues = queues
        self.db = database
        self.run_times: dict[str, deque[float]] = {}

    def record(self, task_name: str, seconds: float) -> None:
        """A successful run ended (names not read yet get it from the database later)."""
        history = self.run_times.get(task_name)
        if history is not None:
            history.append(max(0.0, seconds))

    async def typical(self, task_name: str) -> float | None:
        history = self.run_times.get(task_name)
        if history is None:
            rows = await self.db.recent_run_times(task_name, HISTORY)
            history = self.run_times[task_name] = deque(
                (max(0.0, r) for r in reversed(rows)), maxlen=HISTORY
            )
        return statistics.median(history) if history else None

    async def annotate(self, docs: list[dict[str, Any]]) -> None:
        """Add ``queue_position`` and ``eta`` to the queued documents among ``docs``."""
        queued = self._queued_here(docs)
        if not queued:
            return
        now = time.time()
        typical = await self._typical_times()
        # The awaits above let tasks start meanwhile: keep only those still queued here.
        queued = self._queued_here(queued.values())
        runs = self.queues.runs
        known = [t for t in typical.values() if t is not None]
        fallback = statistics.median(known) if known else 0.0

        def duration(name: str) -> float:
            value = typical.get(name)
            return fallback if value is None else value

        for lane in self.queues.lanes.values():
            wanted = {key for key in queued if runs[key].lane is lane}
            if wanted:
                found = self._replay(lane, wanted, now, duration)
                for key, (position, start) in found.items():
                    own = typical.get(runs[key].task_name)
                    queued[key]["queue_position"] = position
                    queued[key]["eta"] = documents.iso(start + own) if own is not None else None

    def _queued_here(self, docs: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The documents of ``docs`` that say queued and whose task waits on this node."""
        runs = self.queues.runs
        return {
            d["key"]: d
            for d in docs
            if d.get("status") == "queued"
            and (run := runs.get(d["key"])) is not None
            and run.waiting
        }

    async def _typical_times(self) -> dict[str, float | None]:
        """The typical run time of every task name queued or running here."""
        typical: dict[str, float | None] = {}
        for name in {run.task_name for run in self.queues.runs.values()}:
            typical[name] = await self.typical(name)
        return typical

    def _replay(
        self, lane: Lane, wanted: set[str], now: float, duration: Callable[[str], float]
    ) -> dict[str, tuple[int, float]]:
        """``{key: (position, expected start)}`` of the ``wanted`` keys waiting in ``lane``."""
        runs = self.queues.runs
        ring, items, back = lane.queue.snapshot()
        running = []
        for run in runs.values():
            if run.lane is not lane or run.slot is None:
                continue
            if run.slot.held:
                running.append((run.slot.account_id, run.started + duration(run.task_name)))
            elif run.downloading and run.key not in back.get(run.slot.account_id, []):
                # Still downloading: it comes back ahead of its account's new tasks.
                back.setdefault(run.slot.account_id, []).append(run.key)
        elsewhere: Counter[int] = Counter()
        for other in self.queues.lanes.values():
            if other is not lane:
                elsewhere.update(other.held)
        state = LaneState(
            lane.capacity, lane.prefetch, ring, items, back, running, self.queues.limits, elsewhere
        )

        def key_duration(key: str) -> float:
            run = runs.get(key)
            return duration(run.task_name if run is not None and run.waiting else "")

        # Tasks holding their slot whose work is about to begin go first, in their order.
        starting = sorted(
            (r for r in runs.values() if r.lane is lane and r.slot is not None and r.slot.held),
            key=lambda r: r.started,
        )
        starting = [r for r in starting if r.waiting and r.task is not None]
        found = {r.key: (i, now) for i, r in enumerate(starting, 1) if r.key in wanted}
        later = replay(state, wanted - found.keys(), now, key_duration)
        found.update({key: (p + len(starting), t) for key, (p, t) in later.items()})
        return found
