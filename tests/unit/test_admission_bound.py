"""Admission by measured capacity: the drain estimate and the backlog bound."""

from __future__ import annotations

import asyncio

import pytest

from dragon.config import Settings
from dragon.engine import admission
from dragon.engine.admission import Admission, DrainRate
from dragon.errors import RateLimited


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(admission.time, "monotonic", c)
    return c


def test_the_drain_rate_is_measured_only_while_work_is_queued(clock):
    ended = [0.0]
    queued = [5]
    drain = DrainRate(lambda: ended[0], lambda: queued[0])
    for _ in range(30):  # 100 tasks a second while busy
        clock.now += 1
        ended[0] += 100
        drain.update()
    assert 90 < drain.per_second <= 100
    queued[0] = 0  # idle: nothing ends, and that says nothing of the capacity
    for _ in range(30):
        clock.now += 1
        drain.update()
    assert 90 < drain.per_second <= 100
    drain.not_drained(1000)  # tasks that ended at their create did not drain the queue
    clock.now += 1
    queued[0] = 5
    drain.update()
    assert drain.per_second < 90


def _admission(active: list[int], rate: float = 0.0) -> Admission:
    settings = Settings.load({}, admission_seconds=2.0, admission_min_backlog=10)

    async def count_active(account_id: int) -> int:
        return active[0]

    gate = Admission(settings, count_active, lambda: 1, ended=lambda: 0.0)
    gate.drain.per_second = rate
    return gate


def test_a_backlog_over_the_bound_gets_a_retry_after_and_within_it_never(clock):
    active = [0]
    gate = _admission(active, rate=50.0)  # bound: max(10, 50 * 2) = 100
    asyncio.run(gate.admit(1, 1000))  # judged on the backlog before it: a big batch passes
    active[0] = 1000
    with pytest.raises(RateLimited) as refused:
        asyncio.run(gate.admit(1, 1))
    assert 1 <= refused.value.retry_after <= 60
    asyncio.run(gate.admit(2, 5))  # another account is not refused
    clock.now += 1
    active[0] = 50  # drained below the bound: admitted again
    asyncio.run(gate.admit(1, 1))


def test_a_quick_client_below_the_floor_is_never_refused(clock):
    active = [0]  # its tasks end as fast as it creates them
    gate = _admission(active)
    for _ in range(100):
        asyncio.run(gate.admit(1, 5))
