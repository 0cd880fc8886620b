"""Run coroutines together, a few at a time, and stop them all at the first failure.

``asyncio.TaskGroup`` would wrap a ``TaskError`` in an ``ExceptionGroup``, which the task
runner does not unwrap; this raises the first error itself, after cancelling the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")


async def gather(aws: Iterable[Awaitable[T]], *, limit: int) -> list[T]:
    """Results in order; at most ``limit`` awaitables run at once."""
    slots = asyncio.Semaphore(limit)

    async def bounded(aw: Awaitable[T]) -> T:
        async with slots:
            return await aw

    tasks = [asyncio.ensure_future(bounded(aw)) for aw in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def pair(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Both results, each keeping its own type (``gather`` gives one list of one type)."""
    firsts: list[A] = []
    seconds: list[B] = []

    async def run_first() -> None:
        firsts.append(await first)

    async def run_second() -> None:
        seconds.append(await second)

    await gather([run_first(), run_second()], limit=2)
    return firsts[0], seconds[0]
