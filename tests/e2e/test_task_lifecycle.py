"""What a task leaves behind when it ends: no download, process or temp file keeps running."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.media import image_bytes


class DrippingOrigin:
    """``/slow.jpg`` sends one byte every 0.1 s forever and records when the client hangs
    up; ``/late-404`` answers 404 after 0.5 s (so the slow download is under way by then)."""

    def __init__(self) -> None:
        self.opened_at: float | None = None
        self.closed_at: float | None = None
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path == "/late-404":
                    time.sleep(0.5)
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                origin.opened_at = time.monotonic()
                self.send_response(200)
                self.send_header("Content-Length", str(10**9))
                self.end_headers()
                try:
                    while True:
                        self.wfile.write(b"\xff")
                        self.wfile.flush()
                        time.sleep(0.1)
                except OSError:
                    origin.closed_at = time.monotonic()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"{base}/slow.jpg"
        self.late_404 = f"{base}/late-404"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_a_failed_task_stops_its_other_downloads(dragon_server):
    slow = DrippingOrigin()
    try:
        urls = [slow.url, slow.late_404]
        [doc] = dragon_server.create([{"task_name": "image.strip", "urls": urls}])
        assert doc["status"] == "error" and doc["error_code"] == "download_failed"
        assert slow.opened_at is not None  # the slow download was under way
        ended = time.monotonic()
        deadline = ended + 10
        while slow.closed_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slow.closed_at is not None, "the slow download outlived its task"
        assert slow.closed_at - ended < 3
    finally:
        slow.httpd.shutdown()


def test_task_temp_folders_are_removed(dragon_server, origin):
    url = origin.add("lifecycle.jpg", image_bytes(), "image/jpeg")
    dragon_server.create([{"task_name": "image.thumb", "url": url, "width": 10}] * 2)
    tmp = dragon_server.data_dir / "tmp"
    deadline = time.monotonic() + 5
    while any(tmp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p.name for p in tmp.iterdir() if p.name != "batches"] == []
    assert not any((tmp / "batches").iterdir()) if (tmp / "batches").exists() else True


def process_counts(pid: int) -> tuple[int, int]:
    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
    return fds, threads


def test_fifty_bad_tasks_leave_fds_and_threads_at_baseline(make_server, origin):
    import os

    server = make_server()
    bad = {
        "zero.bin": b"",
        "random.bin": os.urandom(4096),
        "truncated.jpg": image_bytes(200, 200)[:300],
        "moovless.mp4": b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + os.urandom(2000),
    }
    urls = [origin.add(f"fdleak-{name}", data) for name, data in bad.items()]
    tasks = [
        {"task_name": name, "url": url}
        for url in urls
        for name in ("image.info", "video.info", "audio.info", "image.thumb")
    ]
    server.create(tasks[:8])  # warm-up: pools, connections and caches exist afterwards
    time.sleep(0.5)
    before = process_counts(server.proc.pid)
    docs = []
    for _ in range(3):
        docs += server.create(tasks)
    assert len(docs) >= 48
    assert all(d["status"] == "error" for d in docs)
    known = {"invalid_media", "unsupported_media", "image_too_large", "media_too_large"}
    assert {d["error_code"] for d in docs} <= known
    time.sleep(1.0)
    fds, threads = process_counts(server.proc.pid)
    assert fds <= before[0] + 2, (before, fds)
    assert threads <= before[1] + 2, (before, threads)


def test_a_timed_out_pool_job_does_not_hold_the_pool(make_server, origin):
    # The spin would hold its pool worker for 10 minutes; the next job of that pool has the
    # same 20 s: it succeeds only if the timed-out job was stopped, not waited for (20 s
    # leave a loaded box room to start a new worker).
    server = make_server(env={"DRAGON_TASK_TIMEOUT_SECONDS": "20", "DRAGON_CONCURRENCY": "1"})
    [doc] = server.create([{"task_name": "test.spin", "seconds": 600}])
    assert doc["status"] == "error" and doc["error_code"] == "timeout"
    [doc] = server.create([{"task_name": "test.spin", "seconds": 0.2}])
    assert doc["status"] == "success" and doc["result"]["loops"] > 0
    url = origin.add("after-spin.jpg", image_bytes(), "image/jpeg")
    [doc] = server.create([{"task_name": "image.thumb", "url": url, "width": 10}])
    assert doc["status"] == "success", doc
    server.stop()
