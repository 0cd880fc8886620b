"""Admission by measured capacity: a flooding account is told to come back, not queued without end.

One account floods the server with ``hello`` batches, within its create rate
(``DRAGON_CREATE_RATE``) but faster than the database commits them; another account creates
blocking ``hello`` tasks meanwhile. Before admission by capacity the flood queued thousands
of tasks and the other account's tasks went from ~10 ms to ~1 s. Now the flood gets 429
with ``Retry-After`` once its backlog exceeds what the server ends in a few seconds.

On PostgreSQL, two real nodes share the database (as in ``test_cluster``); SQLite, a single
node, had the same problem and gets the same answer.
"""

from __future__ import annotations

import statistics
import threading
import time

import pytest

from tests.e2e.test_cluster import NODE, another_node
from tests.support.postgres import postgres_bin

FLOOD_SECONDS = 12.0
FLOODERS = 6
BATCH = [{"task_name": "hello", "name": "flood"}] * 100
# Below the default floor's 1,000 tasks a small test box ends the whole backlog in a few
# seconds anyway: a lower floor makes the measured capacity the bound that acts.
ADMISSION = {"DRAGON_ADMISSION_MIN_BACKLOG": "200"}


def _flood(node, until: float, answers: list[tuple[int, str | None, bytes]]) -> None:
    """Create batches until ``until``; after a 429, wait what ``Retry-After`` says."""
    while time.monotonic() < until:
        r = node.request("POST", "/v2/create", {"tasks": BATCH}, timeout=60)
        retry_after = r.headers.get("Retry-After")
        answers.append((r.status, retry_after, r.body))
        if r.status == 429:
            time.sleep(min(float(retry_after or 1), max(0.0, until - time.monotonic())))


def _blocking_hellos(nodes, secret: str, until: float) -> list[float]:
    """Blocking creates of one ``hello`` from another account, on each node in turn; how
    long each took, in seconds."""
    took = []
    while time.monotonic() < until:
        node = nodes[len(took) % len(nodes)]
        t0 = time.monotonic()
        r = node.request(
            "POST",
            "/v2/create",
            {"tasks": [{"task_name": "hello", "name": "other"}], "block": True},
            headers={"Authorization": f"Secret {secret}"},
        )
        took.append(time.monotonic() - t0)
        assert r.status == 200, r.body
        assert r.json()[0]["status"] == "success", r.body
        time.sleep(0.05)
    return took


def _nodes(make_server, backend: str) -> tuple:
    if backend == "sqlite":
        return (make_server(backend="sqlite", env=ADMISSION),)
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed")
    a = make_server(backend="postgres", env={**NODE, **ADMISSION, "DRAGON_NODE_NAME": "node-a"})
    return a, another_node(make_server, a)


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_one_accounts_flood_is_slowed_before_it_delays_another_account(make_server, backend):
    nodes = _nodes(make_server, backend)
    other = nodes[0].create_account("other-account")
    quiet = _blocking_hellos(nodes, other["secret"], time.monotonic() + 2)
    answers: list[tuple[int, str | None, bytes]] = []
    until = time.monotonic() + FLOOD_SECONDS
    flooders = [
        threading.Thread(target=_flood, args=(nodes[i % len(nodes)], until, answers))
        for i in range(FLOODERS)
    ]
    for t in flooders:
        t.start()
    time.sleep(2)  # the flood is under way
    busy = _blocking_hellos(nodes, other["secret"], until)
    for t in flooders:
        t.join()
    statuses = [status for status, _, _ in answers]
    # Refused for its backlog (the create rate's own 429 says "too many creates").
    refused = [retry for status, retry, body in answers if b"queued or executing" in body]
    p50, p95 = statistics.median(busy), statistics.quantiles(busy, n=20)[-1]
    summary = (
        f"other account: quiet p50 {statistics.median(quiet) * 1000:.0f} ms, during the"
        f" flood p50 {p50 * 1000:.0f} ms p95 {p95 * 1000:.0f} ms; flood:"
        f" {statuses.count(200)} batches admitted, {len(refused)} refused"
    )
    assert set(statuses) <= {200, 429}, summary
    # The flood is told when to come back, instead of queueing without end ...
    assert refused and all(r is not None and int(r) >= 1 for r in refused), summary
    # ... and the other account is never refused and its tasks all end (checked in
    # _blocking_hellos). Its latencies are in the summary, not asserted: how fast a shared
    # 2-core CI box answers is not what admission decides (p50 5-470 ms seen, 0.5-1 s
    # before admission); the bound is a hang guard.
    assert max(busy) < 30, summary
    print(summary)
