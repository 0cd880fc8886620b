"""The Python SDK (``dragon.client``) against a live server: runs, errors, credentials,
retries and status streams that survive a dropped connection."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest

from dragon.client import AsyncClient, Client, DragonError
from tests.support.proxy import TcpProxy
from tests.support.server import free_port

FINAL = ("success", "error")


def client(server, **kwargs) -> Client:
    return Client(server.url, secret=server.secret, **kwargs)


def test_run_returns_the_final_status_and_its_file_downloads(dragon_server, tmp_path):
    with client(dragon_server) as c:
        status = c.run({"task_name": "test.file", "text": "dragon client"})
        assert status["status"] == "success", status
        assert status["result"]["length"] == len("dragon client")
        outputs = c.outputs(status)
        assert list(outputs) == ["output"]
        seen = []
        path = c.download(outputs["output"], tmp_path, progress=lambda d, t: seen.append((d, t)))
    assert path.parent == tmp_path and path.suffix == ".txt"
    assert path.read_text() == "dragon client"
    assert seen[-1] == (len("dragon client"), len("dragon client"))
    assert not list(tmp_path.glob("*.part"))


def test_create_status_block_and_details(dragon_server):
    with client(dragon_server) as c:
        created = c.create(
            [{"task_name": "hello", "name": "A"}, {"task_name": "test.sleep", "seconds": 0.3}]
        )
        assert [d["status"] for d in created] != [] and len(created) == 2
        keys = [d["key"] for d in created]
        final = c.status(keys, block=True)
        assert [d["key"] for d in final] == keys
        assert [d["status"] for d in final] == ["success", "success"]
        assert final[0]["result"] == "Hello A"
        [detailed] = c.status(keys[1], details=True)
        assert detailed["task_name"] == "test.sleep"
        assert detailed["parameters"]["seconds"] == 0.3
        blocked = c.create({"task_name": "hello", "name": "B"}, block=True)
        assert blocked[0]["result"] == "Hello B"


def test_a_task_error_is_a_final_status_not_an_exception(dragon_server):
    with client(dragon_server) as c:
        status = c.run({"task_name": "test.file", "fail": True})
        assert status["status"] == "error"
        assert status["error_code"] == "invalid_media"
        assert status["error"] == "asked to fail"
        bad = c.run({"task_name": "image.thumb"})
        assert bad["error_code"] == "parameters"
        assert "url" in bad["error"]["parameters"]


def test_bad_credentials_raise_dragon_error_with_the_seed_errors(dragon_server):
    with Client(dragon_server.url, secret="NOT-A-SECRET") as c:
        with pytest.raises(DragonError) as info:
            c.create({"task_name": "hello", "name": "x"})
        assert info.value.status == 401
        assert info.value.errors[0]["description"] == "invalid secret key"
        with pytest.raises(DragonError) as info:
            list(c.stream(["ABCDEFGHIJKLMNOPQRSTUVWXYZ"]))
        assert info.value.status == 401
    assert "NOT-A-SECRET" not in str(info.value)


def test_api_key_with_an_allowed_referrer(dragon_server):
    account = dragon_server.create_account("sdk-web", "--referrer", "https://*.example.com/*")
    key = account["api_key"]
    with Client(dragon_server.url, api_key=key, referrer="https://app.example.com/") as c:
        assert c.run({"task_name": "hello", "name": "web"})["result"] == "Hello web"
    with Client(dragon_server.url, api_key=key, referrer="https://evil.test/") as c:
        with pytest.raises(DragonError) as info:
            c.run({"task_name": "hello", "name": "web"})
        assert info.value.status == 401


def test_stream_resumes_after_the_connection_drops(dragon_server):
    with (
        TcpProxy(dragon_server.port) as proxy,
        Client(proxy.url, secret=dragon_server.secret) as c,
    ):
        keys = [
            d["key"]
            for d in c.create(
                [
                    {"task_name": "test.sleep", "seconds": 2},
                    {"task_name": "test.progress", "seconds": 2},
                ]
            )
        ]
        seen = []
        for doc in c.stream(keys):
            seen.append(doc)
            if len(seen) == 2:  # the first line: both tasks, neither ended yet
                assert all(d["status"] not in FINAL for d in seen)
                proxy.cut()
        assert proxy.connections == 2
    finals = {d["key"]: d["status"] for d in seen if d["status"] in FINAL}
    assert finals == {keys[0]: "success", keys[1]: "success"}
    for key in keys:  # the resumed stream's first line repeats nothing already seen
        docs = [d for d in seen if d["key"] == key]
        assert all(a != b for a, b in zip(docs, docs[1:], strict=False))


def test_create_stream_resumes_after_the_connection_drops(dragon_server):
    async def main():
        async with AsyncClient(proxy.url, secret=dragon_server.secret) as c:
            seen = []
            async for doc in c.create_stream([{"task_name": "test.progress", "seconds": 1.5}]):
                seen.append(doc)
                if len(seen) == 1:
                    proxy.cut()
            return seen

    with TcpProxy(dragon_server.port) as proxy:
        seen = asyncio.run(main())
        assert proxy.connections == 2
    assert seen[-1]["status"] == "success"
    assert seen[-1]["result"] == {"half": True, "done": True}
    assert len({d["key"] for d in seen}) == 1


def test_async_client_runs_streams_and_reports_errors(dragon_server, tmp_path):
    async def main():
        async with AsyncClient(dragon_server.url, secret=dragon_server.secret) as c:
            ok = await c.run({"task_name": "test.file", "text": "async"})
            path = await c.download(c.outputs(ok)["output"], tmp_path)
            failed = await c.run({"task_name": "test.file", "fail": True})
            keys = [
                d["key"]
                for d in await c.create(
                    [{"task_name": "hello", "name": "a"}, {"task_name": "hello", "name": "b"}]
                )
            ]
            streamed = [d async for d in c.stream(keys)]
            with pytest.raises(DragonError) as info:
                async with AsyncClient(dragon_server.url, secret="wrong") as bad:
                    await bad.status(keys)
            return ok, path, failed, keys, streamed, info.value

    ok, path, failed, keys, streamed, error = asyncio.run(main())
    assert ok["status"] == "success" and path.read_text() == "async"
    assert failed["status"] == "error" and failed["error"] == "asked to fail"
    assert {d["key"]: d["result"] for d in streamed if d["status"] == "success"} == {
        keys[0]: "Hello a",
        keys[1]: "Hello b",
    }
    assert error.status == 401


def test_429_is_retried_after_retry_after(make_server):
    server = make_server(env={"DRAGON_CREATE_RATE": "1", "DRAGON_CREATE_BURST": "1"})
    task = {"task_name": "hello", "name": "r"}
    with client(server, retries=0) as c:
        c.create(task)
        with pytest.raises(DragonError) as info:
            c.create(task)
        assert info.value.status == 429
        assert info.value.retry_after >= 1
    with client(server) as c:
        statuses = [c.create(task, block=True)[0]["status"] for _ in range(3)]
    assert statuses == ["success"] * 3


def test_run_timeout_leaves_the_task_running(dragon_server):
    with client(dragon_server) as c:
        with pytest.raises(TimeoutError) as info:
            c.run({"task_name": "test.sleep", "seconds": 3}, timeout=0.5)
        key = re.search(r"task ([A-Z2-7]{26}) is still", str(info.value)).group(1)
        [status] = c.status(key)
        assert status["status"] in ("queued", "executing")
        assert c.status(key, block=True)[0]["status"] == "success"


def test_unreachable_server_is_a_dragon_error_after_retries():
    with (
        Client(f"http://127.0.0.1:{free_port()}", secret="x", retries=1) as c,
        pytest.raises(DragonError) as info,
    ):
        c.status(["ABCDEFGHIJKLMNOPQRSTUVWXYZ"])
    assert info.value.status is None
    assert "cannot reach" in str(info.value)


def test_stream_survives_a_server_restart(make_server):
    server = make_server()
    with Client(server.url, secret=server.secret) as c:
        [created] = c.create({"task_name": "test.sleep", "seconds": 1.5})
        restart = threading.Thread(target=lambda: (server.stop(), server.start()))
        seen = []
        for doc in c.stream(created["key"]):
            seen.append(doc)
            if len(seen) == 1:
                restart.start()  # closes the stream, then refuses connections for a while
        restart.join()
    assert seen[-1]["status"] == "success"
    assert server.log().count("dragon serving") == 2


def own_account(server, name: str) -> str:
    """A new account on ``server`` (its feed and files hold only what the test makes)."""
    return server.create_account(f"{name}-{free_port()}")["secret"]


def test_events_read_the_feed_from_a_cursor_and_follow_it_through_a_drop(dragon_server):
    secret = own_account(dragon_server, "events")
    with Client(dragon_server.url, secret=secret) as c:
        keys = [d["key"] for d in c.create([{"task_name": "hello", "name": n} for n in "ab"], True)]
        events = list(c.events())
        assert {e["key"] for e in events} == set(keys)
        assert [e["status"] for e in events if e["key"] == keys[0]][-1] == "success"
        assert all(e["task_name"] == "hello" for e in events)
        cursors = [e["cursor"] for e in events]
        assert cursors == sorted(set(cursors))
        assert list(c.events(after=cursors[1])) == events[2:]


def test_a_followed_feed_is_read_again_from_its_cursor_after_a_drop(dragon_server, later_task):
    secret = own_account(dragon_server, "drops")
    thread = later_task(secret)
    with (
        TcpProxy(dragon_server.port) as proxy,
        Client(proxy.url, secret=secret) as c,
    ):
        followed = []
        for event in c.events(follow=True):
            followed.append(event)
            if len(followed) == 1:
                proxy.cut()  # the feed is read again from the last cursor
            if event["status"] == "success":
                break
        assert proxy.connections >= 2
    thread.join()
    cursors = [e["cursor"] for e in followed]
    assert cursors == sorted(set(cursors))  # nothing twice, in order
    assert followed[0]["status"] == "queued" and followed[-1]["status"] == "success"


@pytest.fixture
def later_task(dragon_server):
    """Creates a task on an account a moment after the test starts following its feed."""

    def start(secret: str) -> threading.Thread:
        def create():
            with Client(dragon_server.url, secret=secret) as c:
                c.create({"task_name": "test.progress", "seconds": 1})

        thread = threading.Timer(0.5, create)
        thread.start()
        return thread

    return start


def test_a_followed_feed_waits_for_new_events(dragon_server, later_task):
    secret = own_account(dragon_server, "follow")
    thread = later_task(secret)
    seen = []
    with Client(dragon_server.url, secret=secret) as c:
        for event in c.events(follow=True):
            seen.append(event["status"])
            if event["status"] == "success":
                break
    thread.join()
    assert seen[0] == "queued" and seen[-1] == "success" and "executing" in seen


def test_storage_list_delete_and_expiration(dragon_server):
    secret = own_account(dragon_server, "storage")
    with Client(dragon_server.url, secret=secret) as c:
        first = c.run({"task_name": "test.file", "text": "one"})
        second = c.run({"task_name": "test.file", "text": "two", "names": ["a", "b"]})
        top = c.list_files()
        assert sorted(top["directories"]) == sorted([first["key"] + "/", second["key"] + "/"])
        assert top["usage"] == len("one") + 2 * len("two")
        inside = c.list_files(second["key"])
        assert len(inside["files"]) == 2
        assert len(c.list_files(recursive=True)["files"]) == 3
        dry = c.delete_files(second["key"], dry_run=True)
        assert len(dry["deleted"]) == 2 and dry["freed"] == 6
        assert len(c.list_files(second["key"])["files"]) == 2  # nothing went
        gone = c.delete_files(urls=[first["result"]["output"]])
        assert gone["freed"] == 3 and gone["usage"] == 6
        assert c.delete_files(max_age=0)["usage"] == 0
        assert c.set_expiration(3) == 3 and c.expiration() == 3
    account = dragon_server.create_account(f"keyed-{free_port()}", "--referrer", "*")
    with Client(
        dragon_server.url, api_key=account["api_key"], referrer="https://site.test/"
    ) as keyed:
        with pytest.raises(DragonError) as info:
            keyed.set_expiration(1)
        assert info.value.status == 403


def test_create_file_returns_the_url_of_the_output_file(dragon_server, tmp_path):
    with client(dragon_server) as c:
        url = c.create_file({"task_name": "test.file", "text": "made by create_file"})
        assert c.download(url, tmp_path, name="output").read_text() == "made by create_file"
        assert c.create_file({"task_name": "test.file", "text": "made by create_file"}) == url
        two = {"task_name": "test.file", "text": "x", "names": ["small", "large"]}
        assert (
            c.create_file(two, "large").split("/")[-2] == c.create_file(two, "small").split("/")[-2]
        )
        with pytest.raises(DragonError) as info:
            c.create_file(two, "medium")
        assert info.value.status == 404 and "'small', 'large'" in str(info.value)
        with pytest.raises(DragonError) as info:
            c.create_file({"task_name": "test.file", "fail": True})
        error = info.value
        assert error.status == 400 and error.document["error_code"] == "invalid_media"
        assert (
            str(error)
            == f"task {error.document['key']} ended in error (invalid_media): asked to fail"
        )


def test_the_async_client_has_the_same_new_verbs(dragon_server):
    secret = own_account(dragon_server, "async")

    async def main():
        async with AsyncClient(dragon_server.url, secret=secret) as c:
            url = await c.create_file({"task_name": "test.file", "text": "async"})
            events = [e async for e in c.events()]
            listing = await c.list_files(recursive=True)
            deleted = await c.delete_files(dry_run=True)
            return url, events, listing, deleted, await c.set_expiration(2), await c.expiration()

    url, events, listing, deleted, set_to, days = asyncio.run(main())
    assert events[-1]["status"] == "success" and url.endswith(events[-1]["result"]["output"][-6:])
    assert [f["url"] for f in listing["files"]] == [url]
    assert deleted["freed"] == len("async") and (set_to, days) == (2, 2)
