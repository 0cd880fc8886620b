"""Cancel on two nodes sharing PostgreSQL and an S3 bucket: the request goes to the node that
does NOT run the task, and the node that runs it stops it.

The cancel is one write on the node that gets the request; the running node hears of it
through the database's notifications and stops its run without writing an end of its own.
So each task ends once (one errback, one end in the feed), its tool is gone from the running
node, and nothing of it is left in that node's data folder or in the bucket.
"""

from __future__ import annotations

import pytest

from tests.e2e.test_cancel import (
    CHUNK,
    HANG_GUARD,
    TOKEN,
    Receiver,
    alive,
    assert_cancelled,
    cancel,
    leftovers,
    status,
    tool_pids,
    upload_task,
    wait_until,
)
from tests.support import media
from tests.support.platforms import PlatformServer
from tests.support.postgres import postgres_bin

pytestmark = pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL is not installed")


@pytest.fixture(scope="module")
def platforms():
    server = PlatformServer()
    server.vimeo.tokens = {TOKEN}
    yield server
    server.close()


@pytest.fixture(scope="module")
def nodes(make_server, platforms):
    env = {
        **platforms.env,
        "DRAGON_LEASE_SECONDS": "3",
        "DRAGON_CONCURRENCY": "1",
        "DRAGON_SHUTDOWN_GRACE_SECONDS": "1",
        "DRAGON_UPLOAD_CHUNK_BYTES": str(CHUNK),
        "DRAGON_WEBHOOK_FIRST_DELAY_SECONDS": "0.3",
    }
    a = make_server(backend="postgres", env={**env, "DRAGON_NODE_NAME": "cancel-a"})
    b = make_server(env={**a.env, "DRAGON_NODE_NAME": "cancel-b"}, account=a.account)
    return {"cancel-a": a, "cancel-b": b}


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.httpd.shutdown()


@pytest.fixture(autouse=True)
def idle(nodes):
    for node in nodes.values():
        wait_until(
            lambda node=node: node.request("GET", "/healthz", auth=False).json()["executing"] == 0,
            HANG_GUARD,
            "the nodes to be idle",
        )


def running_on(nodes: dict, key: str):
    """(the node running ``key``, the other one)."""
    first = next(iter(nodes.values()))
    node = wait_until(
        lambda: next(
            (d["node"] for d in status(first, [key], details=True) if d["status"] == "executing"),
            None,
        ),
        what=f"{key} to start",
    )
    other = next(name for name in nodes if name != node)
    return nodes[node], nodes[other]


def feed_ends(node, key: str) -> list[str]:
    return [e["status"] for e in node.request("GET", "/v2/events").lines() if e["key"] == key]


def stop_from_the_other_node(nodes: dict, key: str) -> None:
    """Cancel ``key`` through the node not running it; the runner's tool and files go."""
    runner, other = running_on(nodes, key)
    [pid] = wait_until(lambda: tool_pids(runner, key, "sleep"), what="sleep to run")
    [doc] = cancel(other, [key])
    assert_cancelled(doc, key, started=True)
    wait_until(lambda: not alive(pid), HANG_GUARD, "the runner to kill its tool")
    wait_until(lambda: not leftovers(runner, key), HANG_GUARD, "its files to go")
    assert status(runner, [key]) == [doc]


def test_queued_and_executing_tasks_are_cancelled_from_the_other_node(nodes, receiver):
    a = nodes["cancel-a"]
    hook = {"url_errback": f"{receiver.url}/cluster"}
    docs = a.create(
        [{"task_name": "test.sleep", "seconds": 300, **hook} for _ in range(3)], block=False
    )
    keys = [d["key"] for d in docs]
    # One heavy slot per node: two run, one on each node, and the third waits.
    wait_until(
        lambda: (
            sorted(d["status"] for d in status(a, keys)) == ["executing", "executing", "queued"]
        ),
        what="two running and one queued",
    )
    [queued] = [d["key"] for d in status(a, keys) if d["status"] == "queued"]
    for node in nodes.values():  # either node ends a queued task at once
        [doc] = cancel(node, [queued])
        assert_cancelled(doc, queued, started=False)

    for key in keys:
        if key != queued:
            stop_from_the_other_node(nodes, key)

    # Each task ended once: one errback each, one end in the feed, as the request saw it.
    wait_until(lambda: len(receiver.calls) >= 3, HANG_GUARD, "three errbacks")
    assert sorted(body["key"] for _, body in receiver.calls) == sorted(keys)
    assert all(body["error_code"] == "cancelled" for _, body in receiver.calls)
    for key in keys:
        assert feed_ends(a, key).count("error") == 1
    assert cancel(nodes["cancel-b"], keys) == status(a, keys)  # and again: as they are


def test_an_executing_convert_is_stopped_by_the_other_node(nodes, origin, backends, tmp_path):
    clip = media.video(tmp_path / "long.mp4", duration=60, size="640x360")
    url = origin.add_file("cancel-cluster/long.mp4", clip, "video/mp4")
    [created] = nodes["cancel-a"].create(
        [{"task_name": "video.convert", "url": url, "width": 1920}], block=False
    )
    key = created["key"]
    runner, other = running_on(nodes, key)
    [pid] = wait_until(lambda: tool_pids(runner, key, "ffmpeg"), what="ffmpeg to encode")
    [doc] = cancel(other, [key])
    assert_cancelled(doc, key, started=True)
    wait_until(lambda: not alive(pid), HANG_GUARD, "ffmpeg to be killed")
    wait_until(
        lambda: not leftovers(runner, key, backends.s3.client), HANG_GUARD, "no file of the task"
    )
    assert feed_ends(other, key) == ["queued", "executing", "error"]


def test_an_executing_upload_is_ended_by_the_other_node(nodes, origin, platforms, tmp_path):
    video = media.video(tmp_path / "upload.mp4", size="640x480")
    url = origin.add_file("cancel-cluster/upload.mp4", video, "video/mp4")
    vimeo = platforms.vimeo
    vimeo.delay = 30.0
    try:
        [created] = nodes["cancel-b"].create([upload_task("vimeo", url)], block=False)
        key = created["key"]
        wait_until(lambda: vimeo.uploads, 60, "the upload to start")
        [upload_id] = list(vimeo.uploads)
        runner, other = running_on(nodes, key)
        [doc] = cancel(other, [key])
        assert_cancelled(doc, key, started=True)
        wait_until(
            lambda: {upload_id, f"video {upload_id}"} <= set(vimeo.ended),
            HANG_GUARD,
            "the running node to end the upload on Vimeo",
        )
        wait_until(lambda: not leftovers(runner, key), HANG_GUARD, "its files to go")
        assert status(runner, [key]) == [doc]
    finally:
        vimeo.delay = 0.0
