"""Crash, restart and shutdown: every accepted task ends, none twice forever (docs/guarantees.md).

These start their own servers and kill them for real (SIGKILL, SIGTERM).
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path


def wait_for(predicate, timeout=30, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached")


def statuses(server, keys):
    return server.request("POST", "/v2/status", {"tasks": keys}).json()


def sleepers(seconds: float) -> int:
    out = subprocess.run(["pgrep", "-f", f"sleep {seconds}"], capture_output=True, text=True)
    return len(out.stdout.split())


def test_kill_9_with_queued_and_executing_tasks_then_restart(make_server):
    server = make_server(env={"DRAGON_CONCURRENCY": "2"}, backend="sqlite")  # reads its file
    tasks = [{"task_name": "test.sleep", "seconds": 0.31}] * 22
    keys = [d["key"] for d in server.create(tasks, block=False)]
    wait_for(lambda: sum(d["status"] == "executing" for d in statuses(server, keys)) == 2)
    server.stop(9)
    db = sqlite3.connect(server.data_dir / "dragon.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 22
    db.close()
    server.start()
    final = wait_for(
        lambda: (s := statuses(server, keys)) and all(d["status"] == "success" for d in s) and s,
        timeout=60,
    )
    assert len(final) == 22
    server.stop()


def test_tools_die_with_a_killed_server(make_server):
    server = make_server()
    [doc] = server.create([{"task_name": "test.sleep", "seconds": 37.25}], block=False)
    wait_for(lambda: sleepers(37.25) == 1)
    server.stop(9)
    wait_for(lambda: sleepers(37.25) == 0, timeout=5)
    server.start()
    # Requeued and running again (attempt 2): its tool starts anew.
    wait_for(lambda: statuses(server, [doc["key"]])[0]["status"] == "executing")
    wait_for(lambda: sleepers(37.25) == 1)
    server.stop(9)


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, their children...)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":  # a zombie is already gone
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (neither gone nor a zombie)."""
    return {pid for pid in pids if state(pid) not in (None, "Z")}


def state(pid: int) -> str | None:
    """The process's state letter (``/proc/PID/stat``), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_pool_workers_die_with_a_killed_server(make_server):
    # Pool workers are the fork server's children, not the server's: without their own
    # watch they would wait on their job queue forever, each holding its memory.
    server = make_server()
    [doc] = server.create([{"task_name": "test.spin", "seconds": 30}], block=False)
    wait_for(lambda: statuses(server, [doc["key"]])[0]["status"] == "executing")
    pool = wait_for(lambda: (d := descendants(server.proc.pid)) and len(d) >= 2 and d)
    server.stop(9)
    wait_for(lambda: not alive(pool), timeout=10)


def test_a_task_that_keeps_killing_the_server_ends_interrupted(make_server):
    server = make_server(env={"DRAGON_MAX_ATTEMPTS": "2"})
    [doc] = server.create([{"task_name": "test.sleep", "seconds": 41.5}], block=False)
    for _ in range(2):
        wait_for(lambda: statuses(server, [doc["key"]])[0]["status"] == "executing")
        wait_for(lambda: sleepers(41.5) == 1)
        server.stop(9)
        server.start()
    [status] = statuses(server, [doc["key"]])
    assert status["status"] == "error"
    assert status["error_code"] == "interrupted"
    server.stop()


def test_acknowledged_create_survives_sigkill(make_server):
    server = make_server()
    [doc] = server.create([{"task_name": "hello", "name": "durable"}], block=False)
    server.stop(9)
    server.start()
    [status] = wait_for(
        lambda: (s := statuses(server, [doc["key"]])) and s[0]["status"] == "success" and s
    )
    assert status["result"] == "Hello durable"
    server.stop()


def test_sigterm_refuses_creates_then_resumes_everything_next_boot(make_server):
    server = make_server(env={"DRAGON_CONCURRENCY": "2", "DRAGON_SHUTDOWN_GRACE_SECONDS": "0.8"})
    keys = [
        d["key"]
        for d in server.create([{"task_name": "test.sleep", "seconds": 2.53}] * 7, block=False)
    ]
    wait_for(lambda: sum(d["status"] == "executing" for d in statuses(server, keys)) == 2)
    server.proc.send_signal(15)
    time.sleep(0.3)
    r = server.request("POST", "/v2/create", {"tasks": [{"task_name": "hello", "name": "x"}]})
    assert r.status == 503
    assert r.headers["Retry-After"]
    # Status still answers during the grace period.
    assert server.request("POST", "/v2/status", {"tasks": keys}).status == 200
    assert server.proc.wait(20) == 0
    # the killed tools are reaped just after the server exits; a duration no other test uses
    wait_for(lambda: sleepers(2.53) == 0, timeout=5)
    server.start()
    wait_for(lambda: all(d["status"] == "success" for d in statuses(server, keys)), timeout=60)
    server.stop()
