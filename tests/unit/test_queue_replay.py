"""The queue position replay picks exactly as the lanes do (dragon.engine.lanes)."""

from __future__ import annotations

import asyncio
import random

import pytest

from dragon.engine.lanes import Lane
from dragon.engine.queue_position import LaneState, replay


def real_order(lane: Lane, running: dict[str, tuple[int, float]], duration: dict[str, float]):
    """Run the real lane: the slot that ends first frees, the lane picks. A new task takes
    its slot, downloads at once (lends it) and comes back; it starts when the lane grants
    its slot back. Returns the keys in the order they start, with their start times."""

    async def scenario():
        order = []
        comebacks: dict[str, tuple[int, asyncio.Future]] = {}
        while lane.queue.size or comebacks:
            key, (account, end) = min(running.items(), key=lambda item: item[1][1])
            del running[key]
            lane.release(account)
            while True:
                picked = lane.take()
                for waiting, (owner, granted) in list(comebacks.items()):
                    if granted.done():  # granted in that take: its work starts now
                        del comebacks[waiting]
                        order.append((waiting, end))
                        running[waiting] = (owner, end + duration[waiting])
                if picked is None:
                    break
                owner, new = picked
                lane.lend(owner)  # it downloads (instantly) and comes back
                comebacks[new] = (owner, lane.come_back(owner, new))
        return order

    return asyncio.run(scenario())


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
    for n in range(capacity):  # the slots are taken by tasks that started before
        running[f"before{n}"] = (rng.choice((1, 2, 3)), rng.uniform(0.1, 3.0))
        lane._acquire(running[f"before{n}"][0])
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


def test_a_new_task_downloads_at_its_accounts_turn_and_starts_at_the_next():
    # Account 1's turn comes first, but its task a1 still has to download: it lends the
    # slot, and account 2's task, back from its download already, starts in it.
    state = LaneState(1, 2, [1, 2], {1: ["a1"]}, {2: ["b1"]}, [(2, 3.0)])
    found = replay(state, {"a1", "b1"}, 0.0, lambda key: 1.0)
    assert found == {"b1": (1, 3.0), "a1": (2, 4.0)}


def test_an_accounts_comebacks_go_before_its_new_tasks():
    state = LaneState(1, 2, [1], {1: ["a2"]}, {1: ["a1"]}, [(1, 3.0)])
    found = replay(state, {"a1", "a2"}, 0.0, lambda key: 1.0)
    assert found == {"a1": (1, 3.0), "a2": (2, 4.0)}


def test_accounts_take_turns_whether_their_tasks_are_back_or_new():
    # Account 1 has two tasks back from their downloads and one new; account 2 one new.
    state = LaneState(1, 2, [1, 2], {1: ["a3"], 2: ["b1"]}, {1: ["a1", "a2"]}, [])
    found = replay(state, {"a1", "a2", "a3", "b1"}, 0.0, lambda key: 1.0)
    assert {key: position for key, (position, _) in found.items()} == {
        "a1": 1,  # account 1's turn: a task that is back
        "a2": 2,  # account 2's turn sends b1 to download; account 1's next: a2
        "b1": 3,
        "a3": 4,
    }


def test_an_account_at_its_max_running_lets_the_others_pass():
    state = LaneState(2, 3, [1, 2], {1: ["a2"], 2: ["b1"]}, {}, [(1, 5.0)], limits={1: 1})
    found = replay(state, {"a2", "b1"}, 0.0, lambda key: 1.0)
    assert found["b1"] == (1, 0.0)
    assert found["a2"][0] == 2
