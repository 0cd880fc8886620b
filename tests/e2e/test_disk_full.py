"""A full data disk (issue 10, item 2), on a small tmpfs mounted by the test.

The server keeps ``DRAGON_MIN_FREE_BYTES`` free: tools' outputs are capped to leave it, a
task that runs out ends ``disk_full``, creates get 503 with Retry-After while the disk is
below it, storage deletes still work, ``/healthz`` says so, and a task's end that SQLite
cannot write is retried until space is back (so ``block`` returns), never dropped.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support import media
from tests.support.server import Server

MiB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path):
    """A 40 MiB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with a filler file; return it (delete it to undo)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (MiB, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    assert free_bytes(disk) == 0
    return filler


def wait_status(server: Server, key: str, wanted: tuple[str, ...], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = server.request("GET", f"/v2/status?tasks={key}").json()[0]
        if doc["status"] in wanted:
            return doc
        time.sleep(0.05)
    raise AssertionError(f"{key} never reached {wanted}: {doc}")


def test_a_tool_output_stops_at_the_reserve_and_ends_disk_full(make_server, small_disk, origin):
    src = small_disk.parent / "long.mp3"  # 10 minutes: 14 MB as 192 kbit/s MP3
    media.audio(src, duration=600, codec=("-c:a", "libmp3lame", "-b:a", "32k"))
    url = origin.add_file("long-for-disk.mp3", src, "audio/mpeg")
    reserve = 28 * MiB
    server = make_server(env={"DRAGON_MIN_FREE_BYTES": str(reserve)}, data_dir=small_disk / "d")
    try:
        room = free_bytes(small_disk) - reserve
        assert 4 * MiB < room < 14 * MiB, room
        doc = server.run_task(
            {"task_name": "audio.convert", "url": url, "codec": "mp3", "force": True}
        )
        assert doc["status"] == "error", doc
        assert doc["error_code"] == "disk_full"
        assert "disk space" in doc["error"]
        # The tool stopped at the reserve: only the database and the log wrote into it.
        assert free_bytes(small_disk) >= reserve - MiB
    finally:
        server.stop()


def test_a_full_disk_refuses_creates_keeps_deletes_and_recovers(make_server, small_disk):
    server = make_server(
        env={"DRAGON_MIN_FREE_BYTES": str(4 * MiB), "DRAGON_LIGHT_CONCURRENCY": "2"},
        data_dir=small_disk / "d",
    )
    filler = None
    try:
        stored = server.run_task({"task_name": "test.write", "size": 2 * MiB})
        assert stored["status"] == "success", stored
        [victim] = server.create([{"task_name": "test.write", "seconds": 2}], block=False)
        wait_status(server, victim["key"], ("executing",))

        filler = fill(small_disk)  # the disk fills up under a running task
        health = server.request("GET", "/healthz", auth=False)
        assert health.status == 503, health.body
        assert any("disk" in p for p in health.json()["problems"])
        r = server.request("POST", "/v2/create", {"tasks": [{"task_name": "hello", "name": "x"}]})
        assert r.status == 503, r.body
        assert int(r.headers["Retry-After"]) > 0
        assert "disk" in r.json()["errors"][0]["description"], r.body

        answers: list = []
        waiter = threading.Thread(
            target=lambda: answers.append(
                server.request("POST", "/v2/status", {"tasks": [victim["key"]], "block": True})
            )
        )
        waiter.start()
        time.sleep(3)  # the victim writes into the full disk, then tries to record its end

        # A user can still free space: deleting a stored file works on a full disk.
        [file] = server.request("GET", f"/v2/storage/files/{stored['key']}/").json()["files"]
        r = server.request("DELETE", f"/v2/storage/files/{file['name']}")
        assert r.status == 200, r.body
        assert r.json()["freed"] == 2 * MiB

        filler.unlink()
        filler = None
        waiter.join(60)
        assert not waiter.is_alive(), "block never returned once space was back"
        [doc] = answers[0].json()
        assert doc["status"] == "error", doc
        assert doc["error_code"] == "disk_full"
        assert server.request("GET", "/healthz", auth=False).status == 200
        assert server.create([{"task_name": "hello", "name": "back"}])[0]["status"] == "success"
    finally:
        if filler is not None:
            filler.unlink()
        server.stop()
        print(server.log()[-3000:])
