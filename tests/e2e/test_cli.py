"""``dragon run``, ``dragon status`` and ``dragon download`` against a live server, as a user
runs them: real subprocesses, stdout parsed as NDJSON, exit codes checked."""

from __future__ import annotations

import json
import os
import pty
import signal
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
        "page=https://x.test/a=b",
        "pair=a=b&c=d",
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
    assert params["page"] == "https://x.test/a=b"
    assert params["pair"] == "a=b&c=d"  # (details hide a URL's query: signed URLs hold keys)
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
                    # even on a loaded 2-core box (it takes seconds to start there)
                    {"task_name": "test.sleep", "seconds": 4},
                    {"task_name": "test.progress", "seconds": 10},
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


def test_version():
    done = dragon("--version", check=False)
    assert done.returncode == 0 and done.stdout.strip() == "dragon 0.1.0"


def test_fields_from_files_as_httpie_reads_them(dragon_server, tmp_path):
    (tmp_path / "name.txt").write_text("from a file")
    (tmp_path / "names.json").write_text('["export", "preview"]')
    done = cli(
        dragon_server,
        "run",
        "test.file",
        f"text=@{tmp_path / 'name.txt'}",
        f"names:=@{tmp_path / 'names.json'}",
    )
    assert done.returncode == 0, done.stderr
    [status] = lines(done.stdout)
    assert status["result"]["length"] == len("from a file")
    assert set(status["result"]) >= {"export", "preview"}
    done = cli(dragon_server, "run", "hello", f"name=@{tmp_path / 'missing.txt'}")
    assert done.returncode == 2 and "name: cannot read" in done.stderr and done.stdout == ""


def test_run_shows_the_parameters_the_task_ignored(dragon_server):
    done = cli(dragon_server, "run", "test.file", "txet=typo", "colour=red")
    assert done.returncode == 0, done.stderr
    [status] = lines(done.stdout)
    assert status["result"]["warnings"] == [
        "parameter 'txet' was ignored: did you mean 'text'?",
        "parameter 'colour' was ignored: it is not a parameter of this task",
    ]
    assert "dragon: warning: parameter 'txet' was ignored: did you mean 'text'?" in done.stderr
    assert "dragon: warning: parameter 'colour' was ignored" in done.stderr


def test_download_names_files_after_their_outputs(dragon_server, tmp_path):
    keys = []
    for text in ("first", "second"):
        run = cli(dragon_server, "run", "test.file", f"text={text}", 'names:=["export", "preview"]')
        keys.append(lines(run.stdout)[0]["key"])
    saved = []
    for key in keys:
        done = cli(dragon_server, "download", key, "--to", str(tmp_path))
        assert done.returncode == 0, done.stderr
        saved.append({d["name"]: os.path.basename(d["path"]) for d in lines(done.stdout)})
    assert saved == [
        {"export": "export.txt", "preview": "preview.txt"},
        {"export": "export-2.txt", "preview": "preview-2.txt"},  # never over another's file
    ]
    assert (tmp_path / "export.txt").read_text() == "first"
    assert (tmp_path / "export-2.txt").read_text() == "second"


def on_a_terminal(args: list[str], env: dict) -> tuple[int, str]:
    """Run ``dragon ARGS`` with stdout on a terminal; its exit status and what it printed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dragon", *args],
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    os.close(follower)
    screen = bytearray()
    try:
        while chunk := os.read(leader, 4096):
            screen.extend(chunk)
    except OSError:
        pass  # the terminal closed with the process
    os.close(leader)
    return proc.wait(60), screen.decode().replace("\r\n", "\n")


def test_json_is_indented_on_a_terminal_and_one_line_in_a_pipe(dragon_server):
    [status] = lines(cli(dragon_server, "run", "hello", "name=tty").stdout)
    env = {"DRAGON_URL": dragon_server.url, "DRAGON_SECRET": dragon_server.secret}
    code, shown = on_a_terminal(["status", status["key"]], env)
    assert code == 0
    assert shown.startswith('{\n  "status": "success",\n  "key": ')
    assert json.loads(shown) == status
    piped = cli(dragon_server, "status", status["key"]).stdout
    assert piped.count("\n") == 1 and json.loads(piped) == status


def test_events_follow_until_interrupted_exits_130(dragon_server):
    secret = dragon_server.create_account(f"cli-events-{os.getpid()}-{id(lines)}")["secret"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dragon", "events", "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DRAGON_URL": dragon_server.url, "DRAGON_SECRET": secret},
    )
    with Client(dragon_server.url, secret=secret) as c:
        [created] = c.create({"task_name": "hello", "name": "feed"})
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(json.loads(line))
        if seen[-1]["status"] == "success":
            break
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    assert {e["key"] for e in seen} == {created["key"]}
    assert [e["status"] for e in seen][0] == "queued" and seen[-1]["result"] == "Hello feed"
    done = dragon(
        "events",
        "--after",
        str(seen[0]["cursor"]),
        check=False,
        env={"DRAGON_URL": dragon_server.url, "DRAGON_SECRET": secret},
    )
    assert lines(done.stdout) == seen[1:]


def test_storage_commands(dragon_server):
    secret = dragon_server.create_account(f"cli-storage-{os.getpid()}")["secret"]
    env = {"DRAGON_URL": dragon_server.url, "DRAGON_SECRET": secret}

    def storage(*args):
        return dragon("storage", *args, check=False, env=env)

    with Client(dragon_server.url, secret=secret) as c:
        status = c.run({"task_name": "test.file", "text": "kept"})
    [listing] = lines(storage("list", "--recursive").stdout)
    assert [f["url"] for f in listing["files"]] == [status["result"]["output"]]
    refused = storage("delete")
    assert refused.returncode == 2 and "--all" in refused.stderr
    [dry] = lines(storage("delete", "--all", "--dry-run").stdout)
    assert dry["freed"] == 4 and dry["usage"] == 0  # what would be left
    assert len(lines(storage("list", "--recursive").stdout)[0]["files"]) == 1
    [gone] = lines(storage("delete", status["key"]).stdout)
    assert gone["freed"] == 4 and gone["usage"] == 0
    assert lines(storage("expiration", "5").stdout) == [5]
    assert lines(storage("expiration").stdout) == [5]


def test_template_commands_and_the_sdk_use_a_template(dragon_server, tmp_path):
    secret = dragon_server.create_account(f"cli-templates-{os.getpid()}")["secret"]
    env = {"DRAGON_URL": dragon_server.url, "DRAGON_SECRET": secret}

    def templates(*args):
        return dragon("templates", *args, check=False, env=env)

    card = tmp_path / "card.xml"
    card.write_text(
        '<movie service="craftsman-1.0"><body><text duration="1">{{title}}</text></body></movie>'
    )
    [stored] = lines(templates("put", "card", str(card)).stdout)
    assert (stored["name"], stored["fields"]) == ("card", ["title"])
    assert [t["name"] for t in lines(templates("list").stdout)[0]] == ["card"]
    with Client(dragon_server.url, secret=secret) as c:
        assert c.template("card")["definition"] == card.read_text()
        final = c.run(
            {
                "task_name": "video.create",
                "template": "card",
                "fields": {"title": "<b>&"},
                "profile": "240p",
            }
        )
        assert final["status"] == "success", final
        c.delete_template("card")
        assert c.templates() == []
    missing = templates("show", "card")
    assert missing.returncode != 0 and "card" in missing.stderr


def test_create_file_prints_or_saves_the_output_file(dragon_server, tmp_path):
    done = cli(dragon_server, "create-file", "test.file", "text=by url")
    assert done.returncode == 0, done.stderr
    [answer] = lines(done.stdout)
    assert dragon_server.get(answer["url"]).body == b"by url"
    done = cli(
        dragon_server,
        "create-file",
        "test.file",
        "text=saved",
        'names:=["small", "large"]',
        "--name",
        "large",
        "--to",
        str(tmp_path),
    )
    [saved] = lines(done.stdout)
    assert saved["path"] == str(tmp_path / "large.txt") and saved["size"] == len("saved")
    failed = cli(dragon_server, "create-file", "test.file", "fail:=true")
    assert failed.returncode == 1
    assert lines(failed.stdout)[0]["error_code"] == "invalid_media"
    assert "ended in error (invalid_media): asked to fail" in failed.stderr


def test_login_keeps_a_checked_server_and_secret(dragon_server, tmp_path):
    config = tmp_path / "config" / "client.json"
    env = {"DRAGON_CONFIG": str(config), "DRAGON_URL": "", "DRAGON_SECRET": ""}

    def login(*args, secret_on_stdin=None):
        return subprocess.run(
            [sys.executable, "-m", "dragon", "login", *args],
            input=secret_on_stdin,
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=60,
        )

    refused = login("--server", dragon_server.url, "--secret", "NOT-IT")
    assert refused.returncode == 2 and "HTTP 401" in refused.stderr
    assert not config.exists()  # nothing kept from a refusal
    done = login("--server", dragon_server.url, secret_on_stdin=dragon_server.secret + "\n")
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout) == [{"url": dragon_server.url, "config": str(config)}]
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    assert dragon_server.secret not in done.stdout + done.stderr
    # From now on, with no server and no secret given, the commands and the SDK use it.
    [status] = lines(dragon("run", "hello", "name=logged in", env=env, check=False).stdout)
    assert status["result"] == "Hello logged in"
    code = (
        "import json, sys; from dragon.client import Client; "
        "print(json.dumps(Client().status(sys.argv[1])[0]))"
    )
    sdk = subprocess.run(
        [sys.executable, "-c", code, status["key"]],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    assert json.loads(sdk.stdout)["result"] == "Hello logged in"
