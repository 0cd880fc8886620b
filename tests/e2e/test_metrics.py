"""GET /metrics after real tasks, parsed with prometheus_client's own parser."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.media import image_bytes


@pytest.fixture(scope="module")
def server(make_server):
    return make_server(env={"DRAGON_WEBHOOK_FIRST_DELAY_SECONDS": "0.2"})


def scrape(server) -> dict[str, list]:
    r = server.request("GET", "/metrics", auth=False)
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    families = {}
    for family in text_string_to_metric_families(r.body.decode()):
        families[family.name] = family.samples
    return families


def value(families, name: str, **labels) -> float:
    return sum(
        s.value
        for samples in families.values()
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


class Receiver:
    """A callback receiver that answers 200."""

    def __init__(self) -> None:
        self.calls = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/cb"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_metrics_count_real_tasks_without_secrets(server, origin):
    image = image_bytes(80, 60, fmt="PNG")
    origin.add("metrics/source.png", image, "image/png")
    receiver = Receiver()
    try:
        done = server.create(
            [
                {"task_name": "hello", "name": "m1", "url_callback": receiver.url},
                {"task_name": "test.fetch", "url": origin.url + "/metrics/source.png"},
                {"task_name": "test.file", "fail": True},
                {"task_name": "no.such.task"},
            ]
        )
        assert [d["status"] for d in done] == ["success", "success", "error", "error"]
        deadline = time.monotonic() + 20
        while receiver.calls < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        key = done[0]["key"]
        server.request("GET", f"/v2/status?tasks={key}&secret={server.secret}", auth=False)
        server.request("GET", f"/storage/{key}/nothing-here", auth=False)
        server.request("GET", f"/no/such/{key}", auth=False)
        time.sleep(0.3)  # the callback's outcome is recorded after the receiver answers
        families = scrape(server)
    finally:
        receiver.httpd.shutdown()

    assert value(families, "dragon_tasks_total", task_name="hello", status="success") >= 1
    assert value(families, "dragon_tasks_total", task_name="test.fetch", status="success") >= 1
    assert value(families, "dragon_tasks_total", task_name="test.file", status="error") >= 1
    # An unknown name is user input: it is counted as "other", never as a label of its own.
    assert value(families, "dragon_tasks_total", task_name="other", status="error") >= 1
    assert value(families, "dragon_task_duration_seconds_count", task_name="hello") >= 1
    assert value(families, "dragon_fetched_bytes_total") >= len(image)
    assert value(families, "dragon_callback_deliveries_total", outcome="delivered") >= 1
    for lane in ("light", "interactive", "batch"):
        assert any(s.labels == {"lane": lane} for s in families["dragon_queue_depth"])
        assert any(s.labels == {"lane": lane} for s in families["dragon_tasks_running"])
    assert "dragon_stream_subscribers" in families
    assert (
        value(families, "dragon_http_requests_total", route="/v2/create", method="POST", code="200")
        >= 1
    )
    assert value(families, "dragon_http_requests_total", route="/v2/status", code="200") >= 1
    assert value(families, "dragon_http_request_duration_seconds_count", route="/v2/create") >= 1
    # Routes are templates: a task key or file name never becomes a label.
    routes = {
        s.labels.get("route") for s in families["dragon_http_requests"] if "route" in s.labels
    }
    assert "/storage/{location}" in routes
    assert value(families, "dragon_http_requests_total", route="other", code="404") >= 1
    assert not any(key in (r or "") for r in routes)

    text = server.request("GET", "/metrics", auth=False).body.decode()
    for secret in (server.secret, server.api_key, server.account["webhook_secret"]):
        assert secret not in text
    assert "account" not in text
    assert "no.such.task" not in text
    assert key not in text
