"""A hostile or unlucky day, from outside: each test is an attack or fault a tester ran
against ``dragon serve``, and what the server must do instead of what it did.
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from tests.support.server import Server


def raw_request(server: Server, data: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes on a fresh connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def status_line(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def web_account(dragon_server):
    """An account whose api key works only from *.example.com pages."""
    return dragon_server.create_account("web-hardening", "--referrer", "*.example.com")


# -- referrers (items 7 and 9) ------------------------------------------------------------


@pytest.mark.parametrize("header", ["Referer", "Origin"])
def test_a_bracketed_host_in_the_referrer_is_401_not_500(dragon_server, web_account, header):
    r = dragon_server.request(
        "POST",
        "/v2/create",
        {"tasks": [{"task_name": "hello", "name": "x"}]},
        auth=False,
        headers={
            "Authorization": f"Api-Key {web_account['api_key']}",
            header: "https://[app.example.com]/",
        },
    )
    assert r.status == 401, r.body
    assert r.json()["errors"][0]["name"] == "authorization"


@pytest.mark.parametrize(
    "referrer",
    [
        "https://evil.com\\.example.com/",
        "https://evil.com%2F.example.com/",
        "javascript://app.example.com/%0aalert(1)",
        "https://app.example.com@evil.com/",
    ],
)
def test_referrers_that_only_look_whitelisted_are_refused(dragon_server, web_account, referrer):
    r = dragon_server.request(
        "POST",
        "/v2/create",
        {"tasks": [{"task_name": "hello", "name": "x"}]},
        auth=False,
        headers={"Authorization": f"Api-Key {web_account['api_key']}", "Referer": referrer},
    )
    assert r.status == 401, (referrer, r.body)


def test_a_whitelisted_referrer_still_works(dragon_server, web_account):
    r = dragon_server.request(
        "POST",
        "/v2/create",
        {"tasks": [{"task_name": "hello", "name": "x"}], "block": True},
        auth=False,
        headers={
            "Authorization": f"Api-Key {web_account['api_key']}",
            "Referer": "https://app.example.com/page?x=1",
        },
    )
    assert r.status == 200, r.body
    assert r.json()[0]["status"] == "success"


# -- secrets in the log (item 6) ------------------------------------------------------------


def test_credentials_never_reach_the_log_however_spelled(make_server):
    server = make_server()
    secret, api_key = server.secret, server.api_key
    queries = [
        f"%73ecret={secret}",
        f"sec%72et={secret}",
        f"api%5Fkey={api_key}",
        f"x=1;secret={secret}",
        f"%20secret={secret}",
        f"SECRET={secret}",
    ]
    for query in queries:
        answer = raw_request(
            server,
            (
                f"GET /v2/status?{query}&tasks=X HTTP/1.1\r\nHost: x\r\n"
                f"Referer: https://app.example.com/?secret={secret}\r\nConnection: close\r\n\r\n"
            ).encode(),
        )
        assert status_line(answer) in (200, 401)
    # A NUL after the secret makes the HTTP parser fail and print the header line.
    answer = raw_request(
        server,
        (
            f"GET /v2/status?tasks=X HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Authorization: Secret {secret}\x00\r\n\r\n"
        ).encode(),
    )
    assert status_line(answer) == 400
    time.sleep(0.5)  # the access log line is written after the answer
    log = server.log()
    assert log.count("GET /v2/status") >= len(queries)
    assert secret not in log and api_key not in log, log


# -- 500s that must be 4xx or 503 (item 7) ---------------------------------------------------


def nested(depth: int):
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [100, 300])
def test_json_nested_too_deep_is_a_400(dragon_server, depth):
    task = {"task_name": "hello", "name": "x", "task_metas": nested(depth)}
    r = dragon_server.request("POST", "/v2/create", {"tasks": [task]})
    assert r.status == 400, r.body
    error = r.json()["errors"][0]
    assert error["name"] == "body" and "deeper than 64" in error["description"]
    # Just under the limit is stored and answered as usual.
    task["task_metas"] = nested(60)
    assert dragon_server.create([task])[0]["status"] == "success"


def mount_read_only(path) -> None:
    """Bind-mount ``path`` read-only onto itself (root only; skipped where not allowed)."""
    done = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True)
    if done.returncode:
        pytest.skip(f"bind mounts are not allowed here: {done.stderr.decode().strip()}")
    done = subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], capture_output=True)
    if done.returncode:
        subprocess.run(["umount", str(path)], check=True)
        pytest.skip(f"read-only remounts are not allowed here: {done.stderr.decode().strip()}")


def test_a_read_only_database_answers_503_and_healthz_says_so(make_server):
    server = make_server()
    before = server.create([{"task_name": "hello", "name": "x"}])[0]
    server.stop()
    database = server.data_dir / "dragon.db"
    mount_read_only(database)
    try:
        server.start(ready=(200, 503))
        health = server.request("GET", "/healthz", auth=False)
        assert health.status == 503, health.body
        assert health.json()["problems"] == ["the database is read-only"]
        r = server.request("POST", "/v2/create", {"tasks": [{"task_name": "hello", "name": "y"}]})
        assert r.status == 503, r.body
        assert r.headers["Retry-After"]
        assert r.json()["errors"][0]["name"] == "database"
        # Reads still work: the task stored before is there.
        r = server.request("GET", f"/v2/status?tasks={before['key']}")
        assert r.status == 200 and r.json()[0]["status"] == "success"
    finally:
        server.stop()
        subprocess.run(["umount", str(database)], check=True)
