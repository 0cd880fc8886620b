"""Repeated task keys cannot multiply what the server holds (issue 10, item 1).

Every status request and stream answers each distinct key once, in first-seen order, at
most ``DRAGON_MAX_TASKS_PER_REQUEST`` (1,000) keys; and a status change is encoded once
however many streams follow it. The attacks are the ones that took a server from 229 MB
to 1.6 GB: a 1 MB result named hundreds of times, on connections that never read.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.support.server import Server

BIG = "x" * 1_000_000  # hello answers "Hello " + name: a 1 MB result

# Large blocks are mapped and unmapped on their own, so RSS follows live memory instead of
# what glibc keeps after a free.
LIVE_MEMORY = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def rss_mb(server: Server) -> float:
    """The server process's resident memory, in MB."""
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def settled_rss_mb(server: Server, timeout: float = 20) -> float:
    """RSS once it stops moving (the server has answered what it was sent)."""
    deadline = time.monotonic() + timeout
    last = rss_mb(server)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = rss_mb(server)
        if abs(now - last) < 2:
            return now
        last = now
    return last


def never_reading(server: Server, method: str, path: str, body: dict | None = None):
    """Send one request on a socket with a tiny receive buffer that is never read."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", server.port))
    data = b"" if body is None else json.dumps(body).encode()
    s.sendall(
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Secret {server.secret}"
        f"\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return s


def wait_subscribers(server: Server, n: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.request("GET", "/healthz", auth=False).json()["subscribers"] >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} subscribers")


@pytest.fixture(scope="module")
def keys(dragon_server):
    docs = dragon_server.create([{"task_name": "hello", "name": n} for n in "abc"])
    return [d["key"] for d in docs]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_status_answers_each_distinct_key_once_in_first_seen_order(dragon_server, keys, version):
    a, b, c = keys
    asked = [b, a, b, "UNKNOWN", c, a, "UNKNOWN", b]
    expected = [b, a, "UNKNOWN", c]
    r = dragon_server.request("GET", f"/{version}/status?tasks={','.join(asked)}")
    assert [d["key"] for d in r.json()] == expected
    r = dragon_server.request("POST", f"/{version}/status", {"tasks": asked})
    assert [d["key"] for d in r.json()] == expected
    r = dragon_server.request("POST", f"/{version}/status", {"tasks": asked, "block": True})
    assert [d["key"] for d in r.json()] == expected
    lines = dragon_server.request("POST", f"/{version}/status_stream", {"tasks": asked}).lines()
    assert [d["key"] for d in lines[0]] == expected


def test_repeats_do_not_count_against_the_limit_but_distinct_keys_do(dragon_server, keys):
    r = dragon_server.request("POST", "/v2/status", {"tasks": [keys[0]] * 5000})
    assert r.status == 200 and len(r.json()) == 1
    many = [f"K{i:04d}" for i in range(1000)]
    r = dragon_server.request("POST", "/v2/status", {"tasks": many + many})
    assert r.status == 200 and len(r.json()) == 1000
    for path in ("/v2/status", "/v2/status_stream", "/v1/status"):
        r = dragon_server.request("POST", path, {"tasks": [*many, "K1000", *many]})
        assert r.status == 400, r.body
        [error] = r.json()["errors"]
        assert error["name"] == "tasks" and "1001" in error["description"]
        assert "1000" in error["description"]


def test_a_big_result_named_200_times_is_answered_once(dragon_server):
    [doc] = dragon_server.create([{"task_name": "hello", "name": BIG}])
    r = dragon_server.request("GET", "/v2/status?tasks=" + ",".join([doc["key"]] * 200))
    assert r.status == 200
    assert len(r.body) < 2_000_000
    assert r.json()[0]["result"] == "Hello " + BIG


def test_streams_repeating_a_big_key_without_reading_do_not_grow_memory(make_server):
    """The issue's attack: 5 connections x 100 repeats of a 1 MB key, never read.

    Before the fix each stream encoded its key 100 times: the server grew by 1.4 GB.
    """
    server = make_server(env=LIVE_MEMORY)
    [doc] = server.create([{"task_name": "hello", "name": BIG}])
    before = settled_rss_mb(server)
    socks = [
        never_reading(server, "POST", "/v2/status_stream", {"tasks": [doc["key"]] * 100})
        for _ in range(5)
    ]
    try:
        time.sleep(2)
        grown = settled_rss_mb(server) - before
        print(f"RSS {before:.0f} MB -> +{grown:.0f} MB with 5 stalled streams x 100 repeats")
        assert grown < 60, f"the server grew by {grown:.0f} MB"
    finally:
        for s in socks:
            s.close()


def test_one_change_followed_by_many_streams_is_encoded_once(make_server):
    """100 stalled streams follow one task whose final status holds 8 MB.

    8 MB is more than the kernel's socket buffers take, so what a stream has not sent
    stays in the server. Before the fix each stream held its own encoding and its own
    framed copy: the server grew by 1.7 GB; now the streams share one encoding.
    """
    server = make_server(env={"DRAGON_LIGHT_CONCURRENCY": "1", **LIVE_MEMORY})
    # The only light slot is busy, so the big task stays queued while the streams connect.
    server.create([{"task_name": "test.progress", "seconds": 15}], block=False)
    [doc] = server.create([{"task_name": "hello", "name": BIG * 8}], block=False)
    before = settled_rss_mb(server)
    socks = [
        never_reading(server, "GET", f"/v2/status_stream?tasks={doc['key']}") for _ in range(100)
    ]
    try:
        wait_subscribers(server, 100)
        status = server.request("GET", f"/v2/status?tasks={doc['key']}").json()[0]["status"]
        assert status == "queued", "the streams must connect before the change is published"
        server.request("POST", "/v2/status", {"tasks": [doc["key"]], "block": True})
        time.sleep(1)
        grown = settled_rss_mb(server) - before
        print(f"RSS {before:.0f} MB -> +{grown:.0f} MB with 100 stalled streams of an 8 MB status")
        assert grown < 200, f"the server grew by {grown:.0f} MB"
    finally:
        for s in socks:
            s.close()
