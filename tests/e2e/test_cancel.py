"""Cancelling tasks (``POST /v2/cancel``, ``/v1/cancel``) on a real server with real tools.

A queued task ends at once and never starts; an executing one is stopped: its tool's
process is gone (looked up in /proc by its working folder, the task's own), its temporary
files and the outputs it had stored are removed, and an upload in progress is ended on the
platform where the protocol allows. Each end is one end: the errback fires and the event
feed records it once, whatever the stopped run does afterwards. The SDK, the CLI (and
``dragon run``'s Ctrl-C) and the dashboard's button reach the same endpoint.

The server has one heavy slot, so a second heavy task waits in the queue. On
``DRAGON_TEST_BACKEND=postgres`` outputs live in S3 and the checks look in the bucket too;
two nodes are in test_cancel_cluster.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dragon.client import AsyncClient, Client
from tests.support import media
from tests.support.platforms import PlatformServer
from tests.support.server import dragon

CHUNK = 256 * 1024
TOKEN = "cancel-test-token"
HANG_GUARD = 15.0  # seconds: what "at once" may take on a busy box before the test fails


# -- helpers shared with test_cancel_cluster.py ---------------------------------------------
def wait_until(condition, timeout: float = 60.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def status(server, keys: list[str], **extra) -> list[dict]:
    r = server.request("POST", "/v2/status", {"tasks": keys, **extra})
    assert r.status == 200, r.body
    return r.json()


def cancel(server, keys: list[str], path: str = "/v2/cancel", **extra) -> list[dict]:
    r = server.request("POST", path, {"tasks": keys, **extra})
    assert r.status == 200, r.body
    return r.json()


def wait_status(server, key: str, wanted: str, timeout: float = 60.0) -> dict:
    return wait_until(
        lambda: next((d for d in status(server, [key]) if d["status"] == wanted), None),
        timeout,
        f"{key} to be {wanted}",
    )


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def tool_pids(server, key: str, tool: str) -> list[int]:
    """Live processes of ``tool`` running in the task's folder (a task's tools run there)."""
    folder = (Path(server.data_dir) / "tmp" / key).resolve()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(os.readlink(entry / "cwd")) != folder:
                continue
            argv0 = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if os.path.basename(argv0).decode() == tool and alive(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def leftovers(server, key: str, s3_client=None) -> list[str]:
    """Whatever of the task is left: in the data folder's tmp (its folder, its batch's
    downloads), its output files folder, and the bucket on the S3 backend."""
    data = Path(server.data_dir)
    try:
        found = [str(p) for p in (data / "tmp").rglob(f"*{key}*")]
    except FileNotFoundError:  # a folder went while it was walked: the removal is under way
        return ["(being removed)"]
    if (data / "files" / key).exists():
        found.append(str(data / "files" / key))
    bucket = server.env.get("DRAGON_S3_BUCKET")
    if bucket and s3_client is not None:
        listing = s3_client.list_objects_v2(Bucket=bucket, Prefix=key)
        found += [o["Key"] for o in listing.get("Contents", [])]
    return found


def assert_cancelled(doc: dict, key: str, started: bool) -> None:
    assert doc["key"] == key and doc["status"] == "error", doc
    assert doc["error_code"] == "cancelled" and "cancelled" in doc["error"], doc
    assert doc["progress"] == 100.0 and "completed" in doc["events"]
    assert ("started" in doc["events"]) is started, doc


class Receiver:
    """Records the callbacks POSTed to it (answers 200)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def platforms():
    server = PlatformServer()
    for protocol in (server.youtube, server.vimeo, server.graph):
        protocol.tokens = {TOKEN}
    yield server
    server.close()


@pytest.fixture(scope="module")
def server(make_server, platforms):
    return make_server(
        env={
            **platforms.env,
            "DRAGON_CONCURRENCY": "1",
            "DRAGON_UPLOAD_CHUNK_BYTES": str(CHUNK),
            "DRAGON_WEBHOOK_FIRST_DELAY_SECONDS": "0.3",
        }
    )


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.httpd.shutdown()


@pytest.fixture(scope="module")
def s3_client(backends, server):
    return backends.s3.client if server.env.get("DRAGON_S3_BUCKET") else None


@pytest.fixture(scope="module")
def long_clip(origin, tmp_path_factory) -> str:
    """A minute of 640x360 video: converting it to 1080p takes long on any box."""
    path = media.video(tmp_path_factory.mktemp("cancel") / "long.mp4", duration=60, size="640x360")
    return origin.add_file("cancel/long.mp4", path, "video/mp4")


@pytest.fixture(scope="module")
def source(origin, tmp_path_factory) -> str:
    path = media.video(tmp_path_factory.mktemp("cancel") / "upload.mp4", size="640x480")
    assert path.stat().st_size > 2 * CHUNK
    return origin.add_file("cancel/upload.mp4", path, "video/mp4")


@pytest.fixture(autouse=True)
def idle(server):
    """Every test starts with the heavy slot free: nothing of an earlier test still runs."""
    wait_until(
        lambda: server.request("GET", "/healthz", auth=False).json()["executing"] == 0,
        HANG_GUARD,
        "the server to be idle",
    )


# -- the endpoint -----------------------------------------------------------------------------
def test_a_queued_task_ends_at_once_and_an_executing_one_is_stopped(server, receiver):
    running, waiting = server.create(
        [
            {"task_name": "test.sleep", "seconds": 300},
            {"task_name": "test.sleep", "seconds": 1, "url_errback": f"{receiver.url}/waiting"},
        ],
        block=False,
    )
    keys = [running["key"], waiting["key"]]
    wait_status(server, running["key"], "executing")
    [pid] = wait_until(lambda: tool_pids(server, running["key"], "sleep"), what="sleep to run")
    assert status(server, [waiting["key"]])[0]["status"] == "queued"

    assert server.request("GET", "/healthz").json()["queued"] == 1
    [queued] = cancel(server, [waiting["key"]])
    assert_cancelled(queued, waiting["key"], started=False)
    assert alive(pid)  # the other task goes on
    assert server.request("GET", "/healthz").json()["queued"] == 0  # it left the queue
    # The errback carries the cancelled status, as for any other end.
    wait_until(lambda: receiver.calls, HANG_GUARD, "the errback")
    [(path, body)] = receiver.calls
    assert path == "/waiting" and body == queued

    [executing] = cancel(server, [running["key"]])
    assert_cancelled(executing, running["key"], started=True)
    wait_until(lambda: not alive(pid), HANG_GUARD, "the tool to be killed")
    wait_until(lambda: not leftovers(server, running["key"]), HANG_GUARD, "its files to go")

    # The slot is free again: a new task runs (the cancelled queued one never starts).
    [after] = server.create([{"task_name": "test.sleep", "seconds": 0.1}])
    assert after["status"] == "success"
    # Idempotent: an ended task is answered as it is; its end is not written again.
    assert cancel(server, keys) == [executing, queued]
    assert status(server, keys) == [executing, queued]
    feed = server.request("GET", "/v2/events").lines()
    assert [e["status"] for e in feed if e["key"] == running["key"]] == [
        "queued",
        "executing",
        "error",
    ]
    assert [e["status"] for e in feed if e["key"] == waiting["key"]] == ["queued", "error"]
    ended = [e for e in feed if e["key"] in keys and e["status"] == "error"]
    assert all(e["error_code"] == "cancelled" for e in ended)
    assert len(receiver.calls) == 1  # the executing one asked for no errback
    health = server.request("GET", "/healthz", auth=False).json()
    assert health["executing"] == 0 and health["queued"] == 0


def test_cancel_answers_as_status_does(server):
    other = server.create_account("cancel-other")
    theirs_auth = {"Authorization": f"Secret {other['secret']}"}
    r = server.request(
        "POST",
        "/v2/create",
        {"tasks": [{"task_name": "test.progress", "seconds": 2}]},
        headers=theirs_auth,
    )
    [theirs] = r.json()
    [done] = server.create([{"task_name": "hello", "name": "ended"}])
    assert done["status"] == "success"
    unknown = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    keys = [theirs["key"], done["key"], unknown, done["key"]]
    answer = cancel(server, keys)
    # As status answers: each distinct key once, in the request's order; another
    # account's key is an unknown one.
    assert answer == status(server, keys)
    assert [d["key"] for d in answer] == [theirs["key"], done["key"], unknown]
    assert [d.get("error_code") for d in answer] == ["unknown_task", None, "unknown_task"]
    assert answer[1] == done
    # The other account's task was not touched: it runs to its end.
    r = server.request(
        "POST", "/v2/status", {"tasks": [theirs["key"]], "block": True}, headers=theirs_auth
    )
    assert r.json()[0]["status"] == "success"

    # /v1: the v1 status shape (the error under result); the key as a plain string.
    [first] = server.create([{"task_name": "test.sleep", "seconds": 300}], block=False)
    [v1] = cancel(server, first["key"], "/v1/cancel")
    assert v1["status"] == "error" and v1["error_code"] == "cancelled"
    assert "cancelled" in v1["result"] and "error" not in v1
    # The api key from an allowed referrer may cancel, as it may read statuses.
    [late] = server.create([{"task_name": "test.sleep", "seconds": 300}], block=False)
    r = server.request(
        "POST",
        "/v2/cancel",
        {"tasks": [late["key"]], "api_key": server.api_key},
        auth=False,
        headers={"Referer": "https://pages.example.com/app"},
    )
    assert r.status == 200 and r.json()[0]["error_code"] == "cancelled"

    # Malformed requests are refused as status refuses them.
    r = server.request("POST", "/v2/cancel", {})
    assert r.status == 400 and r.json()["errors"][0]["name"] == "tasks"
    r = server.request("POST", "/v2/cancel", {"tasks": [1, 2]})
    assert r.status == 400
    r = server.request("POST", "/v2/cancel", {"tasks": [unknown]}, auth=False)
    assert r.status == 401
    r = server.request("POST", "/v2/cancel", {"tasks": [unknown], "secret": "wrong"}, auth=False)
    assert r.status == 401 and r.json()["errors"][0]["location"] == "body"
    assert server.request("GET", f"/v2/cancel?tasks={unknown}").status == 405


def test_an_executing_convert_is_stopped_and_leaves_no_file(server, long_clip, s3_client):
    [created] = server.create(
        [{"task_name": "video.convert", "url": long_clip, "width": 1920}], block=False
    )
    key = created["key"]
    [pid] = wait_until(lambda: tool_pids(server, key, "ffmpeg"), what="ffmpeg to encode")
    assert (Path(server.data_dir) / "tmp" / key).exists()
    [doc] = cancel(server, [key])
    assert_cancelled(doc, key, started=True)
    wait_until(lambda: not alive(pid), HANG_GUARD, "ffmpeg to be killed")
    wait_until(lambda: not leftovers(server, key, s3_client), HANG_GUARD, "no file of the task")
    assert not tool_pids(server, key, "ffmpeg")
    assert status(server, [key]) == [doc]


def test_the_outputs_a_task_had_stored_are_removed(server, origin, s3_client):
    """video.create publishes its preview (stored) before it renders the export: cancelled
    during the export, the preview it stored goes too."""
    red = origin.add("cancel/red.jpg", media.image_bytes(320, 240, (255, 0, 0)), "image/jpeg")
    definition = (
        '<movie service="craftsman-1.0"><body><effect type="kenburns" duration="40">'
        f'<image filename="{red}"/></effect></body></movie>'
    )
    [created] = server.create(
        [
            {
                "task_name": "video.create",
                "definition": definition,
                "profile": "1080p",
                "preview": True,
            }
        ],
        block=False,
    )
    key = created["key"]
    partial = wait_until(
        lambda: next(
            (d for d in status(server, [key]) if d.get("result", {}).get("preview")), None
        ),
        240,
        "the preview",
    )
    preview = partial["result"]["preview"]
    assert partial["status"] == "executing" and server.get(preview).status == 200
    [doc] = cancel(server, [key])
    assert_cancelled(doc, key, started=True)
    wait_until(lambda: not leftovers(server, key, s3_client), HANG_GUARD, "no file of the task")
    assert server.get(preview).status in (403, 404)
    listing = server.request("GET", "/v2/storage/files/?recursive=true").json()
    assert not [f for f in listing["files"] if f["name"].startswith(key)]
    assert not [d for d in listing["directories"] if d.startswith(key)]


# -- uploads ----------------------------------------------------------------------------------
def upload_task(name: str, url: str) -> dict:
    if name == "vimeo":
        return {"task_name": "video.upload.vimeo", "url": url, "oauth2_token": TOKEN}
    if name == "fb":
        return {"task_name": "video.upload.fb", "url": url, "access_token": TOKEN}
    return {
        "task_name": "video.upload.youtube",
        "url": url,
        "access_token": TOKEN,
        "developer_key": "dev-key",
        "title": "cancelled",
    }


@pytest.mark.parametrize("platform", ["vimeo", "fb", "youtube"])
def test_an_executing_upload_is_ended_on_the_platform(server, platforms, source, platform):
    """Each platform holds the data request a while, so the upload is mid-transfer when
    cancelled. Vimeo's tus upload is terminated and its video deleted; Facebook's session
    gets the cancel phase; YouTube's protocol has no such call: the session stays
    unfinished (no video exists until its last byte)."""
    protocol = {"vimeo": platforms.vimeo, "fb": platforms.graph, "youtube": platforms.youtube}[
        platform
    ]
    protocol.delay = 30.0
    before = set(protocol.uploads)
    try:
        [created] = server.create([upload_task(platform, source)], block=False)
        key = created["key"]
        wait_until(lambda: set(protocol.uploads) - before, 60, "the upload to start")
        [upload_id] = set(protocol.uploads) - before
        upload = protocol.uploads[upload_id]
        time.sleep(0.3)  # into the held data request
        [doc] = cancel(server, [key])
        assert_cancelled(doc, key, started=True)
        if platform == "vimeo":
            wait_until(
                lambda: {upload_id, f"video {upload_id}"} <= set(protocol.ended),
                HANG_GUARD,
                "the tus termination and the video's deletion",
            )
            deletes = [r for r in protocol.requests if r["method"] == "DELETE"]
            assert deletes[0]["headers"]["Tus-Resumable"] == "1.0.0"
            assert "Authorization" not in deletes[0]["headers"]  # the link is the capability
        elif platform == "fb":
            wait_until(lambda: upload_id in protocol.ended, HANG_GUARD, "the cancel phase")
            [cancelled] = [
                r for r in protocol.requests if r.get("form", {}).get("upload_phase") == "cancel"
            ]
            assert cancelled["form"]["upload_session_id"] == f"s{upload_id}"
        wait_until(lambda: not leftovers(server, key), HANG_GUARD, "the task's files to go")
        assert not upload.complete
        assert status(server, [key]) == [doc]
    finally:
        protocol.delay = 0.0


# -- the SDK, the CLI, the dashboard ----------------------------------------------------------
def test_the_sdk_cancels_sync_and_async(server):
    with Client(server.url, secret=server.secret) as client:
        running, waiting = client.create(
            [{"task_name": "test.sleep", "seconds": 300}, {"task_name": "test.sleep"}]
        )
        wait_status(server, running["key"], "executing")
        docs = client.cancel([waiting["key"], running["key"]])
        assert_cancelled(docs[0], waiting["key"], started=False)
        assert_cancelled(docs[1], running["key"], started=True)
        assert client.cancel(running["key"]) == [docs[1]]  # one key as a string; idempotent

    async def main() -> list[dict]:
        async with AsyncClient(server.url, secret=server.secret) as client:
            [created] = await client.create({"task_name": "test.sleep", "seconds": 300})
            return await client.cancel([created["key"]])

    [doc] = asyncio.run(main())
    assert doc["error_code"] == "cancelled"


def cli(server, *args: str) -> subprocess.CompletedProcess:
    return dragon(
        *args, env={"DRAGON_URL": server.url, "DRAGON_SECRET": server.secret}, check=False
    )


def test_dragon_cancel_prints_the_statuses_and_exits_1_for_an_unknown_key(server):
    [created] = server.create([{"task_name": "test.sleep", "seconds": 300}], block=False)
    key = created["key"]
    done = cli(server, "cancel", key)
    assert done.returncode == 0, done.stderr
    [doc] = [json.loads(line) for line in done.stdout.splitlines()]
    assert_cancelled(doc, key, started="started" in doc["events"])
    assert f"task {key} cancelled" in done.stderr
    again = cli(server, "cancel", key, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert again.returncode == 1
    assert [json.loads(line) for line in again.stdout.splitlines()][0] == doc
    assert f"task {key} cancelled" in again.stderr  # as it is: cancelled
    assert "ABCDEFGHIJKLMNOPQRSTUVWXYZ unknown" in again.stderr
    [ended] = server.create([{"task_name": "hello", "name": "x"}])
    done = cli(server, "cancel", ended["key"])
    assert done.returncode == 0 and "had ended already (success)" in done.stderr


def start_run(server, stdin, stderr) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dragon", "run", "test.sleep", "seconds:=300"],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env={
            **os.environ,
            "DRAGON_URL": server.url,
            "DRAGON_SECRET": server.secret,
            "TERM": "dumb",
            "COLUMNS": "200",
        },
    )


def feed_cursor(server) -> int:
    feed = server.request("GET", "/v2/events").lines()
    return feed[-1]["cursor"] if feed else 0


def created_after(server, cursor: int) -> str | None:
    """The key of the first task created after the feed's ``cursor``, if any yet."""
    feed = server.request("GET", f"/v2/events?after={cursor}").lines()
    return next((e["key"] for e in feed if e["status"] == "queued"), None)


def test_ctrl_c_in_dragon_run_without_a_terminal_says_how_to_cancel(server):
    cursor = feed_cursor(server)
    proc = start_run(server, subprocess.DEVNULL, subprocess.PIPE)
    try:
        key = wait_until(lambda: created_after(server, cursor), 60, "the task")
        wait_status(server, key, "executing")
        # The server has sent the key; on a loaded box dragon run may not have read it yet
        # (a Ctrl-C before that cannot name the task).
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert f"`dragon cancel {key}`" in err.decode() and out == b""
    assert status(server, [key])[0]["status"] == "executing"  # it goes on
    assert cli(server, "cancel", key).returncode == 0


def test_ctrl_c_in_dragon_run_on_a_terminal_offers_to_cancel(server):
    cursor = feed_cursor(server)
    leader, follower = pty.openpty()
    proc = start_run(server, follower, follower)
    os.close(follower)
    screen = bytearray()

    def read(until: bytes) -> None:
        deadline = time.monotonic() + 60
        while until not in screen:
            assert time.monotonic() < deadline, screen.decode(errors="replace")
            if select.select([leader], [], [], 0.1)[0]:
                screen.extend(os.read(leader, 4096))

    try:
        key = wait_until(lambda: created_after(server, cursor), 60, "the task")
        wait_status(server, key, "executing")
        [pid] = wait_until(lambda: tool_pids(server, key, "sleep"), what="sleep to run")
        proc.send_signal(signal.SIGINT)
        read(f"cancel task {key}? [y/N]".encode())
        os.write(leader, b"y\n")
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
        os.close(leader)
    assert proc.returncode == 130
    [doc] = [json.loads(line) for line in out.decode().splitlines()]
    assert_cancelled(doc, key, started=True)
    wait_until(lambda: not alive(pid), HANG_GUARD, "the tool to be killed")


def test_the_dashboard_cancels_a_task(server):
    playwright = pytest.importorskip("playwright.sync_api")
    from tests.support.browser import ARGS, chromium

    [running] = server.create([{"task_name": "test.sleep", "seconds": 300}], block=False)
    key = running["key"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server.url}/dashboard#secret={server.secret}")
            page.wait_for_selector(f'tr[data-key="{key}"][data-status=executing]', timeout=20_000)
            page.click(f'tr[data-key="{key}"] button.cancel')
            row = page.wait_for_selector(f'tr[data-key="{key}"][data-status=error]', timeout=20_000)
            assert "cancelled:" in row.inner_text()
            assert row.query_selector("button.cancel") is None  # ended: nothing to cancel
            assert errors == []
        finally:
            browser.close()
    assert status(server, [key])[0]["error_code"] == "cancelled"
