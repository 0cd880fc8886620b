"""url_callback / url_errback delivery from the outbox (docs/api.md, docs/guarantees.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Receiver:
    """Answers with the queued codes in turn (then 200) and records every call."""

    def __init__(self, codes=()) -> None:
        self.codes = list(codes)
        self.calls: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append(
                    {
                        "t": time.monotonic(),
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": body,
                    }
                )
                code = receiver.codes.pop(0) if receiver.codes else 200
                if code == "hang":
                    time.sleep(8)
                    code = 200
                self.send_response(code)
                if code == 302:
                    self.send_header("Location", receiver.url + "/redirected")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, n, timeout=20):
        deadline = time.monotonic() + timeout
        while len(self.calls) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.calls


FAST = {"DRAGON_WEBHOOK_FIRST_DELAY_SECONDS": "0.3", "DRAGON_WEBHOOK_TIMEOUT_SECONDS": "1"}


@pytest.fixture(scope="module")
def server(make_server):
    return make_server(env=FAST)


def verify(secret: str, headers: dict, body: bytes) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(sig == f"v1,{expected}" for sig in headers["webhook-signature"].split())


def details(server, key):
    return server.request("GET", f"/v2/status?tasks={key}&details=true").json()[0]


def wait_state(server, key, state, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cbs = details(server, key)["callbacks"]
        if cbs and cbs[0]["state"] == state:
            return cbs[0]
        time.sleep(0.05)
    raise AssertionError(details(server, key))


def test_callback_retries_until_success_with_one_webhook_id(server):
    rx = Receiver([500, 500])
    [doc] = server.create([{"task_name": "hello", "name": "cb", "url_callback": rx.url + "/cb"}])
    calls = rx.wait(3)
    assert len(calls) == 3
    ids = {c["headers"]["webhook-id"] for c in calls}
    assert ids == {f"msg_{doc['key']}"}
    delays = [b["t"] - a["t"] for a, b in zip(calls, calls[1:], strict=False)]
    assert delays[0] >= 0.25 and delays[1] >= delays[0]
    body = json.loads(calls[-1]["body"])
    assert body["status"] == "success" and body["result"] == "Hello cb"
    assert body["key"] == doc["key"]
    state = wait_state(server, doc["key"], "delivered")
    assert state["attempts"] == 3 and state["last_status"] == 200
    time.sleep(0.5)
    assert len(rx.calls) == 3  # exactly one success, nothing after it
    # The status a poll returns after the callback arrived is the final one.
    assert details(server, doc["key"])["status"] == "success"


def test_signature_verifies_and_detects_tampering(server):
    rx = Receiver()
    server.create([{"task_name": "hello", "name": "sig", "url_callback": rx.url}])
    [call] = rx.wait(1)
    secret = server.account["webhook_secret"]
    assert verify(secret, call["headers"], call["body"])
    tampered = bytearray(call["body"])
    tampered[5] ^= 1
    assert not verify(secret, call["headers"], bytes(tampered))
    assert call["headers"]["Content-Type"] == "application/json"


def test_errback_for_failed_and_invalid_tasks(server):
    rx = Receiver()
    server.create(
        [
            {
                "task_name": "test.file",
                "fail": True,
                "url_errback": rx.url + "/run",
                "url_callback": rx.url + "/never",
            },
            {"task_name": "hello", "url_errback": rx.url + "/invalid"},
        ]
    )
    calls = rx.wait(2)
    by_path = {c["path"]: json.loads(c["body"]) for c in calls}
    assert set(by_path) == {"/run", "/invalid"}
    assert by_path["/run"]["error_code"] == "invalid_media"
    assert by_path["/invalid"]["error"] == {"parameters": {"name": ["this field is required"]}}


def test_redirect_is_a_failure_and_not_followed_410_stops(server):
    rx = Receiver([302, 410])
    [doc] = server.create([{"task_name": "hello", "name": "r", "url_callback": rx.url + "/x"}])
    state = wait_state(server, doc["key"], "stopped")
    assert [c["path"] for c in rx.calls] == ["/x", "/x"]
    assert state["attempts"] == 2 and state["last_status"] == 410


def test_hanging_receiver_times_out_and_retries(server):
    rx = Receiver(["hang"])
    [doc] = server.create([{"task_name": "hello", "name": "h", "url_callback": rx.url}])
    state = wait_state(server, doc["key"], "delivered")
    # the hung first try timed out; a later one (a second, or a third on a loaded machine
    # where the 1 s timeout bites again) was delivered
    assert state["attempts"] >= 2
    calls = rx.wait(state["attempts"])
    assert len(calls) == state["attempts"]
    assert calls[1]["t"] - calls[0]["t"] < 6  # the retry did not wait for the hung answer


def test_loopback_callback_is_refused_by_default(make_server):
    rx = Receiver()
    server = make_server(env={**FAST, "DRAGON_ALLOW_PRIVATE_URLS": "0"})
    [doc] = server.create([{"task_name": "hello", "name": "l", "url_callback": rx.url}])
    state = wait_state(server, doc["key"], "failed")
    assert state["last_error"].startswith("url_forbidden")
    assert rx.calls == []


def test_delivery_survives_a_restart_between_tries(make_server):
    rx = Receiver([500])
    server = make_server(env={**FAST, "DRAGON_WEBHOOK_FIRST_DELAY_SECONDS": "2"})
    [doc] = server.create([{"task_name": "hello", "name": "rs", "url_callback": rx.url}])
    rx.wait(1)
    server.stop()
    server.start()
    calls = rx.wait(2)
    assert len(calls) == 2
    assert calls[0]["headers"]["webhook-id"] == calls[1]["headers"]["webhook-id"]
    assert wait_state(server, doc["key"], "delivered")["attempts"] == 2
    server.stop()


def test_rotated_secret_signs_with_both_until_the_old_one_expires(make_server):
    from tests.support.server import dragon

    server = make_server(env=FAST)
    old = server.account["webhook_secret"]
    out = dragon(
        "accounts",
        "rotate-webhook-secret",
        "test",
        "--data-dir",
        str(server.data_dir),
        env=server.env,
    )
    new = json.loads(out.stdout)["webhook_secret"]
    assert new != old
    rx = Receiver()
    server.create([{"task_name": "hello", "name": "rot", "url_callback": rx.url}])
    [call] = rx.wait(1)
    assert len(call["headers"]["webhook-signature"].split()) == 2
    assert verify(new, call["headers"], call["body"])
    assert verify(old, call["headers"], call["body"])
    dragon(
        "accounts",
        "rotate-webhook-secret",
        "test",
        "--keep-old-hours",
        "0",
        "--data-dir",
        str(server.data_dir),
        env=server.env,
    )
    server.create([{"task_name": "hello", "name": "rot2", "url_callback": rx.url}])
    calls = rx.wait(2)
    assert len(calls[1]["headers"]["webhook-signature"].split()) == 1
    assert not verify(new, calls[1]["headers"], calls[1]["body"])  # rotated away again
    server.stop()


def test_a_stopping_server_hands_back_the_deliveries_it_took(make_server):
    # Four slots per receiver: four attempts hang for a while, six deliveries wait. The
    # server is stopped meanwhile; on PostgreSQL the waiting six were claimed by it, and
    # must not stay claimed (minutes) once it is gone.
    rx = Receiver(["hang"] * 4)
    server = make_server(env={**FAST, "DRAGON_WEBHOOK_TIMEOUT_SECONDS": "10"})
    tasks = [{"task_name": "hello", "name": str(i), "url_callback": rx.url} for i in range(10)]
    keys = [d["key"] for d in server.create(tasks)]
    assert len(rx.wait(4)) == 4
    server.stop()
    server.start()
    calls = rx.wait(10, timeout=40)
    assert sorted({c["headers"]["webhook-id"] for c in calls}) == sorted(f"msg_{k}" for k in keys)
    for key in keys:
        assert wait_state(server, key, "delivered")["attempts"] == 1
    server.stop()
