"""GET /v2/events: the account's feed of status changes (cursor, resume, SSE, follow,
isolation between accounts, 410 past retention)."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest


@pytest.fixture(scope="module")
def server(make_server):
    return make_server()


def feed(server, query: str = "", secret: str | None = None, headers: dict | None = None):
    headers = {"Authorization": f"Secret {secret or server.secret}", **(headers or {})}
    return server.request("GET", "/v2/events" + query, headers=headers)


def sse_events(body: bytes) -> list[tuple[int, dict]]:
    """Parse Server-Sent Events: (id, data) of each event, comments and retry skipped."""
    out = []
    for block in body.decode().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if "data" in fields:
            out.append((int(fields["id"]), json.loads(fields["data"])))
    return out


def test_feed_records_each_change_and_resumes_from_a_cursor(server):
    done = server.create(
        [
            {"task_name": "hello", "name": "a"},
            {"task_name": "test.progress", "seconds": 2.0},
            {"task_name": "no.such.task"},
        ]
    )
    keys = [d["key"] for d in done]
    r = feed(server)
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [line for line in r.lines() if line["key"] in keys]
    cursors = [line["cursor"] for line in r.lines()]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)

    def states(key):
        # (status, progress while executing, has a result)
        return [
            (
                line["status"],
                line["progress"] if line["status"] == "executing" else None,
                "result" in line,
            )
            for line in lines
            if line["key"] == key
        ]

    assert states(keys[0]) == [
        ("queued", None, False),
        ("executing", 0, False),
        ("success", None, True),
    ]
    # test.progress: start, the 50 % mark (crossing multiples of 10 %), its partial
    # result, its end.
    progress = states(keys[1])
    assert progress[0] == ("queued", None, False) and progress[1] == ("executing", 0, False)
    assert ("executing", 50, False) in progress or ("executing", 50, True) in progress
    assert any(s == "executing" and partial for s, _, partial in progress)
    assert progress[-1] == ("success", None, True)
    # A task that could not be created ends at once: one event, in error.
    assert states(keys[2]) == [("error", None, False)]
    assert [line["task_name"] for line in lines if line["key"] == keys[2]] == ["no.such.task"]
    final = next(line for line in lines if line["key"] == keys[0] and line["status"] == "success")
    assert final["result"] == done[0]["result"]
    assert final["events"] == done[0]["events"]

    middle = lines[len(lines) // 2]["cursor"]
    later = feed(server, f"?after={middle}").lines()
    assert later == [line for line in r.lines() if line["cursor"] > middle]
    last = r.lines()[-1]["cursor"]
    assert feed(server, f"?after={last}").lines() == []
    assert feed(server, "?after=abc").status == 400
    assert feed(server, "?after=-1").status == 400


def test_sse_framing_and_last_event_id(server):
    server.create([{"task_name": "hello", "name": "sse"}])
    ndjson = feed(server).lines()
    r = feed(server, headers={"Accept": "text/event-stream"})
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/event-stream")
    assert r.body.startswith(b"retry: ")
    events = sse_events(r.body)
    assert [i for i, _ in events] == [line["cursor"] for line in ndjson]
    assert [doc for _, doc in events] == ndjson
    # A reconnecting EventSource sends the last id it saw.
    resume = ndjson[-3]["cursor"]
    r = feed(server, headers={"Accept": "text/event-stream", "Last-Event-ID": str(resume)})
    assert [i for i, _ in sse_events(r.body)] == [line["cursor"] for line in ndjson[-2:]]
    # The secret may come in the query string (EventSource cannot set headers).
    r = server.request(
        "GET",
        f"/v2/events?after={resume}&secret={server.secret}",
        auth=False,
        headers={"Accept": "text/event-stream"},
    )
    assert len(sse_events(r.body)) == 2
    assert server.secret not in server.log()  # masked in the access log
    assert server.request("GET", "/v2/events", auth=False).status == 401


def test_follow_stays_open_and_delivers_new_changes(server):
    start = feed(server).lines()[-1]["cursor"]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request(
        "GET",
        f"/v2/events?after={start}&follow=true",
        headers={"Authorization": f"Secret {server.secret}", "Accept": "text/event-stream"},
    )
    response = conn.getresponse()
    assert response.status == 200
    got: list[tuple[int, dict]] = []

    def read():
        buffer = b""
        while True:
            chunk = response.read1(65536)
            if not chunk:
                return
            buffer += chunk
            *blocks, buffer = buffer.split(b"\n\n")
            for block in blocks:
                got.extend(sse_events(block + b"\n\n"))
                if any(doc["status"] == "success" for _, doc in got):
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.3)  # the follower is waiting: nothing was there yet
    assert got == []
    [created] = server.create([{"task_name": "hello", "name": "live"}], block=False)
    reader.join(20)
    conn.close()
    assert [doc["status"] for _, doc in got] == ["queued", "executing", "success"]
    assert {doc["key"] for _, doc in got} == {created["key"]}
    assert [i for i, _ in got] == sorted(i for i, _ in got) and got[0][0] > start


def test_another_accounts_changes_never_appear(server):
    other = server.create_account("feed-other")
    theirs = server.request(
        "POST",
        "/v2/create",
        {"tasks": [{"task_name": "hello", "name": "theirs"}], "block": True},
        headers={"Authorization": f"Secret {other['secret']}"},
    ).json()
    mine = server.create([{"task_name": "hello", "name": "mine"}])
    mine_feed = feed(server).lines()
    their_feed = feed(server, secret=other["secret"]).lines()
    assert theirs[0]["key"] not in {line["key"] for line in mine_feed}
    assert mine[0]["key"] in {line["key"] for line in mine_feed}
    assert {line["key"] for line in their_feed} == {theirs[0]["key"]}
    # A cursor taken from the other account's feed shows only the caller's changes too.
    low = their_feed[0]["cursor"] - 1
    assert theirs[0]["key"] not in {line["key"] for line in feed(server, f"?after={low}").lines()}


def test_cursor_older_than_retention_is_gone(make_server):
    # 0.00002 days is 1.7 s; the sweeper runs every half second.
    server = make_server(
        env={"DRAGON_EVENTS_DAYS": "0.00002", "DRAGON_SWEEP_INTERVAL_SECONDS": "0.5"}
    )
    server.create([{"task_name": "hello", "name": "old"}])
    first = feed(server).lines()
    assert [line["status"] for line in first] == ["queued", "executing", "success"]
    deadline = time.monotonic() + 20
    while feed(server).lines() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert feed(server).lines() == []
    r = feed(server, f"?after={first[0]['cursor']}")
    assert r.status == 410
    description = r.json()["errors"][0]["description"]
    assert "DRAGON_EVENTS_DAYS" in description and "older than" in description
    r = feed(server, f"?after={first[0]['cursor']}", headers={"Accept": "text/event-stream"})
    assert r.status == 410
    # The newest pruned cursor lost nothing after it: it still reads the feed.
    assert feed(server, f"?after={first[-1]['cursor']}").status == 200
    [new] = server.create([{"task_name": "hello", "name": "new"}])
    lines = feed(server, f"?after={first[-1]['cursor']}").lines()
    assert [line["key"] for line in lines] == [new["key"]] * 3
    assert lines[0]["cursor"] > first[-1]["cursor"]
