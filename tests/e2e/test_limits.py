"""Limits that a client cannot talk its way around (issue 26): the result cache's memory,
the depth of every JSON a request carries, and the connection cap.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from tests.e2e.test_create_file import fetch
from tests.e2e.test_hardening import closed_within
from tests.support.server import Server


def rss_bytes(server: Server) -> int:
    """The server process's resident memory."""
    assert server.proc is not None
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    [line] = [line for line in status.splitlines() if line.startswith("VmRSS:")]
    return int(line.split()[1]) * 1024


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- item 6: JSON in a query string meets the bodies' depth limit ----------------------------


@pytest.mark.parametrize("depth", [100, 400])
def test_deep_json_in_a_query_string_is_a_400(dragon_server, depth):
    query = {"task_name": "hello", "name": "x", "secret": dragon_server.secret}
    url = f"{dragon_server.url}/v1/create_file/x.jpg?{urlencode(query)}"
    status, _, body = fetch(f"{url}&task_metas={quote(nested(depth))}")
    assert status == 400, body
    error = json.loads(body)["errors"][0]
    assert error == {
        "name": "task_metas",
        "location": "querystring",
        "description": "JSON nests deeper than 64 levels",
    }
    # Just under the limit is JSON as before (the task runs; hello has no output file).
    status, _, body = fetch(f"{url}&task_metas={quote(nested(60))}")
    assert status == 404 and b"no output file" in body, body


# -- item 5: the result cache of /v1/create_file is bounded in bytes ------------------------


def test_large_definitions_do_not_grow_the_result_cache(dragon_server):
    url = f"{dragon_server.url}/v1/create_file/x"
    auth = {"Authorization": f"Secret {dragon_server.secret}"}

    def create(i: int) -> None:
        task = {"task_name": "hello", "name": "x", "task_metas": {"blob": f"{i}" + "x" * 4_000_000}}
        status, _, body = fetch(url, method="POST", body={"task": task}, headers=auth)
        assert status == 404 and b"no output file" in body, body

    for i in range(3):  # warm up: allocator arenas, database pages, first-task imports
        create(i)
    before = rss_bytes(dragon_server)
    started = time.monotonic()
    for i in range(3, 33):
        create(i)
    grown = rss_bytes(dragon_server) - before
    # Kept whole, the 30 definitions (4 MB each) held 120 MB; a digest per entry holds none.
    assert grown < 40_000_000, (grown, time.monotonic() - started)


# -- item 7: the connection cap cannot be held by stalled bodies or one account's streams ----


def stalled_bodies(server: Server, count: int) -> list[socket.socket]:
    """Sockets that sent a create's head and one byte of its 100-byte body, then stall."""
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        s.sendall(
            b"POST /v2/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        sockets.append(s)
    time.sleep(0.5)  # every head read, every handler waiting for the rest of its body
    return sockets


def test_stalled_bodies_cannot_hold_the_connection_cap(make_server):
    server = make_server(env={"DRAGON_MAX_CONNECTIONS": "20"})
    sockets = stalled_bodies(server, 20)
    try:
        started = time.monotonic()
        # A new client makes room: the oldest stalled body is told 503 and closed.
        assert server.create([{"task_name": "hello", "name": "x"}])[0]["status"] == "success"
        evicted = closed_within({"first": sockets[0]}, 5)["first"]
        assert evicted is not None and evicted.startswith(b"HTTP/1.1 503"), evicted
        assert b"too many open connections" in evicted
        # The others are cut off by the short body timeout, long before the idle one (75 s).
        cut = closed_within({str(i): s for i, s in enumerate(sockets[1:])}, 15)
        assert all(a is not None and a.startswith(b"HTTP/1.1 408") for a in cut.values()), cut
        assert time.monotonic() - started < 15
    finally:
        for s in sockets:
            s.close()


def follow_events(server: Server, secret: str) -> socket.socket:
    """An open ``/v2/events?follow=true`` stream (its answer's head read)."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s.sendall(
        f"GET /v2/events?follow=true HTTP/1.1\r\nHost: x\r\nAuthorization: Secret {secret}"
        "\r\n\r\n".encode()
    )
    assert s.recv(65536).startswith(b"HTTP/1.1 200"), "the stream did not start"
    return s


def test_one_accounts_streams_cannot_take_every_connection(make_server):
    server = make_server(env={"DRAGON_MAX_CONNECTIONS": "20"})  # 5 streams per account
    other = server.create_account("other-account")
    streams = [follow_events(server, server.secret) for _ in range(20)]
    try:
        r = server.request(
            "POST",
            "/v2/create",
            {"tasks": [{"task_name": "hello", "name": "x"}], "block": True},
            headers={"Authorization": f"Secret {other['secret']}"},
        )
        assert r.status == 200, r.body
        assert r.json()[0]["status"] == "success"
        # The account's oldest streams were closed to keep its share; its newest five live.
        closed = closed_within({str(i): s for i, s in enumerate(streams)}, 3)
        assert [i for i, answer in closed.items() if answer is None] == [
            "15",
            "16",
            "17",
            "18",
            "19",
        ]
    finally:
        for s in streams:
            s.close()
