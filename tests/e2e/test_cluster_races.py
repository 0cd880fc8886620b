"""Two nodes racing for the same tasks: every accepted task ends, none is left behind.

Creates on both nodes at once make each node's own lanes and its claims of the other's
work reach for the same rows at the same instant (a node claims a task it also queued
itself, or starts one the other is claiming). Whatever the order, each task must be run
by exactly one node and end.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.test_cluster import ENDED, another_node, create, first_node, status

ROUNDS = 8
THREADS = 8
BATCHES = 40  # of 10 hello tasks: 400 tasks per round, half created on each node


def _flood(nodes: list, round_no: int) -> list[str]:
    """Create ``BATCHES`` batches of ten ``hello`` tasks from ``THREADS`` threads, the
    batches alternating between the nodes; the keys of every accepted task."""

    def batch(i: int) -> list[str]:
        tasks = [{"task_name": "hello", "name": f"r{round_no}-{i}-{j}"} for j in range(10)]
        return create(nodes[i % len(nodes)], tasks)

    with ThreadPoolExecutor(THREADS) as pool:
        return [key for keys in pool.map(batch, range(BATCHES)) for key in keys]


def _unended(node, keys: list[str]) -> list[dict]:
    docs = []
    for i in range(0, len(keys), 100):
        docs += status(node, keys[i : i + 100], details=True)
    return [d for d in docs if d["status"] not in ENDED]


@pytest.mark.timeout(300)
def test_concurrent_creates_on_two_nodes_leave_no_task_executing(make_server):
    a = first_node(make_server)
    b = another_node(make_server, a)
    for round_no in range(ROUNDS):
        keys = _flood([a, b], round_no)
        assert len(keys) == BATCHES * 10
        # Hello tasks take milliseconds; a task left behind stays executing for good
        # (its node is alive, so no lease runs out), far past this deadline.
        deadline = time.monotonic() + 40
        while (left := _unended(a, keys)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not left, (
            f"round {round_no}: {len(left)} tasks never ended: {left[:3]}\n"
            f"A:\n{a.log()[-3000:]}\nB:\n{b.log()[-3000:]}"
        )
    # Adoption rescues claims whose answer a lost connection swallowed; on a healthy
    # cluster no task may have needed it (it comes seconds late, after ORPHAN_AGE).
    for node in (a, b):
        assert "claimed tasks were not running here" not in node.log(), node.log()[-3000:]


@pytest.mark.timeout(180)
def test_a_file_stored_while_postgresql_is_away_is_recorded_not_orphaned(make_server, backends):
    """A task saving its outputs when PostgreSQL went away: each object saved is recorded
    once the database is back (the record waits), so the task succeeds and every object
    in the bucket is one the storage API lists."""
    a = first_node(make_server)
    names = [f"o{i}" for i in range(600)]
    [key] = create(a, [{"task_name": "test.file", "text": "x", "names": names}])
    deadline = time.monotonic() + 30
    while status(a, [key])[0]["status"] == "queued":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    backends.postgres.stop()
    try:
        time.sleep(2)
    finally:
        backends.postgres.start()
    deadline = time.monotonic() + 90
    while (doc := _current(a, key))["status"] not in ENDED:
        assert time.monotonic() < deadline, doc
        time.sleep(0.2)
    assert doc["status"] == "success", doc
    bucket = a.env["DRAGON_S3_BUCKET"]
    pages = backends.s3.client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{key}/"
    )
    stored = {obj["Key"] for page in pages for obj in page.get("Contents", [])}
    listing = a.request("GET", f"/v2/storage/files/{key}?recursive=true").json()["files"]
    assert len(stored) == len(names)
    assert {f"{key}/{f['name'].rpartition('/')[2]}" for f in listing} >= stored, listing[:3]


def _current(node, key: str) -> dict:
    """The task's status, waiting for the database to answer again."""
    r = node.request("POST", "/v2/status", {"tasks": [key]})
    return r.json()[0] if r.status == 200 else {"status": f"http {r.status}"}
