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
