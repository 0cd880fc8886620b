"""queue_position and eta of queued tasks: one heavy slot, two accounts, fairness included."""

from __future__ import annotations

import time
from datetime import datetime

import pytest


@pytest.fixture(scope="module")
def server(make_server):
    return make_server(env={"DRAGON_CONCURRENCY": "1"})


def create(server, secret: str, tasks: list[dict]) -> list[dict]:
    r = server.request(
        "POST", "/v2/create", {"tasks": tasks}, headers={"Authorization": f"Secret {secret}"}
    )
    assert r.status == 200, r.body
    return r.json()


def statuses(server, secret: str, keys: list[str]) -> dict[str, dict]:
    r = server.request(
        "GET", "/v2/status?tasks=" + ",".join(keys), headers={"Authorization": f"Secret {secret}"}
    )
    assert r.status == 200, r.body
    return {d["key"]: d for d in r.json()}


def when(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_positions_follow_the_fair_order_and_eta_the_run_times(server):
    other = server.create_account("queue-other")
    sleep = {"task_name": "test.sleep", "seconds": 1.0}
    # History: one run of test.sleep; test.spin has none.
    assert server.run_task(sleep)["status"] == "success"

    a = [d["key"] for d in create(server, server.secret, [sleep, sleep, sleep])]
    b = [d["key"] for d in create(server, other["secret"], [sleep, sleep])]
    [spin] = [
        d["key"]
        for d in create(server, other["secret"], [{"task_name": "test.spin", "seconds": 0.2}])
    ]
    mine = statuses(server, server.secret, a)
    theirs = statuses(server, other["secret"], [*b, spin])

    assert mine[a[0]]["status"] == "executing"
    assert "queue_position" not in mine[a[0]] and "eta" not in mine[a[0]]
    # Round-robin across accounts, B first: it started waiting while A held the slot (A
    # had its turn). Then A's second task, B's second, A's third.
    positions = {
        key: doc["queue_position"]
        for key, doc in {**mine, **theirs}.items()
        if doc["status"] == "queued"
    }
    assert positions == {b[0]: 1, a[1]: 2, b[1]: 3, a[2]: 4, spin: 5}
    etas = [when(d["eta"]) for d in (theirs[b[0]], mine[a[1]], theirs[b[1]], mine[a[2]])]
    assert etas == sorted(etas)
    started = when(mine[a[0]]["events"]["started"])
    # Each run takes about a second: B's first task ends about two runs after A's first
    # started, and each later one about a run after the one before.
    assert 1.5 < etas[0] - started < 3.5
    for before, after in zip(etas, etas[1:], strict=False):
        assert 0.7 < after - before < 2.0
    assert theirs[spin]["eta"] is None  # no history for test.spin

    # The scheduler really starts them in that order.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = {
            **statuses(server, server.secret, a),
            **statuses(server, other["secret"], [*b, spin]),
        }
        if all(d["status"] == "success" for d in done.values()):
            break
        queued = [d for d in done.values() if d["status"] != "queued"]
        assert all("queue_position" not in d and "eta" not in d for d in queued)
        time.sleep(0.2)
    order = sorted(positions, key=lambda key: when(done[key]["events"]["started"]))
    assert order == [b[0], a[1], b[1], a[2], spin]
