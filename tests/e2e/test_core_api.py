"""The tasks API end to end, against a real ``dragon serve`` subprocess (docs/api.md)."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
import urllib.request

import pytest

KEY = re.compile(r"^[A-Z2-7]{26}$")


def poll(server, key, until=("success", "error"), timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = server.request("GET", f"/v2/status?tasks={key}").json()[0]
        if doc["status"] in until:
            return doc
        time.sleep(0.05)
    raise AssertionError(f"task {key} still {doc['status']}")


def test_hello_create_then_poll(dragon_server):
    r = dragon_server.request(
        "POST", "/v2/create", {"tasks": [{"task_name": "hello", "name": "John"}]}
    )
    assert r.status == 200
    [doc] = r.json()
    assert KEY.match(doc["key"])
    assert doc["status"] in ("queued", "executing", "success")
    assert doc["events"]["queued"].endswith("+00:00")
    final = poll(dragon_server, doc["key"])
    assert final["status"] == "success"
    assert final["result"] == "Hello John"
    assert set(final["events"]) == {"queued", "started", "completed"}
    assert final["progress"] == 100


def test_block_returns_final_statuses_in_request_order(dragon_server):
    docs = dragon_server.create([{"task_name": "hello", "name": n} for n in "ABCDE"])
    assert [d["result"] for d in docs] == [f"Hello {n}" for n in "ABCDE"]


@pytest.mark.parametrize("version", [1, 2])
def test_a_blocking_create_answers_what_a_status_read_then_answers(dragon_server, version):
    # The answer is made of the documents published as the tasks end, not of a read of
    # their rows: it must be the same, in either version, for every way of ending.
    definitions = [
        {"task_name": "hello", "name": "A"},
        {"task_name": "hello"},  # ends in error at creation
        {"task_name": "test.crash", "url": "https://example.com/x"},  # fails while running
        {"task_name": "test.sleep", "seconds": 0.3},
    ]
    r = dragon_server.request("POST", f"/v{version}/create", {"tasks": definitions, "block": 1})
    docs = r.json()
    assert [d["status"] for d in docs] == ["success", "error", "error", "success"]
    keys = "&".join(f"tasks={d['key']}" for d in docs)
    assert dragon_server.request("GET", f"/v{version}/status?{keys}").json() == docs


def test_single_object_and_no_content_type(dragon_server):
    # COMPAT 4.2: a single task object, JSON body with no Content-Type header.
    raw = json.dumps({"tasks": {"task_name": "hello", "name": "Py"}, "block": True}).encode()
    r = dragon_server.request("POST", "/v2/create", raw=raw)
    assert r.status == 200 and r.json()[0]["result"] == "Hello Py"
    # COMPAT 4.1: text/plain body with the api key inside.
    raw = json.dumps(
        {
            "tasks": [{"task_name": "hello", "name": "Js"}],
            "api_key": dragon_server.api_key,
            "block": True,
        }
    ).encode()
    r = dragon_server.request(
        "POST",
        "/v2/create",
        raw=raw,
        auth=False,
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    assert r.status == 200 and r.json()[0]["result"] == "Hello Js"


def test_parameter_errors_answer_200_with_task_errors(dragon_server):
    [doc] = dragon_server.create([{"task_name": "test.fetch", "url": "http://a..b/x.jpg"}])
    assert doc["error"] == {"parameters": {"url": ["'http://a..b/x.jpg' has an invalid host name"]}}
    [doc] = dragon_server.create(
        [{"task_name": "hello", "name": "x", "url_callback": "http://a..b/"}]
    )
    assert "url_callback" in doc["error"]["parameters"]
    docs = dragon_server.create(
        [
            {"task_name": "hello"},
            {"task_name": "no.such.task"},
            {"name": "x"},
            {"task_name": "hello", "name": "ok", "task_metas": {"a": 1}, "url_callback": None},
            {"task_name": "hello", "name": "x", "task_store": {"type": "nope"}},
        ]
    )
    assert docs[0]["error"] == {"parameters": {"name": ["this field is required"]}}
    assert docs[0]["error_code"] == "parameters"
    assert "unknown task" in docs[1]["error"]["parameters"]["task_name"][0]
    assert docs[2]["error"] == {"parameters": {"task_name": ["this field is required"]}}
    assert docs[3]["status"] == "success"
    assert "task_store" in docs[4]["error"]["parameters"]


def test_create_stream_ndjson(dragon_server):
    r = dragon_server.request(
        "POST",
        "/v2/create_stream",
        {"tasks": [{"task_name": "hello", "name": "John"}, {"task_name": "hello", "name": "Jane"}]},
    )
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/x-ndjson")
    lines = r.lines()
    first = lines[0]
    assert isinstance(first, list) and len(first) == 2
    keys = [d["key"] for d in first]
    finals = {d["key"]: d for d in lines[1:] if d["status"] == "success"}
    assert set(finals) == set(keys)
    assert finals[keys[0]]["result"] == "Hello John"
    assert finals[keys[1]]["result"] == "Hello Jane"
    # Each task's own lines are in order: executing before success, nothing after.
    for key in keys:
        states = [d["status"] for d in lines[1:] if d["key"] == key]
        assert states[-1] == "success"
        assert "queued" not in states


def test_status_get_post_and_string(dragon_server):
    docs = dragon_server.create([{"task_name": "hello", "name": n} for n in "AB"])
    keys = [d["key"] for d in docs]
    r = dragon_server.request("GET", f"/v2/status?tasks={keys[0]}&tasks={keys[1]}")
    assert [d["key"] for d in r.json()] == keys
    r = dragon_server.request("POST", "/v2/status", {"tasks": keys[::-1]})
    assert [d["key"] for d in r.json()] == keys[::-1]
    r = dragon_server.request("POST", "/v2/status", {"tasks": keys[0]})
    assert r.json()[0]["result"] == "Hello A"
    # A GET body is ignored (COMPAT 4.2 sends "{}").
    r = dragon_server.request("GET", f"/v2/status?tasks={keys[0]}", raw=b"{}")
    assert r.status == 200


def test_status_block_waits_for_the_end(dragon_server):
    [doc] = dragon_server.create([{"task_name": "test.progress", "seconds": 0.5}], block=False)
    t0 = time.monotonic()
    r = dragon_server.request("GET", f"/v2/status?tasks={doc['key']}&block=true")
    assert r.json()[0]["status"] == "success"
    assert time.monotonic() - t0 >= 0.3


def test_progress_and_partial_result_while_executing(dragon_server):
    [doc] = dragon_server.create([{"task_name": "test.progress", "seconds": 1.5}], block=False)
    seen = poll(dragon_server, doc["key"], until=("executing",))
    deadline = time.monotonic() + 5
    while "result" not in seen and time.monotonic() < deadline:
        seen = dragon_server.request("GET", f"/v2/status?tasks={doc['key']}").json()[0]
    assert seen["status"] == "executing"
    assert seen["result"] == {"half": True}
    assert poll(dragon_server, doc["key"])["result"] == {"half": True, "done": True}


def test_status_stream_and_stream_alias(dragon_server):
    docs = dragon_server.create(
        [{"task_name": "test.progress", "seconds": 0.5}, {"task_name": "hello", "name": "S"}],
        block=False,
    )
    keys = [d["key"] for d in docs]
    r = dragon_server.request("GET", f"/v2/stream?tasks={keys[0]}&tasks={keys[1]}")
    lines = r.lines()
    assert [d["key"] for d in lines[0]] == keys
    assert {d["key"] for d in lines[1:] + lines[0] if d["status"] == "success"} == set(keys)
    r = dragon_server.request("POST", "/v2/status_stream", {"tasks": keys})
    lines = r.lines()
    assert len(lines) == 1 and all(d["status"] == "success" for d in lines[0])


def test_details_mask_secrets(dragon_server):
    [doc] = dragon_server.create(
        [
            {
                "task_name": "hello",
                "name": "D",
                "access_token": "tok",
                "task_metas": {"a": 1},
                "task_store": {
                    "type": "s3_signed",
                    "url": "https://bucket.example/o?X-Amz-Signature=s",
                },
            }
        ],
        block=False,
    )
    r = dragon_server.request("GET", f"/v2/status?tasks={doc['key']}&details=true")
    detail = r.json()[0]
    assert detail["parameters"]["name"] == "D"
    assert detail["parameters"]["access_token"] == "********"
    assert "X-Amz-Signature" not in json.dumps(detail)
    assert detail["store"]["type"] == "s3_signed"
    assert detail["task_name"] == "hello"


def test_v1_puts_error_details_under_result(dragon_server):
    r = dragon_server.request(
        "POST", "/v1/create", {"tasks": [{"task_name": "hello"}], "block": True}
    )
    [doc] = r.json()
    assert doc["status"] == "error"
    assert doc["result"] == {"parameters": {"name": ["this field is required"]}}
    assert "error" not in doc
    r = dragon_server.request("GET", f"/v1/status?tasks={doc['key']}")
    assert r.json()[0]["result"]["parameters"]
    r = dragon_server.request("GET", f"/v2/status?tasks={doc['key']}")
    assert r.json()[0]["error"]["parameters"]


def error_names(r):
    body = r.json()
    assert body["status"] == "error"
    return [(e["name"], e["location"]) for e in body["errors"]]


def test_bad_requests_are_400_in_the_seed_shape(dragon_server):
    r = dragon_server.request("POST", "/v2/create", {})
    assert r.status == 400
    assert r.json()["errors"][0] == {
        "name": "tasks",
        "location": "body",
        "description": "tasks is missing",
    }
    assert dragon_server.request("POST", "/v2/create", raw=b"{nope").status == 400
    assert dragon_server.request("POST", "/v2/create", {"tasks": 3}).status == 400
    assert dragon_server.request("POST", "/v2/create", {"tasks": [1]}).status == 400
    assert dragon_server.request("POST", "/v2/create", raw=b"[1, 2]").status == 400
    many = {"tasks": [{"task_name": "hello", "name": "x"}] * 1001}
    r = dragon_server.request("POST", "/v2/create", many)
    assert r.status == 400 and "too many tasks" in r.json()["errors"][0]["description"]
    assert dragon_server.request("GET", "/v2/status").status == 400


def test_body_over_10_mib_is_413(dragon_server):
    raw = b'{"tasks": [], "pad": "' + b"x" * (10 * 1024 * 1024 + 10) + b'"}'
    r = dragon_server.request("POST", "/v2/create", raw=raw)
    assert r.status == 413
    assert r.json()["status"] == "error"


def test_auth_variants(dragon_server):
    s = dragon_server
    body = {"tasks": [{"task_name": "hello", "name": "A"}], "block": True}
    assert s.request("POST", "/v2/create", body, auth=False).status == 401
    assert (
        s.request("POST", "/v2/create", body, headers={"Authorization": "Secret WRONG"}).status
        == 401
    )
    assert (
        s.request("POST", "/v2/create", body, headers={"Authorization": "Secret éàü"}).status == 401
    )
    bad_secret = {**body, "secret": "é∂ƒ\u0000"}
    assert s.request("POST", "/v2/create", bad_secret, auth=False).status == 401
    assert (
        s.request(
            "POST", "/v2/create", body, headers={"Authorization": f"SECRET {s.secret}"}
        ).status
        == 200
    )
    assert s.request("POST", "/v2/create", body, headers={"Authorization": s.secret}).status == 200
    assert s.request("POST", "/v2/create", {**body, "secret": s.secret}, auth=False).status == 200
    assert (
        s.request(
            "POST", "/v2/create", body, headers={"Authorization": f"Api-Key {s.api_key}"}
        ).status
        == 200
    )
    key = s.create(body["tasks"])[0]["key"]
    assert s.request("GET", f"/v2/status?tasks={key}&secret={s.secret}", auth=False).status == 200
    assert s.request("GET", f"/v2/status?tasks={key}", auth=False).status == 401
    r = s.request("POST", "/v2/create", body, auth=False)
    assert r.json()["errors"][0]["location"] == "header"


def test_api_key_referrer_whitelist(dragon_server):
    s = dragon_server
    acct = s.create_account(
        "web", "--referrer", "https://*.example.com/*", "--referrer", "app.test"
    )
    body = {
        "tasks": [{"task_name": "hello", "name": "W"}],
        "api_key": acct["api_key"],
        "block": True,
    }
    ok = s.request(
        "POST", "/v2/create", body, auth=False, headers={"Referer": "https://www.example.com/page"}
    )
    assert ok.status == 200 and ok.json()[0]["result"] == "Hello W"
    assert (
        s.request(
            "POST", "/v2/create", body, auth=False, headers={"Origin": "https://app.test"}
        ).status
        == 200
    )
    bad = s.request(
        "POST", "/v2/create", body, auth=False, headers={"Referer": "https://evil.test/"}
    )
    assert bad.status == 401 and "whitelist" in bad.json()["errors"][0]["description"]
    assert s.request("POST", "/v2/create", body, auth=False).status == 401


def test_accounts_are_isolated_and_created_live(dragon_server):
    s = dragon_server
    other = s.create_account("other-live")  # created while the server runs
    key = s.create([{"task_name": "hello", "name": "mine"}])[0]["key"]
    for _ in range(2):  # the owner's polls: the second one answers from the ended documents
        assert s.request("GET", f"/v2/status?tasks={key}").json()[0]["status"] == "success"
    r = s.request(
        "GET", f"/v2/status?tasks={key}", headers={"Authorization": f"Secret {other['secret']}"}
    )
    assert r.status == 200
    assert r.json()[0]["error_code"] == "unknown_task"
    assert "result" not in r.json()[0]
    r = s.request(
        "GET",
        f"/v2/status_stream?tasks={key}",
        headers={"Authorization": f"Secret {other['secret']}"},
    )
    assert r.lines()[0][0]["error_code"] == "unknown_task"


def test_cors_and_preflight(dragon_server):
    r = dragon_server.request(
        "OPTIONS",
        "/v2/create",
        auth=False,
        headers={"Origin": "https://x.test", "Access-Control-Request-Method": "POST"},
    )
    assert r.status == 204
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    r = dragon_server.request("POST", "/v2/create", {})
    assert r.headers["Access-Control-Allow-Origin"] == "*"


def test_healthz(dragon_server):
    r = dragon_server.request("GET", "/healthz", auth=False)
    assert r.status == 200 and r.json()["status"] == "ok"


def test_huge_authorization_header_leaves_server_healthy(dragon_server):
    r = dragon_server.request(
        "POST", "/v2/create", {"tasks": []}, headers={"Authorization": "Secret " + "A" * 9000}
    )
    assert r.status in (400, 431)
    assert dragon_server.request("GET", "/healthz", auth=False).status == 200


def test_secret_in_query_is_not_logged(dragon_server):
    key = dragon_server.create([{"task_name": "hello", "name": "L"}])[0]["key"]
    dragon_server.request(
        "GET", f"/v2/status?tasks={key}&secret={dragon_server.secret}", auth=False
    )
    time.sleep(0.2)
    log = dragon_server.log()
    assert f"tasks={key}" in log
    assert dragon_server.secret not in log


def test_account_active_limit_is_401_with_retry_after(dragon_server):
    s = dragon_server
    acct = s.create_account("limited", "--max-active", "1")
    auth = {"Authorization": f"Secret {acct['secret']}"}
    r = s.request(
        "POST", "/v2/create", {"tasks": [{"task_name": "test.sleep", "seconds": 2}]}, headers=auth
    )
    assert r.status == 200
    r = s.request(
        "POST", "/v2/create", {"tasks": [{"task_name": "hello", "name": "x"}]}, headers=auth
    )
    assert r.status == 401
    assert "limit" in r.json()["errors"][0]["description"]
    assert int(r.headers["Retry-After"]) > 0


def test_rate_limit_is_429(make_server):
    server = make_server(env={"DRAGON_CREATE_RATE": "1", "DRAGON_CREATE_BURST": "3"})
    body = {"tasks": [{"task_name": "hello", "name": "r"}]}
    codes = [server.request("POST", "/v2/create", body).status for _ in range(6)]
    assert codes[:3] == [200, 200, 200]
    assert 429 in codes[3:]
    r = server.request("POST", "/v2/create", body)
    assert r.status == 429
    assert int(r.headers["Retry-After"]) >= 1


def test_a_reader_that_never_reads_does_not_hold_up_others(make_server):
    server = make_server(env={"DRAGON_STREAM_QUEUE_SIZE": "2"})
    [doc] = server.create([{"task_name": "test.progress", "seconds": 1}], block=False)
    req = urllib.request.Request(
        f"{server.url}/v2/status_stream?tasks={doc['key']}",
        headers={"Authorization": f"Secret {server.secret}"},
    )
    stalled = urllib.request.urlopen(req, timeout=30)  # opened, never read
    lines = server.request("GET", f"/v2/status_stream?tasks={doc['key']}").lines()
    finals = [d for d in lines[1:] if d["status"] == "success"] or [
        d for d in lines[0] if d["status"] == "success"
    ]
    assert finals and finals[0]["result"] == {"half": True, "done": True}
    stalled.close()
    assert server.request("GET", "/healthz", auth=False).status == 200


def test_a_stream_of_1000_tasks_delivers_every_final_status(make_server):
    server = make_server(env={"DRAGON_STREAM_QUEUE_SIZE": "4"})
    tasks = [{"task_name": "hello", "name": str(i)} for i in range(1000)]
    r = server.request("POST", "/v2/create_stream", {"tasks": tasks})
    lines = r.lines()
    keys = [d["key"] for d in lines[0]]
    finals = {d["key"]: d["result"] for d in lines[1:] if d["status"] == "success"}
    assert len(keys) == 1000 and set(finals) == set(keys)
    assert finals[keys[999]] == "Hello 999"


def test_clients_leaving_create_stream_early_leave_no_subscribers(make_server):
    import socket

    server = make_server()
    body = json.dumps({"tasks": [{"task_name": "test.sleep", "seconds": 0.2}] * 3}).encode()
    for _ in range(30):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(
            b"POST /v2/create_stream HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Secret {server.secret}\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        s.close()  # gone before the create has committed, or right after
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        health = server.request("GET", "/healthz", auth=False).json()
        if health["queued"] == health["executing"] == 0 and health["subscribers"] == 0:
            break
        time.sleep(0.2)
    assert health["subscribers"] == 0


def test_many_stream_clients_disconnecting_leave_no_subscribers(make_server):
    server = make_server()
    [doc] = server.create([{"task_name": "test.sleep", "seconds": 3}], block=False)
    conns = []

    def connect():
        req = urllib.request.Request(
            f"{server.url}/v2/status_stream?tasks={doc['key']}",
            headers={"Authorization": f"Secret {server.secret}"},
        )
        conns.append(urllib.request.urlopen(req, timeout=30))

    threads = [threading.Thread(target=connect) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in conns:
        c.readline()
        c.close()
    time.sleep(0.5)
    health = server.request("GET", "/healthz", auth=False).json()
    assert health["subscribers"] == 0


def test_full_queue_is_503_with_retry_after(make_server):
    server = make_server(env={"DRAGON_MAX_QUEUED_TASKS": "2", "DRAGON_CONCURRENCY": "1"})
    sleep = {"task_name": "test.sleep", "seconds": 3}
    assert server.request("POST", "/v2/create", {"tasks": [sleep]}).status == 200
    time.sleep(0.3)  # the first one is executing; two more fill the queue
    assert server.request("POST", "/v2/create", {"tasks": [sleep, sleep]}).status == 200
    r = server.request("POST", "/v2/create", {"tasks": [sleep]})
    assert r.status == 503
    assert r.headers["Retry-After"]
    assert "queue is full" in r.json()["errors"][0]["description"]
    server.stop(9)


def test_locked_database_is_503_then_recovers(make_server):
    server = make_server(backend="sqlite")  # PostgreSQL's outage: test_cluster.py
    conn = sqlite3.connect(
        server.data_dir / "dragon.db", isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA busy_timeout=100")
    conn.execute("BEGIN IMMEDIATE")
    try:  # held until the server has answered, however slow the machine is
        r = server.request("POST", "/v2/create", {"tasks": [{"task_name": "hello", "name": "L"}]})
        assert r.status == 503
        assert r.headers["Retry-After"]
    finally:
        conn.execute("ROLLBACK")
    r = server.request(
        "POST", "/v2/create", {"tasks": [{"task_name": "hello", "name": "L"}], "block": True}
    )
    assert r.status == 200 and r.json()[0]["result"] == "Hello L"
    conn.close()


@pytest.mark.parametrize("key", ["K\x00EY", "É\u0301" * 40, "x" * 2000])
def test_a_key_no_task_can_have_is_unknown_on_every_backend(dragon_server, key):
    # Keys come back as they were sent; PostgreSQL refuses NUL in text, so such a key must
    # not reach it as a parameter.
    for method, path in (("POST", "/v1/status"), ("POST", "/v2/status")):
        r = dragon_server.request(method, path, {"tasks": [key, "OTHER"]})
        assert r.status == 200, r.body
        assert [d["error_code"] for d in r.json()] == ["unknown_task", "unknown_task"]


def test_a_nul_in_a_parameter_is_kept_on_every_backend(dragon_server):
    [doc] = dragon_server.create([{"task_name": "hello", "name": "a\x00b"}])
    assert doc["status"] == "success", doc
    r = dragon_server.request("POST", "/v2/status", {"tasks": [doc["key"]], "details": True})
    assert r.json()[0]["parameters"]["name"] == "a\x00b"
