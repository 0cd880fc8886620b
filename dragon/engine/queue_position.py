"""Where a queued task stands: ``queue_position`` and ``eta`` in its status document.

The position is found by replaying the lane's own rules on a copy of its state: accounts
served round-robin (``FairQueue.pop``), each account's tasks back from (or still in) a
download before its new ones, a new task sent to download as soon as its account has
fewer than the lane's ``prefetch`` lent out (``Lane.prefetch_next``: no turn is spent on
it), no account running more than its ``max_running``, and an account not taking the last
free slot while it holds every other one and another account waits (``Lane.allowed``).
Each replayed pick happens when the next slot frees: the slot whose task is expected to
end first, from the recent run times of that task's name. A task still downloading is
counted as if it were back: where it will stand when it is.

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
    spare_only: bool = False  # other nodes about: none sent to download beyond free slots


class _Replay:
    """The copy a replay picks from (``replay``): the lane's queues, slots and counts."""

    def __init__(self, state: LaneState) -> None:
        self.state = state
        self.ring = deque(state.ring)
        self.ring.extend(account for account in state.back if account not in self.ring)
        self.items = {account: deque(keys) for account, keys in state.items.items() if keys}
        self.back = {account: deque(keys) for account, keys in state.back.items() if keys}
        self.lent = Counter({account: len(keys) for account, keys in self.back.items()})
        self.order = itertools.count()
        self.slots = [(end, next(self.order), account) for account, end in state.running]
        heapq.heapify(self.slots)
        self.held = Counter(account for account, _ in state.running)
        self.prefetch()

    def prefetch(self) -> None:
        """``Lane.prefetch_next``: the new tasks that are sent to download now."""
        limit, state = self.state.prefetch, self.state
        if limit is None:
            return
        for account in list(self.ring):
            items = self.items.get(account)
            while items and self.lent[account] < limit:
                if state.spare_only and len(self.slots) + self.lent.total() >= state.capacity:
                    return
                self.back.setdefault(account, deque()).append(items.popleft())
                self.lent[account] += 1
            if items is not None and not items:
                del self.items[account]

    def free_slot(self, now: float) -> float:
        """When the next slot is free (now, or when its task is expected to end)."""
        if len(self.slots) < self.state.capacity:
            return now
        end, _, freed = heapq.heappop(self.slots)
        self.held[freed] -= 1
        return max(end, now)

    def allowed(self, account: int, new: bool) -> bool:
        """``Lane.allowed`` on the copy."""
        state, held = self.state, self.held
        if new and state.prefetch is not None:
            return False
        limit = state.limits.get(account, 0)
        if limit and held[account] + state.elsewhere[account] >= limit:
            return False
        busy = len(self.slots)
        if state.capacity - busy > 1 or state.capacity == 1:
            return True
        new = state.prefetch is None  # elsewhere only tasks back wait for a slot
        waiting = {a for a in self.ring if (new and self.items.get(a)) or self.back.get(a)}
        return held[account] < busy or not waiting - {account}

    def next_start(self) -> tuple[int, str]:
        """Turns until a task starts its work in the free slot: ``(account, key)``. In the
        light lane a new key's turn sends it to download; it then waits, back, for its
        account's next. (Elsewhere new keys download without a turn: ``prefetch``.)"""
        fallback = _anyone if self.state.prefetch is None else _no_new
        while True:
            picked = _pop(self.ring, self.items, self.back, self.allowed)
            picked = picked or _pop(self.ring, self.items, self.back, fallback)
            assert picked is not None
            account, key, came_back = picked
            if came_back:
                self.lent[account] -= 1
                return account, key
            self.back.setdefault(account, deque()).append(key)
            self.lent[account] += 1

    def start(self, account: int, at: float, duration: float) -> None:
        self.held[account] += 1
        heapq.heappush(self.slots, (at + duration, next(self.order), account))


def replay(
    state: LaneState, wanted: set[str], now: float, duration: Callable[[str], float]
) -> dict[str, tuple[int, float]]:
    """``{key: (position, expected start)}`` for the ``wanted`` keys of the lane.

    A new key that gets its account's turn is taken to download at once (the builtin heavy
    tasks fetch first): it gives the slot back and waits for its account's next turn, as
    a task back from its download does. Positions count the starts of work.
    """
    copy = _Replay(state)
    found: dict[str, tuple[int, float]] = {}
    position = 0
    while (copy.items or copy.back) and len(found) < len(wanted):
        at = copy.free_slot(now)
        copy.prefetch()  # with other nodes about, a free slot lets one more download
        account, key = copy.next_start()
        position += 1
        if key in wanted:
            found[key] = (position, at)
        copy.start(account, at, duration(key))
        copy.prefetch()
    return found


def _anyone(account: int, new: bool) -> bool:
    return True


def _no_new(account: int, new: bool) -> bool:
    return not new


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
        # Tasks this read already sees executing: one whose row was just written so but whose
        # run is not marked begun yet is not ahead of the queued ones of the same read.
        executing = {d["key"] for d in docs if d.get("status") == "executing"}
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
                found = self._replay(lane, wanted, executing, now, duration)
                for key, (position, start) in found.items():
                    own = typical.get(runs[key].task_name)
                    queued[key]["queue_position"] = position
                    queued[key]["eta"] = documents.iso(start + own) if own is not None else None

    def begun_since(self, docs: Iterable[dict[str, Any]]) -> list[str]:
        """Keys of the queued documents without a position whose task has begun here since
        its row was read: their rows say executing now (the row is written before the run
        is marked begun), and the reader should read them again."""
        runs = self.queues.runs
        return [
            d["key"]
            for d in docs
            if d.get("status") == "queued"
            and "queue_position" not in d
            and (run := runs.get(d["key"])) is not None
            and not run.waiting
        ]

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
        self,
        lane: Lane,
        wanted: set[str],
        executing: set[str],
        now: float,
        duration: Callable[[str], float],
    ) -> dict[str, tuple[int, float]]:
        """``{key: (position, expected start)}`` of the ``wanted`` keys waiting in ``lane``.

        Tasks back from their download, holding their slot, whose work is about to begin
        come first, in their order (unless the read saw them ``executing``: their work
        began, only the run's mark lags); then the lane's picks as ``replay`` makes them."""
        runs = self.queues.runs
        mine = [r for r in runs.values() if r.lane is lane and r.slot is not None and r.slot.held]
        starting = sorted(
            (
                r
                for r in mine
                if r.slot is not None and r.slot.came_back and r.waiting and r.key not in executing
            ),
            key=lambda r: r.started,
        )
        found = {r.key: (i, now) for i, r in enumerate(starting, 1) if r.key in wanted}

        def key_duration(key: str) -> float:
            run = runs.get(key)
            return duration(run.task_name if run is not None and run.waiting else "")

        state = self._lane_state(lane, mine, duration)
        later = replay(state, wanted - found.keys(), now, key_duration)
        found.update({key: (p + len(starting), t) for key, (p, t) in later.items()})
        return found

    def _lane_state(
        self, lane: Lane, holding: list[Run], duration: Callable[[str], float]
    ) -> LaneState:
        """A copy of ``lane`` (``holding``: the runs holding its slots) to replay."""
        ring, items, back = lane.queue.snapshot()  # back: tasks back or still downloading
        running = []
        for run in holding:
            assert run.slot is not None
            account = run.slot.account_id
            if run.waiting and not run.slot.came_back:
                # Just dispatched in the light lane (the only one whose new tasks hold a
                # slot from the start; elsewhere a slot is held once granted): counted
                # with its account's tasks back from a download.
                back.setdefault(account, []).append(run.key)
                if account not in ring:
                    ring.append(account)
            else:
                running.append((account, run.started + duration(run.task_name)))
        elsewhere: Counter[int] = Counter()
        for other in self.queues.lanes.values():
            if other is not lane:
                elsewhere.update(other.held)
        return LaneState(
            lane.capacity,
            lane.prefetch,
            ring,
            items,
            back,
            running,
            self.queues.limits,
            elsewhere,
            lane.spare_only(),
        )
