"""The process pool for CPU work (Pillow, numpy, parsing), with jobs that can be stopped.

``ProcessPoolExecutor`` cannot stop a job once a worker runs it: a task that times out or
is cancelled would leave its job running, holding a worker (and so every task that needs
one) for as long as the job lasts. Here, cancelling a running job kills the pool's worker
processes and starts a fresh pool. Other jobs that were running in the killed pool get
``BrokenProcessPool`` and are run again in the new one: pool jobs are pure functions of
their arguments, so running one twice is safe.

Workers are shared by every account, so one account's jobs may hold at most ``share`` of
them (all but one, by default) and wait their turn for more (``FairShare``): an account
queueing many long jobs cannot delay another account's next job past the current one.

Workers end with the server even when it is killed (SIGKILL, the OOM killer): their parent
is multiprocessing's fork server, not the server, and they would otherwise wait on their
job queue forever, each holding its memory (see ``_exit_with``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import select
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from dragon.runtime.processes import set_tool_memory, set_tool_nice

log = logging.getLogger("dragon.runtime.pool")


class FairShare:
    """At most ``capacity`` holders at once, at most ``share`` of them for one account;
    waiting accounts are served round-robin, each account's own waiters in order."""

    def __init__(self, capacity: int, share: int) -> None:
        self.capacity = max(1, capacity)
        self.share = max(1, min(share, self.capacity))
        self.held: dict[Hashable, int] = {}
        self._waiting: dict[Hashable, deque[asyncio.Future[None]]] = {}  # in turn order

    @property
    def busy(self) -> int:
        return sum(self.held.values())

    @contextlib.asynccontextmanager
    async def slot(self, account: Hashable) -> AsyncIterator[None]:
        """Hold one slot for ``account`` (waiting for it as long as it takes)."""
        turn = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(account, deque()).append(turn)
        self._grant()
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release(account)  # granted as it was cancelled: give it back
            else:
                self._forget(account, turn)
            raise
        try:
            yield
        finally:
            self._release(account)

    def _grant(self) -> None:
        """Hand free slots to the waiting accounts in turn, skipping those at their share."""
        granted = True
        while granted and self.busy < self.capacity:
            granted = False
            for account in list(self._waiting):
                if self.busy >= self.capacity:
                    return
                if self.held.get(account, 0) >= self.share:
                    continue
                queue = self._waiting.pop(account)
                queue.popleft().set_result(None)
                self.held[account] = self.held.get(account, 0) + 1
                if queue:
                    self._waiting[account] = queue  # back of the turn order
                granted = True

    def _release(self, account: Hashable) -> None:
        self.held[account] -= 1
        if not self.held[account]:
            del self.held[account]
        self._grant()

    def _forget(self, account: Hashable, turn: asyncio.Future[None]) -> None:
        queue = self._waiting.get(account)
        if queue is not None and turn in queue:
            queue.remove(turn)
            if not queue:
                del self._waiting[account]


class WorkerPool:
    """``workers`` processes at niceness ``nice`` (below the API, like the tools they run).

    ``share``: the workers one account's jobs may hold at once (0: all but one, so another
    account always finds a worker within one job's time).
    """

    def __init__(
        self,
        workers: int,
        initializer: Callable[[], None] | None = None,
        nice: int = 0,
        tool_memory: int = 0,
        share: int = 0,
    ) -> None:
        self.workers = workers
        self.initializer = initializer
        self.nice = nice
        self.tool_memory = tool_memory  # address space of the tools workers spawn (0: any)
        self.fair = FairShare(workers, share or workers - 1)
        self._executor = self._new()

    def _new(self) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_start_worker,
            initargs=(os.getpid(), self.nice, self.initializer, self.tool_memory),
        )

    async def run(self, fn: Callable[..., Any], *args: Any, account: Hashable = None) -> Any:
        """``fn(*args)`` in a worker, once ``account`` has a worker free within its share.

        Jobs wait here rather than in the executor's own queue, which serves all comers in
        order: there, one account's backlog would come before every later job."""
        async with self.fair.slot(account):
            return await self._run(fn, *args)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        for attempt in range(3):
            executor = self._executor
            future = executor.submit(fn, *args)
            try:
                return await asyncio.wrap_future(future, loop=loop)
            except BrokenProcessPool:
                if executor is self._executor or attempt == 2:
                    raise  # the pool broke by itself (a worker crashed): not ours to retry
                continue  # killed to stop another task's job: run again in the new pool
            except asyncio.CancelledError:
                if not future.done() and not future.cancel():
                    self._restart(executor)  # running: only killing its worker stops it
                raise
        raise AssertionError("unreachable")

    def _restart(self, executor: concurrent.futures.ProcessPoolExecutor) -> None:
        if executor is not self._executor:
            return
        log.info("stopping a cancelled pool job: restarting the worker pool")
        self._executor = self._new()
        # ProcessPoolExecutor has no public way to kill its workers; _processes is stable
        # across CPython 3.8-3.13.
        for process in list(getattr(executor, "_processes", {}).values()):
            with contextlib.suppress(Exception):
                process.kill()
        executor.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        for process in list(getattr(self._executor, "_processes", {}).values()):
            with contextlib.suppress(Exception):
                process.kill()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _start_worker(
    server: int, nice: int, initializer: Callable[[], None] | None, tool_memory: int = 0
) -> None:
    """Tie the worker's life to the ``server`` process, lower it to ``nice`` (tools it
    spawns inherit it), give the tools it spawns their memory limit, then ``initializer``."""
    _exit_with(server)
    lower = nice - os.nice(0)
    if lower > 0:
        os.nice(lower)
    set_tool_nice(nice)
    set_tool_memory(tool_memory)
    if initializer:
        initializer()


def _exit_with(server: int) -> None:
    """End this worker as soon as the ``server`` process ends, however it ends.

    A thread waits on a pidfd of the server (readable once it has exited); the tools the
    worker runs die with it (``setpriv --pdeathsig``), and the fork server exits once no
    worker is left.
    """
    try:
        pidfd = os.pidfd_open(server)
    except ProcessLookupError:  # already gone
        os._exit(0)
    except OSError:  # a kernel without pidfds (before Linux 5.3): no watch
        return

    def watch() -> None:
        select.select([pidfd], [], [])
        os._exit(0)

    threading.Thread(target=watch, name="dragon-exit-with-server", daemon=True).start()
