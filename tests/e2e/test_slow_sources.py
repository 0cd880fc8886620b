"""Slow sources must not starve other accounts.

An origin that sends one byte at a time used to hold every processing slot it was given:
tasks downloading from it sat in their lane's slots and another account's work waited
behind them. Now a task lends its slot out while it downloads, an account cannot take a
lane's last free slot while another account waits, and a source slower than the minimum
rate is cut with ``download_too_slow``.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.media import image_bytes


class Trickle:
    """An origin that announces ``size`` bytes and sends one every ``every`` seconds."""

    def __init__(self, size: int = 10_000, every: float = 0.25) -> None:
        trickle = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                try:
                    for _ in range(size):
                        if trickle.stop.is_set():
                            return
                        self.wfile.write(b"\0")
                        self.wfile.flush()
                        time.sleep(every)
                except OSError:
                    pass

        self.stop = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/slow"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()


@pytest.fixture
def trickle():
    t = Trickle()
    yield t
    t.close()


@pytest.fixture(scope="module")
def server(make_server):
    return make_server(
        env={
            "DRAGON_CONCURRENCY": "2",
            "DRAGON_LIGHT_CONCURRENCY": "2",
            "DRAGON_FETCH_MIN_RATE_BYTES": "100",
            "DRAGON_FETCH_MIN_RATE_WINDOW_SECONDS": "6",
        }
    )


def accounts(server) -> tuple[dict, dict]:
    a = server.create_account(f"slow-a-{time.monotonic_ns()}")
    b = server.create_account(f"slow-b-{time.monotonic_ns()}")
    return a, b


def create(server, account: dict, tasks: list[dict], block: bool = False) -> list[dict]:
    r = server.request(
        "POST",
        "/v2/create",
        {"tasks": tasks, "block": block},
        headers={"Authorization": f"Secret {account['secret']}"},
    )
    assert r.status == 200, r.body
    return r.json()


def statuses(server, account: dict, keys: list[str]) -> list[dict]:
    r = server.request(
        "POST",
        "/v2/status",
        {"tasks": keys},
        headers={"Authorization": f"Secret {account['secret']}"},
    )
    assert r.status == 200, r.body
    return r.json()


def test_trickling_downloads_hold_no_light_slot(server, trickle):
    a, b = accounts(server)
    slow = create(server, a, [{"task_name": "audio.info", "url": trickle.url}] * 6)
    time.sleep(1.0)  # every slow task has started its download
    docs = statuses(server, a, [s["key"] for s in slow])
    assert all(s["status"] == "executing" for s in docs), docs
    done = create(server, b, [{"task_name": "hello", "name": "B"}], block=True)
    assert done[0]["status"] == "success", done
    # B finished while all six of A's downloads were still trickling: none held a slot.
    still = statuses(server, a, [s["key"] for s in slow])
    assert all(s["status"] == "executing" for s in still), still


def test_trickling_downloads_hold_no_heavy_slot(server, trickle, origin):
    a, b = accounts(server)
    slow = create(server, a, [{"task_name": "image.thumb", "url": trickle.url, "width": 10}] * 2)
    time.sleep(1.0)
    url = origin.add("slow-sources/fast.png", image_bytes(fmt="PNG"), "image/png")
    done = create(server, b, [{"task_name": "image.thumb", "url": url, "width": 32}], block=True)
    assert done[0]["status"] == "success", done
    # A's tasks are still downloading: queued (their work has not begun), saying so.
    still = statuses(server, a, [s["key"] for s in slow])
    assert all(s["status"] == "queued" and s["stage"] == "downloading" for s in still), still


def test_a_source_below_the_minimum_rate_is_cut(server, trickle):
    a, _ = accounts(server)
    ended = create(server, a, [{"task_name": "audio.info", "url": trickle.url}], block=True)
    assert ended[0]["status"] == "error", ended
    assert ended[0]["error_code"] == "download_too_slow", ended
    assert "bytes/s" in ended[0]["error"]
