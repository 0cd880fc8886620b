"""GET /v2/tasks/summary: an account's tasks counted by status (equal to what GET /v2/tasks
pages through), by error code, ended slot by slot over a window, and this node's lanes."""

from __future__ import annotations

import time
import urllib.parse
from datetime import datetime

import pytest

from tests.e2e.test_task_list import every_key


@pytest.fixture(scope="module")
def server(make_server):
    return make_server(env={"DRAGON_CONCURRENCY": "1"})


def summary(server, secret: str | None = None, **params):
    query = urllib.parse.urlencode(params)
    headers = {"Authorization": f"Secret {secret or server.secret}"}
    return server.request("GET", f"/v2/tasks/summary?{query}", headers=headers)


def counted(server, **params) -> dict:
    r = summary(server, **params)
    assert r.status == 200, r.body
    return r.json()


def listed_counts(server, **params) -> dict[str, int]:
    return {
        status: len(every_key(server, status=status, limit=200, **params))
        for status in ("queued", "executing", "success", "error")
    }


def wait_running(server, keys: list[str]) -> None:
    """Until one of ``keys`` is executing (on a loaded box the lane may take a while)."""
    deadline = time.monotonic() + 120
    while not any(
        doc["status"] == "executing"
        for doc in server.request("GET", f"/v2/status?tasks={','.join(keys)}").json()
    ):
        assert time.monotonic() < deadline, "none of the sleeps started"
        time.sleep(0.1)


def test_counts_are_the_listing_s_and_the_timeline_holds_what_ended(make_server):
    server = make_server(env={"DRAGON_CONCURRENCY": "1"})
    before = counted(server)
    assert before["counts"] == {"queued": 0, "executing": 0, "success": 0, "error": 0}
    assert before["total"] == 0 and before["error_codes"] == {}
    assert len(before["timeline"]["slots"]) == 60 and before["timeline"]["bucket_seconds"] == 60

    created_at = time.time()
    done = server.create(
        [{"task_name": "hello", "name": str(i)} for i in range(7)]
        + [{"task_name": "no.such.task"} for _ in range(3)]
        + [{"task_name": "hello", "name": 5}]  # a parameters error
        + [{"task_name": "test.file", "fail": True}]
    )
    assert [d["status"] for d in done].count("success") == 7
    # A time between the two requests, on the server's clock (this machine's): the sleeps'
    # own "queued" time is rounded to the microsecond, which may be past their creation.
    between = time.time()
    # One batch slot: the first sleep runs, the other two wait in the queue.
    sleeps = server.create([{"task_name": "test.sleep", "seconds": 120}] * 3, block=False)
    wait_running(server, [d["key"] for d in sleeps])

    got = counted(server)
    assert got["counts"] == {"queued": 2, "executing": 1, "success": 7, "error": 5}
    assert got["counts"] == listed_counts(server)
    assert got["total"] == 15
    codes = {}
    for doc in done:
        if doc["status"] == "error":
            codes[doc["error_code"]] = codes.get(doc["error_code"], 0) + 1
    assert got["error_codes"] == codes
    assert list(got["error_codes"].values()) == sorted(codes.values(), reverse=True)

    # The twelve tasks that ended are in the window's last slots, once each; the seven that
    # ran have run times, a hello's well under the window.
    slots = got["timeline"]["slots"]
    assert sum(s["success"] for s in slots) == 7 and sum(s["error"] for s in slots) == 5
    ran = [s for s in slots if s["success"]]
    assert all(0 <= s["mean_seconds"] <= s["max_seconds"] < 60 for s in ran)
    assert all(s["mean_seconds"] is None for s in slots if not s["success"] and not s["error"])
    starts = [datetime.fromisoformat(s["start"]) for s in slots]
    assert all(later > earlier for earlier, later in zip(starts, starts[1:], strict=False))
    assert starts[0].timestamp() <= created_at

    lanes = {lane["lane"]: lane for lane in got["lanes"]}
    assert set(lanes) == {"light", "interactive", "batch"}
    assert lanes["batch"]["slots"] == 1 and lanes["batch"]["running"] == 1
    assert lanes["batch"]["queued"] >= 2

    # Filters: a task name; a creation time (the sleeps were created last).
    hello = counted(server, task_name="hello")
    assert hello["counts"] == {"queued": 0, "executing": 0, "success": 7, "error": 1}
    assert hello["error_codes"] == {"parameters": 1}
    assert sum(s["success"] + s["error"] for s in hello["timeline"]["slots"]) == 8
    since = str(between)
    recent = counted(server, created_after=since)
    assert recent["counts"] == {"queued": 2, "executing": 1, "success": 0, "error": 0}
    assert recent["counts"] == listed_counts(server, created_after=since)
    assert counted(server, created_before=since)["total"] == 12

    # Another window: 10 slots of a day.
    day = counted(server, window=86400, buckets=10)
    assert day["timeline"]["bucket_seconds"] == 8640 and len(day["timeline"]["slots"]) == 10
    assert sum(s["success"] for s in day["timeline"]["slots"]) == 7
    server.request("POST", "/v2/cancel", {"tasks": [d["key"] for d in sleeps]})


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"window": "59"}, "window"),
        ({"window": "x"}, "window"),
        ({"buckets": "0"}, "buckets"),
        ({"buckets": "241"}, "buckets"),
        ({"created_after": "yesterday"}, "created_after"),
    ],
)
def test_bad_parameters_are_400_in_the_documented_shape(server, params, name):
    r = summary(server, **params)
    assert r.status == 400, r.body
    [error] = r.json()["errors"]
    assert error["name"] == name and error["location"] == "querystring"


def test_a_wrong_secret_is_401(server):
    assert summary(server, secret="WRONG").status == 401


def test_the_summary_is_in_the_openapi_document(server):
    document = server.request("GET", "/openapi.json", auth=False).json()
    operation = document["paths"]["/v2/tasks/summary"]["get"]
    assert operation["operationId"] == "v2_tasks_summary"
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"counts", "total", "error_codes", "timeline", "lanes"}
