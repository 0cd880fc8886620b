"""The queue position replay picks exactly as the lanes do (dragon.engine.lanes)."""

from __future__ import annotations

import asyncio
import random

import pytest

from dragon.engine.lanes import Lane
from dragon.engine.queue_position import LaneState, replay


def real_order(
    lane: Lane,
    running: dict[str, tuple[int, float]],
    duration: dict[str, float],
    comebacks: dict[str, tuple[int, asyncio.Future]],
):
    """Run the real lane: the slot that ends first frees, the lane picks. A new task is sent
    to download (``prefetch_next``), downloads at once and comes back (``comebacks``, those
    back already); it starts when the lane grants it a slot. Returns the keys in the order
    they start, with their start times."""

    async def scenario():
        order = []
        while lane.queue.size or comebacks:
            key, (account, end) = min(running.items(), key=lambda item: item[1][1])
            del running[key]
            lane.release(account)
            while True:
                assert lane.take() is None  # processing lanes start no new task holding
                for waiting, (owner, granted) in list(comebacks.items()):
                    if granted.done():  # granted in that take: its work starts now
                        del comebacks[waiting]
                        order.append((waiting, end))
                        running[waiting] = (owner, end + duration[waiting])
                if not send(lane, comebacks):
                    break
        return order

    return scenario()


def send(lane: Lane, comebacks: dict[str, tuple[int, asyncio.Future]]) -> bool:
    """The tasks the lane sends downloading now: each comes back at once."""
    sent = False
    while (picked := lane.prefetch_next()) is not None:
        owner, new = picked
        comebacks[new] = (owner, lane.come_back(owner, new))
        sent = True
    return sent


@pytest.mark.parametrize("spare_only", [False, True], ids=["one node", "with peers"])
@pytest.mark.parametrize("seed", range(40))
def test_replay_matches_the_lane(seed, spare_only):
    rng = random.Random(seed)
    capacity = rng.randint(1, 4)
    lane = Lane("batch", capacity, spare_only=lambda: spare_only)
    duration = {}
    running = {}
    for n in range(capacity):  # the slots are taken by tasks that started before
        running[f"before{n}"] = (rng.choice((1, 2, 3)), rng.uniform(0.1, 3.0))
        lane._acquire(running[f"before{n}"][0])
    keys = []
    for i in range(rng.randint(1, 25)):
        account = rng.choice((1, 2, 3))
        keys.append(f"k{i}-a{account}")
        duration[keys[-1]] = rng.uniform(0.5, 5.0)

    async def scenario():
        comebacks: dict[str, tuple[int, asyncio.Future]] = {}
        for key in keys:  # queued one by one, each sent downloading if its account may
            lane.queue.put(int(key[-1]), key)
            send(lane, comebacks)
        ring, items, back = lane.queue.snapshot()
        slots = list(running.values())
        state = LaneState(capacity, lane.prefetch, ring, items, back, slots, spare_only=spare_only)
        replayed = replay(state, set(keys), 0.0, duration.__getitem__)
        real = await real_order(lane, dict(running), duration, comebacks)
        return replayed, real

    replayed, real = asyncio.run(scenario())
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


def test_a_new_task_downloads_without_a_turn_and_starts_at_its_accounts():
    # Account 1's task a1 is new: it downloads while the slot is busy, and starts at
    # account 1's turn, before account 2's task that was back already.
    state = LaneState(1, 2, [1, 2], {1: ["a1"]}, {2: ["b1"]}, [(2, 3.0)])
    found = replay(state, {"a1", "b1"}, 0.0, lambda key: 1.0)
    assert found == {"a1": (1, 3.0), "b1": (2, 4.0)}


def test_an_accounts_comebacks_go_before_its_new_tasks():
    state = LaneState(1, 2, [1], {1: ["a2"]}, {1: ["a1"]}, [(1, 3.0)])
    found = replay(state, {"a1", "a2"}, 0.0, lambda key: 1.0)
    assert found == {"a1": (1, 3.0), "a2": (2, 4.0)}


def test_accounts_take_turns_whether_their_tasks_are_back_or_new():
    # Account 1 has two tasks back from their downloads and one new; account 2 one new.
    state = LaneState(1, 2, [1, 2], {1: ["a3"], 2: ["b1"]}, {1: ["a1", "a2"]}, [])
    found = replay(state, {"a1", "a2", "a3", "b1"}, 0.0, lambda key: 1.0)
    assert {key: position for key, (position, _) in found.items()} == {
        "a1": 1,  # account 1's turn: a task that is back (a3 waits: two are lent out)
        "b1": 2,  # account 2's turn: b1 downloaded without one
        "a2": 3,
        "a3": 4,  # sent downloading once a1 started
    }


def test_an_account_at_its_max_running_lets_the_others_pass():
    state = LaneState(2, 3, [1, 2], {1: ["a2"], 2: ["b1"]}, {}, [(1, 5.0)], limits={1: 1})
    found = replay(state, {"a2", "b1"}, 0.0, lambda key: 1.0)
    assert found["b1"] == (1, 0.0)
    assert found["a2"][0] == 2
