"""Several nodes on one PostgreSQL and one S3 bucket: any node answers for any task.

Each test starts two real ``dragon serve`` nodes sharing a fresh database (the session's
throwaway PostgreSQL) and a moto bucket, with a short lease so dead nodes are noticed fast.
"""

from __future__ import annotations

import threading
import time
import urllib.parse

import pytest

from tests.support.postgres import postgres_bin

pytestmark = pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL is not installed")

ENDED = ("success", "error")
NODE = {
    "DRAGON_LEASE_SECONDS": "3",
    "DRAGON_CONCURRENCY": "1",
    "DRAGON_SHUTDOWN_GRACE_SECONDS": "1",
}


def first_node(make_server, name: str = "node-a"):
    return make_server(backend="postgres", env={**NODE, "DRAGON_NODE_NAME": name})


def another_node(make_server, node, name: str = "node-b", start: bool = True):
    """A node on ``node``'s database and bucket, with the same account."""
    return make_server(
        env={**node.env, "DRAGON_NODE_NAME": name}, account=node.account, start=start
    )


def wait_until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def status(server, keys: list[str], **extra) -> list[dict]:
    r = server.request("POST", "/v2/status", {"tasks": keys, **extra})
    assert r.status == 200, r.body
    return r.json()


def wait_for(server, key: str, states: tuple[str, ...], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [doc] = status(server, [key], details=True)
        if doc["status"] in states:
            return doc
        time.sleep(0.05)
    raise AssertionError(f"{key} never reached {states}: {doc}")


def create(server, tasks: list[dict]) -> list[str]:
    """Create without blocking, retrying while the database is away (503)."""
    deadline = time.monotonic() + 60
    while True:
        r = server.request("POST", "/v2/create", {"tasks": tasks})
        if r.status == 200:
            return [d["key"] for d in r.json()]
        assert r.status == 503 and time.monotonic() < deadline, (r.status, r.body)
        time.sleep(0.2)


def test_create_on_one_node_then_block_stream_list_and_feed_on_the_other(make_server, backends):
    a = first_node(make_server)
    b = another_node(make_server, a)
    [key] = create(a, [{"task_name": "test.progress", "seconds": 1.0}])
    # The stream on B opens while the task is queued or running (on either node): it gets
    # the changes committed by whichever node runs it, and ends with the final status.
    stream = b.request("GET", "/v2/status_stream?" + urllib.parse.urlencode({"tasks": key}))
    assert stream.status == 200
    lines = stream.lines()
    assert lines[0][0]["key"] == key
    assert lines[-1]["status"] == "success" and lines[-1]["result"]["done"] is True
    assert len(lines) >= 2
    # Block on B for a task created on A.
    [key2] = create(a, [{"task_name": "test.progress", "seconds": 0.5}])
    [done] = b.request("POST", "/v2/status", {"tasks": [key2], "block": True}).json()
    assert done["status"] == "success"
    # create_stream on B, then its files listed and served through A.
    r = b.request(
        "POST",
        "/v2/create_stream",
        {"tasks": [{"task_name": "test.file", "text": "from a cluster"}]},
    )
    final = r.lines()[-1]
    assert final["status"] == "success", final
    listing = a.request("GET", "/v2/storage/files/?recursive=true").json()
    assert any(final["key"] in f["name"] for f in listing["files"]), listing
    # The output URL is the running node's; any node answers for it (the files table is
    # shared): each redirects to the object in the private bucket.
    url = final["result"]["output"]
    location = url.split("/storage/", 1)[1]
    for node in (a, b):
        assert node.get(f"{node.url}/storage/{location}").body == b"from a cluster"
    obj = backends.s3.client.get_object(Bucket=a.env["DRAGON_S3_BUCKET"], Key=location)
    assert obj["Body"].read() == b"from a cluster"
    # The event feed on A has B's changes, in order.
    feed = [e for e in a.request("GET", "/v2/events").lines() if e["key"] == final["key"]]
    assert [e["status"] for e in feed] == ["queued", "executing", "success"]


def test_heavy_tasks_spread_over_both_nodes(make_server):
    a = first_node(make_server)
    b = another_node(make_server, a)
    keys = create(a, [{"task_name": "test.sleep", "seconds": 1.0} for _ in range(4)])
    done = b.request("POST", "/v2/status", {"tasks": keys, "block": True, "details": True}).json()
    assert {d["status"] for d in done} == {"success"}
    # One heavy slot per node: four one-second tasks must have used both.
    assert {d["node"] for d in done} == {"node-a", "node-b"}
    assert {d["attempts"] for d in done} == {1}


def test_a_killed_node_loses_its_task_to_the_other(make_server):
    a = first_node(make_server)
    b = another_node(make_server, a)
    # One heavy slot per node: the two tasks run one on each node.
    keys = create(a, [{"task_name": "test.sleep", "seconds": 4.0} for _ in range(2)])
    running = {wait_for(a, key, ("executing",))["node"]: key for key in keys}
    assert set(running) == {"node-a", "node-b"}
    a.stop(9)
    done = wait_for(b, running["node-a"], ("success", "error"), timeout=40)
    assert done["status"] == "success", done
    assert done["node"] == "node-b"
    assert done["attempts"] == 2


def test_sigterm_drains_one_node_while_the_other_keeps_accepting(make_server):
    a = first_node(make_server)
    b = another_node(make_server, a)
    keys = create(a, [{"task_name": "test.sleep", "seconds": 4.0} for _ in range(2)])
    running = {wait_for(a, key, ("executing",))["node"]: key for key in keys}
    assert set(running) == {"node-a", "node-b"}
    stopping = threading.Thread(target=a.stop, args=(15,))
    stopping.start()
    try:
        for i in range(5):
            [doc] = b.create([{"task_name": "hello", "name": str(i)}])
            assert doc["status"] == "success"
    finally:
        stopping.join()
    assert a.proc.returncode == 0, a.log()[-2000:]
    # A gave its task back when its grace ran out; B ran it again.
    done = wait_for(b, running["node-a"], ("success", "error"), timeout=40)
    assert done["status"] == "success" and done["node"] == "node-b", done


def test_a_claim_whose_answer_was_lost_still_runs(make_server, backends):
    """A claim can commit while its answer is lost with the connection: the database then
    says node A runs a task A's lanes never got. A's heartbeat finds and starts it."""
    a = first_node(make_server)
    [key] = create(a, [{"task_name": "hello", "name": "orphan"}])
    wait_until(lambda: status(a, [key])[0]["status"] == "success")
    database = urllib.parse.urlparse(a.env["DRAGON_DATABASE_URL"]).path.lstrip("/")
    backends.postgres.sql(
        "UPDATE tasks SET status = 'executing', completed_at = NULL, result = NULL,"
        " started_at = extract(epoch from now()) - 60,"
        " owner = (SELECT owner FROM nodes WHERE name = 'node-a')"
        f" WHERE key = '{key}'",
        database,
    )
    assert status(a, [key])[0]["status"] == "executing"
    wait_until(lambda: status(a, [key])[0]["status"] == "success")
    assert "claimed tasks were not running here" in a.log()


@pytest.mark.timeout(150)
def test_a_database_restart_loses_nothing_accepted(make_server, backends):
    a = first_node(make_server)
    b = another_node(make_server, a)
    keys = create(a, [{"task_name": "test.sleep", "seconds": 0.5} for _ in range(6)])
    backends.postgres.restart()
    keys += create(b, [{"task_name": "hello", "name": str(i)} for i in range(5)])
    keys += create(a, [{"task_name": "test.sleep", "seconds": 0.2} for _ in range(2)])
    deadline = time.monotonic() + 60
    while True:
        try:
            r = b.request("POST", "/v2/status", {"tasks": keys, "block": True}, timeout=30)
        except TimeoutError:
            stuck = [d for d in status(a, keys, details=True) if d["status"] not in ENDED]
            logs = f"A:\n{a.log()[-6000:]}\nB:\n{b.log()[-6000:]}"
            raise AssertionError(f"not ended after 30 s: {stuck}\n{logs}") from None
        if r.status == 200:
            break
        assert r.status == 503 and time.monotonic() < deadline, (r.status, r.body)
        time.sleep(0.2)
    assert [d["status"] for d in r.json()] == ["success"] * len(keys)
    # Both nodes still serve: a new task created on B after the restart runs.
    after = {"tasks": [{"task_name": "hello", "name": "after"}], "block": True}
    try:
        r = b.request("POST", "/v2/create", after, timeout=30)
    except TimeoutError:
        logs = f"A:\n{a.log()[-6000:]}\nB:\n{b.log()[-6000:]}"
        raise AssertionError(f"a task created after the restart hung\n{logs}") from None
    assert r.status == 200, r.body
    assert r.json()[0]["status"] == "success", r.json()


def test_callbacks_are_sent_once_across_the_cluster(make_server):
    from tests.e2e.test_callbacks import Receiver

    receiver = Receiver(codes=[500] * 4)  # the first four deliveries are retried
    fast = {"DRAGON_WEBHOOK_FIRST_DELAY_SECONDS": "0.3", "DRAGON_WEBHOOK_TIMEOUT_SECONDS": "2"}
    a = make_server(backend="postgres", env={**NODE, **fast, "DRAGON_NODE_NAME": "node-a"})
    b = make_server(env={**a.env, "DRAGON_NODE_NAME": "node-b"}, account=a.account)
    tasks = [
        {"task_name": "hello", "name": str(i), "url_callback": receiver.url + "/hook"}
        for i in range(20)
    ]
    keys = create(a, tasks[:10]) + create(b, tasks[10:])
    calls = receiver.wait(24, timeout=40)
    time.sleep(2)  # room for a duplicate to show up
    ids = [c["headers"]["webhook-id"] for c in receiver.calls]
    assert sorted(set(ids)) == sorted(f"msg_{key}" for key in keys)
    assert len(calls) == len(receiver.calls) == 24, ids
    done = status(b, keys, details=True)
    assert {d["callbacks"][0]["state"] for d in done} == {"delivered"}


def test_postgres_without_s3_is_refused_with_the_reason(tmp_path, backends):
    from tests.support.server import dragon, free_port

    env = backends.env()
    del env["DRAGON_S3_BUCKET"]
    r = dragon(
        "serve",
        env={**env, "DRAGON_DATA_DIR": str(tmp_path), "DRAGON_PORT": str(free_port())},
        check=False,
    )
    assert r.returncode == 2
    assert "DRAGON_S3_BUCKET" in r.stderr and "could not be served" in r.stderr
    # accounts work against the same URL without S3
    created = dragon("accounts", "create", "ops", env={**env, "DRAGON_DATA_DIR": str(tmp_path)})
    assert '"api_key"' in created.stdout
