"""``dragon run``, ``dragon status`` and ``dragon download`` against a live server, as a user
runs them: real subprocesses, stdout parsed as NDJSON, exit codes checked."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading

import pytest

from dragon.client import Client
from tests.support.server import dragon


def cli(server, *args: str, secret: str | None = None) -> subprocess.CompletedProcess:
    env = {"DRAGON_URL": server.url, "DRAGON_SECRET": secret or server.secret}
    return dragon(*args, env=env, check=False)


def lines(out: str) -> list:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_run_prints_the_final_status_and_progress_lines(dragon_server):
    done = cli(dragon_server, "run", "test.progress", "seconds:=0.5")
    assert done.returncode == 0, done.stderr
    [status] = lines(done.stdout)
    assert status["status"] == "success"
    assert status["result"] == {"half": True, "done": True}
    key = status["key"]
    progress = done.stderr.splitlines()
    assert f"{key} executing 50%" in progress
    assert progress[-1] == f"{key} success 100%"


def test_run_exits_1_with_the_task_error_on_stderr(dragon_server):
    done = cli(dragon_server, "run", "test.file", "fail:=true")
    assert done.returncode == 1
    [status] = lines(done.stdout)
    assert status["status"] == "error" and status["error_code"] == "invalid_media"
    assert f"task {status['key']} ended in error (invalid_media): asked to fail" in done.stderr


def test_bad_credentials_exit_2(dragon_server):
    done = cli(dragon_server, "run", "hello", "name=x", secret="NOT-A-SECRET")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "HTTP 401" in done.stderr and "invalid secret key" in done.stderr
    assert "NOT-A-SECRET" not in done.stderr
    done = cli(dragon_server, "status", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", secret="NOT-A-SECRET")
    assert done.returncode == 2


def test_field_syntax_reaches_the_task_with_its_json_types(dragon_server):
    fields = [
        "name=John = Smith",
        "count:=3",
        "ratio:=-1.5",
        "flag:=true",
        "off:=false",
        "nothing:=null",
        'items:=[1, "a", [true]]',
        'nested:={"a": {"b": 2}}',
        "page=https://x.test/?a=b&c=d",
        "number_as_text=3",
    ]
    done = cli(dragon_server, "run", "hello", *fields, "--store", '{"type": "volatile"}')
    assert done.returncode == 0, done.stderr
    [status] = lines(done.stdout)
    assert status["result"] == "Hello John = Smith"
    details = cli(dragon_server, "status", "--details", status["key"])
    [detailed] = lines(details.stdout)
    assert detailed["store"] == {"type": "volatile"}
    params = detailed["parameters"]
    assert params["name"] == "John = Smith"
    assert params["count"] == 3 and isinstance(params["count"], int)
    assert params["ratio"] == -1.5
    assert params["flag"] is True and params["off"] is False and params["nothing"] is None
    assert params["items"] == [1, "a", [True]]
    assert params["nested"] == {"a": {"b": 2}}
    assert params["page"] == "https://x.test/?a=b&c=d"
    assert params["number_as_text"] == "3"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["count:=three"], "count: 'three' is not valid JSON"),
        (["count:=NaN"], "count: 'NaN' is not valid JSON"),
        (["items:=[1, 2"], "items: '[1, 2' is not valid JSON"),
        (["justtext"], "'justtext' is not field=value or field:=json"),
        (["=x"], "'=x' is not field=value or field:=json"),
        ([":=1"], "':=1' has no field name"),
        (["a=1", "a:=2"], "a is given twice"),
        (["task_name=other"], "task_name is the first argument"),
        (["--store", "{volatile"], "--store: '{volatile' is not valid JSON"),
        (["--store", "[1]"], "--store must be a JSON object"),
    ],
)
def test_malformed_input_is_a_usage_error(dragon_server, args, message):
    done = cli(dragon_server, "run", "hello", *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert message in done.stderr


def test_no_wait_prints_the_created_status(dragon_server):
    done = cli(dragon_server, "run", "test.sleep", "seconds:=0.5", "--no-wait")
    assert done.returncode == 0, done.stderr
    [status] = lines(done.stdout)
    assert status["status"] in ("queued", "executing")
    with Client(dragon_server.url, secret=dragon_server.secret) as c:
        assert c.status(status["key"], block=True)[0]["status"] == "success"


def test_status_prints_ndjson_in_key_order(dragon_server):
    with Client(dragon_server.url, secret=dragon_server.secret) as c:
        keys = [
            d["key"]
            for d in c.create(
                [{"task_name": "hello", "name": "a"}, {"task_name": "hello", "name": "b"}],
                block=True,
            )
        ]
    done = dragon(
        "status",
        "--server",
        dragon_server.url,
        "--secret",
        dragon_server.secret,
        *keys,
        check=False,
        env={"DRAGON_URL": "", "DRAGON_SECRET": ""},
    )
    assert done.returncode == 0, done.stderr
    assert [(d["key"], d["result"]) for d in lines(done.stdout)] == [
        (keys[0], "Hello a"),
        (keys[1], "Hello b"),
    ]


def test_status_follow_streams_several_tasks_until_all_ended(dragon_server):
    with Client(dragon_server.url, secret=dragon_server.secret) as c:
        keys = [
            d["key"]
            for d in c.create(
                [
                    # long enough that the CLI, started after them, sees them running
                    {"task_name": "test.sleep", "seconds": 4},
                    {"task_name": "test.progress", "seconds": 4},
                    {"task_name": "test.file", "fail": True},
                ]
            )
        ]
    done = cli(dragon_server, "status", "--follow", "--details", *keys)
    assert done.returncode == 0, done.stderr
    docs = lines(done.stdout)
    assert [d["key"] for d in docs[:3]] == keys  # the current statuses first, in key order
    last = {d["key"]: d for d in docs}
    assert [last[k]["status"] for k in keys] == ["success", "success", "error"]
    assert [last[k]["task_name"] for k in keys] == ["test.sleep", "test.progress", "test.file"]
    assert any(d["key"] == keys[1] and d.get("progress") == 50 for d in docs)


def test_download_saves_the_output_files(dragon_server, tmp_path):
    run = cli(dragon_server, "run", "test.file", "text=downloaded by the cli")
    key = lines(run.stdout)[0]["key"]
    done = cli(dragon_server, "download", key, "--to", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    [saved] = lines(done.stdout)
    assert saved["name"] == "output" and saved["size"] == len("downloaded by the cli")
    path = tmp_path / "out" / os.path.basename(saved["path"])
    assert path.read_text() == "downloaded by the cli"
    assert f"output: {saved['path']} ({saved['size']} bytes)" in done.stderr
    failed = lines(cli(dragon_server, "run", "test.file", "fail:=true").stdout)[0]
    done = cli(dragon_server, "download", failed["key"], "--to", str(tmp_path))
    assert done.returncode == 1 and "asked to fail" in done.stderr


def test_run_draws_a_progress_bar_when_stderr_is_a_terminal(dragon_server):
    leader, follower = pty.openpty()
    env = {
        **os.environ,
        "DRAGON_URL": dragon_server.url,
        "DRAGON_SECRET": dragon_server.secret,
        "TERM": "xterm-256color",
        "COLUMNS": "120",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "dragon", "run", "test.progress", "seconds:=1"],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    screen = bytearray()

    def read_terminal():
        try:
            while chunk := os.read(leader, 4096):
                screen.extend(chunk)
        except OSError:
            pass  # the terminal closed with the process

    reader = threading.Thread(target=read_terminal)
    reader.start()
    out, _ = proc.communicate(timeout=60)
    reader.join(10)
    os.close(leader)
    assert proc.returncode == 0
    [status] = lines(out.decode())
    assert status["status"] == "success"
    drawn = screen.decode(errors="replace")
    assert "━" in drawn  # rich's bar
    assert "100%" in drawn and status["key"] in drawn
    assert f"{status['key']} success\r\n" not in drawn  # not the plain lines
