"""GET /v2/tasks: an account's tasks newest first, filtered by status, task name and time,
paged by an opaque cursor that tasks created meanwhile do not shift; its refusals."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from datetime import UTC, datetime

import pytest

from dragon.client import AsyncClient, Client, DragonError, wire
from tests.support.server import dragon


@pytest.fixture(scope="module")
def server(make_server):
    return make_server()


def listing(server, secret: str | None = None, **params):
    query = urllib.parse.urlencode(params, doseq=True)
    headers = {"Authorization": f"Secret {secret or server.secret}"}
    return server.request("GET", f"/v2/tasks?{query}", headers=headers)


def page(server, **params) -> dict:
    r = listing(server, **params)
    assert r.status == 200, r.body
    return r.json()


def every_key(server, **params) -> list[str]:
    """The keys of every page, following next_cursor to the end."""
    keys: list[str] = []
    cursor = None
    while True:
        got = page(server, **params, **({"cursor": cursor} if cursor else {}))
        keys += [doc["key"] for doc in got["tasks"]]
        cursor = got["next_cursor"]
        if cursor is None:
            return keys


def test_tasks_newest_first_with_their_documents_and_filters(server):
    first = server.create([{"task_name": "hello", "name": "a"}, {"task_name": "no.such.task"}])
    later = time.time()
    time.sleep(0.05)
    second = server.create([{"task_name": "hello", "name": "b"}], block=True)
    sleeping = server.create([{"task_name": "test.sleep", "seconds": 30}], block=False)
    ok, bad = first[0]["key"], first[1]["key"]
    newest = [sleeping[0]["key"], second[0]["key"], bad, ok]

    docs = page(server)["tasks"]
    assert [d["key"] for d in docs] == newest
    by_key = {d["key"]: d for d in docs}
    assert by_key[ok]["status"] == "success" and by_key[ok]["task_name"] == "hello"
    assert by_key[ok]["result"] == first[0]["result"] and by_key[ok]["progress"] == 100.0
    assert by_key[bad]["status"] == "error" and by_key[bad]["error_code"] == "parameters"
    assert by_key[bad]["task_name"] == "no.such.task"
    assert set(by_key[newest[0]]["events"]) >= {"queued"}

    assert [d["key"] for d in page(server, status="error")["tasks"]] == [bad]
    assert [d["key"] for d in page(server, status="success,error")["tasks"]] == newest[1:]
    assert [d["key"] for d in page(server, status=["error", "success"])["tasks"]] == newest[1:]
    running = page(server, status=["queued", "executing"])["tasks"]
    assert [d["key"] for d in running] == newest[:1]
    assert [d["key"] for d in page(server, task_name="hello")["tasks"]] == [newest[1], ok]
    assert [d["key"] for d in page(server, task_name="hello", status="error")["tasks"]] == []
    assert [d["key"] for d in page(server, created_after=later)["tasks"]] == newest[:2]
    iso_later = datetime.fromtimestamp(later, UTC).isoformat().replace("+00:00", "Z")
    assert [d["key"] for d in page(server, created_before=iso_later)["tasks"]] == [bad, ok]
    assert [d["key"] for d in page(server, created_before=later, status="success")["tasks"]] == [ok]
    server.request("POST", "/v2/cancel", {"tasks": [newest[0]]})


def test_pages_follow_the_cursor_and_new_tasks_do_not_shift_them(make_server):
    server = make_server()
    created = server.create([{"task_name": "no.such.task", "n": i} for i in range(7)])
    newest = [d["key"] for d in reversed(created)]  # one batch: newest is the last created
    one = page(server, limit=3)
    assert [d["key"] for d in one["tasks"]] == newest[:3] and one["next_cursor"]
    server.create([{"task_name": "no.such.task", "n": "meanwhile"}])
    two = page(server, limit=3, cursor=one["next_cursor"])
    three = page(server, limit=3, cursor=two["next_cursor"])
    assert [d["key"] for d in two["tasks"] + three["tasks"]] == newest[3:]
    assert three["next_cursor"] is None
    assert len(every_key(server, limit=2)) == 8
    # The default page is 50 tasks, the largest 200.
    server.create([{"task_name": "no.such.task"}] * 250)
    assert len(page(server)["tasks"]) == 50
    assert len(page(server, limit=200)["tasks"]) == 200
    assert len(every_key(server, limit=200)) == 258


def test_each_account_sees_its_own_and_credentials_are_as_for_status(server):
    other = server.create_account("listing-other")
    mine = server.create([{"task_name": "no.such.task"}])[0]["key"]
    assert page(server, limit=1)["tasks"][0]["key"] == mine
    assert listing(server, secret=other["secret"]).json() == {"tasks": [], "next_cursor": None}
    via_query = server.request("GET", f"/v2/tasks?limit=1&secret={server.secret}", auth=False)
    assert via_query.status == 200 and via_query.json()["tasks"][0]["key"] == mine
    assert server.request("GET", "/v2/tasks", auth=False).status == 401
    assert listing(server, secret="wrong").status == 401


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"status": "finished"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WzEsMl0"}, None),  # [1,2]: a well-formed place, whatever it names
        ({"cursor": "WyJ4IiwyXQ"}, "cursor"),  # ["x",2]
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "nan"}, "created_before"),
    ],
)
def test_bad_parameters_are_400_in_the_documented_shape(server, params, name):
    r = listing(server, **params)
    if name is None:
        assert r.status == 200 and r.json() == {"tasks": [], "next_cursor": None}
        return
    assert r.status == 400, r.body
    body = r.json()
    assert body["status"] == "error"
    assert body["errors"][0]["name"] == name and body["errors"][0]["location"] == "querystring"


def test_the_sdk_and_the_cli_page_through_the_listing(make_server):
    """``Client.tasks`` and ``AsyncClient.tasks`` read page after page as they are iterated
    (pages no larger than what is still wanted); ``dragon tasks`` prints NDJSON."""
    server = make_server()
    created = server.create(
        [{"task_name": "no.such.task", "n": i} for i in range(5)]
        + [{"task_name": "hello", "name": str(i)} for i in range(3)]
    )
    newest = [d["key"] for d in reversed(created)]
    with Client(server.url, secret=server.secret) as c:
        listed = list(c.tasks())
        assert [d["key"] for d in listed] == newest
        assert {d["task_name"] for d in listed} == {"hello", "no.such.task"}
        pages = wire.TaskPages.of(None, None, None, None, None)
        pages.page_size = 3  # several pages of the real server, followed to the end
        keys = []
        while not pages.done:
            got = c._request("GET", "/v2/tasks", params=pages.query(), safe=True)
            keys += [d["key"] for d in pages.accept(got)]
        assert keys == newest
        assert [d["key"] for d in c.tasks(limit=2)] == newest[:2]
        assert [d["key"] for d in c.tasks("success", "hello")] == newest[:3]
        assert [d["key"] for d in c.tasks(["error"], limit=4)] == newest[3:7]
        after = datetime.fromtimestamp(time.time() + 60, UTC)
        assert list(c.tasks(created_after=after)) == []
        with pytest.raises(DragonError) as refused:
            list(c.tasks("finished"))
        assert refused.value.status == 400

    async def read() -> list[str]:
        async with AsyncClient(server.url, secret=server.secret) as ac:
            return [d["key"] async for d in ac.tasks(task_name="no.such.task", limit=3)]

    assert asyncio.run(read()) == newest[3:6]

    env = {"DRAGON_URL": server.url, "DRAGON_SECRET": server.secret}
    done = dragon("tasks", "--status", "error", "--limit", "2", env=env, check=False)
    assert done.returncode == 0, done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert [d["key"] for d in printed] == newest[3:5]
    assert all(d["status"] == "error" and d["task_name"] == "no.such.task" for d in printed)
    done = dragon("tasks", "--name", "hello", "--status", "queued,success", env=env, check=False)
    assert [json.loads(line)["key"] for line in done.stdout.splitlines()] == newest[:3]
    done = dragon("tasks", "--status", "finished", env=env, check=False)
    assert done.returncode == 2 and "status" in done.stderr
    done = dragon("tasks", "--limit", "0", env=env, check=False)
    assert done.returncode == 2 and "--limit" in done.stderr
