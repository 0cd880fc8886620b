"""What a task leaves behind when it ends: no download, process or temp file keeps running."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class DrippingOrigin:
    """Sends one byte every 0.1 s forever; records when the client hangs up."""

    def __init__(self) -> None:
        self.closed_at: float | None = None
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
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
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/slow.jpg"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_a_failed_task_stops_its_other_downloads(dragon_server, origin):
    slow = DrippingOrigin()
    try:
        missing = origin.url + "/missing.jpg"
        [doc] = dragon_server.create([{"task_name": "image.strip", "urls": [slow.url, missing]}])
        assert doc["status"] == "error" and doc["error_code"] == "download_failed"
        ended = time.monotonic()
        deadline = ended + 10
        while slow.closed_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slow.closed_at is not None, "the slow download outlived its task"
        assert slow.closed_at - ended < 3
    finally:
        slow.httpd.shutdown()


def test_task_temp_folders_are_removed(dragon_server, origin):
    from tests.media import image_bytes

    url = origin.add("lifecycle.jpg", image_bytes(), "image/jpeg")
    dragon_server.create([{"task_name": "image.thumb", "url": url, "width": 10}] * 2)
    tmp = dragon_server.data_dir / "tmp"
    deadline = time.monotonic() + 5
    while any(tmp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p.name for p in tmp.iterdir() if p.name != "batches"] == []
    assert not any((tmp / "batches").iterdir()) if (tmp / "batches").exists() else True
