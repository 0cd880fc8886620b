"""A server stopping (SIGTERM) and what its health check says meanwhile and before."""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse

import pytest

from tests.support.postgres import postgres_bin
from tests.support.server import Response


def _wait_status(server, key: str, wanted: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.request("GET", f"/v2/status?tasks={key}").json()[0]["status"] == wanted:
            return
        time.sleep(0.05)
    raise AssertionError(f"{key} never became {wanted}")


def _blocked_status(server, key: str) -> Response:
    return server.request("POST", "/v2/status", {"tasks": [key], "block": True})


def _blocked_v1_status(server, key: str) -> Response:
    return server.request("POST", "/v1/status", {"tasks": [key], "block": True})


@pytest.mark.parametrize(
    "blocked_request",
    [_blocked_status, _blocked_v1_status],
    ids=["status", "v1-status"],
)
def test_a_blocked_status_keeps_waiting_through_the_shutdown_grace(make_server, blocked_request):
    """SIGTERM gives running tasks the grace to end; a request blocked on one of them
    answers with that end, not with the ``executing`` it saw when the signal came."""
    server = make_server(env={"DRAGON_SHUTDOWN_GRACE_SECONDS": "20"})
    [doc] = server.create([{"task_name": "test.sleep", "seconds": 3.0}], block=False)
    _wait_status(server, doc["key"], "executing")
    answers: list[Response] = []
    blocked = threading.Thread(target=lambda: answers.append(blocked_request(server, doc["key"])))
    blocked.start()
    time.sleep(0.5)  # the request is waiting on the task
    server.stop(15)
    blocked.join(30)
    assert server.proc.returncode == 0, server.log()[-2000:]
    [answer] = answers
    assert answer.status == 200, answer.body
    assert answer.json()[0]["status"] == "success", answer.json()


def test_healthz_counts_the_subscribers_metrics_counts(make_server):
    """Event feed followers are subscribers for ``/metrics``; ``/healthz`` agrees."""
    server = make_server()
    host, port = urllib.parse.urlparse(server.url).netloc.rsplit(":", 1)
    request = (
        "GET /v2/events?follow=true HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Secret {server.secret}\r\n\r\n"
    ).encode()
    followers = [socket.create_connection((host, int(port))) for _ in range(5)]
    for sock in followers:
        sock.sendall(request)
    deadline = time.monotonic() + 20
    while (counted := _metric_subscribers(server)) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    health = server.request("GET", "/healthz", auth=False).json()
    for sock in followers:
        sock.close()
    assert counted == 5
    assert health["subscribers"] == 5, health


def _metric_subscribers(server) -> float:
    for line in server.request("GET", "/metrics").body.decode().splitlines():
        if line.startswith("dragon_stream_subscribers "):
            return float(line.split()[1])
    raise AssertionError("no dragon_stream_subscribers in /metrics")


@pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL is not installed")
@pytest.mark.timeout(120)
def test_healthz_says_503_while_postgresql_is_down(make_server, backends):
    """Every create is a 503 while PostgreSQL is away: the health check says so too, so a
    load balancer stops sending work to this node, and says ok again once it is back."""
    server = make_server(backend="postgres")
    assert server.request("GET", "/healthz", auth=False).status == 200
    backends.postgres.stop()
    try:
        r = server.request("POST", "/v2/create", {"tasks": [{"task_name": "hello"}]})
        assert r.status == 503, r.body
        health = server.request("GET", "/healthz", auth=False)
        assert health.status == 503, health.body
        assert health.json()["problems"] == ["the database is unavailable"]
    finally:
        backends.postgres.start()
    deadline = time.monotonic() + 30
    while (health := server.request("GET", "/healthz", auth=False)).status != 200:
        assert time.monotonic() < deadline, health.body
        time.sleep(0.2)
