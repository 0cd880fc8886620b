"""One account's hanging callback receivers do not delay another account's callbacks
(issue 10, item 5).

Account A's 18 callbacks go to three receivers that accept the request and never answer;
account B's go to a receiver that answers at once. B's callbacks must arrive while every
one of A's is still hanging: no receiver takes more than its share of the delivery slots,
nor does one account.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Receiver:
    """Records every callback; with ``hang`` it answers only once ``release`` is set."""

    def __init__(self, hang: bool) -> None:
        self.calls: list[str] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append(self.path)
                if hang:
                    receiver.release.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(hang: bool) -> Receiver:
        made.append(Receiver(hang))
        return made[-1]

    yield make
    for r in made:
        r.close()


def wait_calls(receiver: Receiver, n: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while len(receiver.calls) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(receiver.calls) >= n


def test_a_hanging_receiver_does_not_delay_another_accounts_callbacks(make_server, receivers):
    # Deliveries that hang keep their slot for the whole receiver timeout.
    server = make_server(env={"DRAGON_WEBHOOK_TIMEOUT_SECONDS": "60"})
    other = server.create_account("other", "--referrer", "*")
    hanging = [receivers(hang=True) for _ in range(3)]
    fast = receivers(hang=False)

    tasks = [
        {"task_name": "hello", "name": f"a{i}", "url_callback": f"{hanging[i % 3].url}/a{i}"}
        for i in range(18)
    ]
    server.create(tasks)
    # A's deliveries have started and hang (as many as the sender lets them).
    assert all(wait_calls(r, 1, 20) for r in hanging)

    b_tasks = [
        {"task_name": "hello", "name": f"b{i}", "url_callback": f"{fast.url}/b{i}"}
        for i in range(3)
    ]
    r = server.request(
        "POST",
        "/v2/create",
        {"tasks": b_tasks, "block": True},
        headers={"Authorization": f"Secret {other['secret']}"},
    )
    assert r.status == 200, r.body
    assert wait_calls(fast, 3, 20), f"B's callbacks waited behind A's: {fast.calls}"
    assert sorted(fast.calls) == ["/b0", "/b1", "/b2"]
    # All of A's were still hanging when B's arrived; none was dropped: they follow.
    assert sum(len(r.calls) for r in hanging) < 18
    for r in hanging:
        r.release.set()
    assert all(wait_calls(r, 6, 30) for r in hanging)
    assert sorted(c for r in hanging for c in r.calls) == sorted(f"/a{i}" for i in range(18))
