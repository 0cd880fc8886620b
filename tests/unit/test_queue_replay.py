"""The queue position replay picks exactly as the lanes do (dragon.engine.lanes)."""

from __future__ import annotations

import random

import pytest

from dragon.engine.lanes import Lane
from dragon.engine.queue_position import LaneState, replay


def real_order(lane: Lane, running: dict[str, tuple[int, float]], duration: dict[str, float]):
    """Run the real lane: the slot that ends first frees, the lane picks; returns the keys
    in the order they start, with their start times."""
    order = []
    while lane.queue.size:
        key, (account, end) = min(running.items(), key=lambda item: item[1][1])
        del running[key]
        lane.release(account)
        while (picked := lane.take()) is not None:
            account, started = picked
            order.append((started, end))
            running[started] = (account, end + duration[started])
    return order


@pytest.mark.parametrize("seed", range(40))
def test_replay_matches_the_lane(seed):
    rng = random.Random(seed)
    capacity = rng.randint(1, 4)
    lane = Lane("batch", capacity)
    duration = {}
    for i in range(rng.randint(1, 25)):
        account = rng.choice((1, 2, 3))
        key = f"k{i}-a{account}"
        lane.queue.put(account, key)
        duration[key] = rng.uniform(0.5, 5.0)
    running = {}
    while (picked := lane.take()) is not None:  # the slots taken now
        account, key = picked
        running[key] = (account, rng.uniform(0.1, 3.0))
    ring, items, back = lane.queue.snapshot()
    state = LaneState(capacity, lane.prefetch, ring, items, back, list(running.values()))
    wanted = {key for keys in items.values() for key in keys}

    replayed = replay(state, wanted, 0.0, duration.__getitem__)
    real = real_order(lane, dict(running), duration)

    assert sorted(replayed, key=lambda key: replayed[key][0]) == [key for key, _ in real]
    for key, start in real:
        assert replayed[key][1] == pytest.approx(start)


def test_the_last_free_slot_goes_to_the_other_account():
    # Two slots; account 1 holds one and has more queued before account 2's task: the last
    # free slot goes to account 2 first.
    state = LaneState(2, 3, [1, 2], {1: ["a2", "a3"], 2: ["b1"]}, {}, [(1, 5.0)])
    found = replay(state, {"a2", "a3", "b1"}, 0.0, lambda key: 1.0)
    assert {key: position for key, (position, _) in found.items()} == {"b1": 1, "a2": 2, "a3": 3}
    assert found["b1"][1] == 0.0  # a slot is free now


def test_a_task_back_from_a_download_waits_its_accounts_turn():
    # Account 1 is next in the ring: its new task goes before account 2's task that came
    # back from its download (which does not jump the lane, only its own account's line).
    state = LaneState(1, 2, [1, 2], {1: ["a1"]}, {2: ["b1"]}, [(2, 3.0)])
    found = replay(state, {"a1", "b1"}, 0.0, lambda key: 1.0)
    assert found == {"a1": (1, 3.0), "b1": (2, 4.0)}


def test_an_accounts_comebacks_go_before_its_new_tasks():
    state = LaneState(1, 2, [1], {1: ["a2"]}, {1: ["a1"]}, [(1, 3.0)])
    found = replay(state, {"a1", "a2"}, 0.0, lambda key: 1.0)
    assert found == {"a1": (1, 3.0), "a2": (2, 4.0)}


def test_an_account_downloading_its_prefetch_waits_for_its_comebacks():
    # Account 1 has two tasks downloading (its prefetch): its new task a3 waits until one
    # of them has run, so account 2's task goes first.
    state = LaneState(1, 2, [1, 2], {1: ["a3"], 2: ["b1"]}, {1: ["a1", "a2"]}, [])
    found = replay(state, {"a1", "a2", "a3", "b1"}, 0.0, lambda key: 1.0)
    assert {key: position for key, (position, _) in found.items()} == {
        "a1": 1,
        "b1": 2,
        "a2": 3,
        "a3": 4,
    }


def test_an_account_at_its_max_running_lets_the_others_pass():
    state = LaneState(2, 3, [1, 2], {1: ["a2"], 2: ["b1"]}, {}, [(1, 5.0)], limits={1: 1})
    found = replay(state, {"a2", "b1"}, 0.0, lambda key: 1.0)
    assert found["b1"] == (1, 0.0)
    assert found["a2"][0] == 2
