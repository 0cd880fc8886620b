"""Stores and the storage API (docs/api.md), per account, end to end."""

from __future__ import annotations

import time
import urllib.request
import uuid

import pytest


@pytest.fixture(scope="module")
def server(make_server):
    # The local store: files served by the node itself at /storage/ (S3 has its own tests).
    return make_server(backend="sqlite")


def make_file(server, text="hello file", store=None, auth=None):
    task = {"task_name": "test.file", "text": text}
    if store:
        task["task_store"] = store
    headers = auth or {}
    r = server.request("POST", "/v2/create", {"tasks": [task], "block": True}, headers=headers)
    doc = r.json()[0]
    assert doc["status"] == "success", doc
    return doc


def listing(server, path="", auth=None, **query):
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    r = server.request(
        "GET", f"/v2/storage/files/{path}" + (f"?{qs}" if qs else ""), headers=auth or {}
    )
    assert r.status == 200, r.body
    return r.json()


def test_output_is_served_with_range_and_listed(server):
    doc = make_file(server, "0123456789")
    url = doc["result"]["output"]
    key = doc["key"]
    assert url.startswith(f"{server.url}/storage/{key}/dragon-test.file-")
    got = server.get(url)
    assert got.status == 200 and got.body == b"0123456789"
    assert got.headers["Content-Type"].startswith("text/plain")
    req = urllib.request.Request(url, headers={"Range": "bytes=2-4"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 206 and r.read() == b"234"
    root = listing(server)
    assert f"{key}/" in root["directories"]
    assert root["files"] == []
    inside = listing(server, f"{key}/")
    [entry] = inside["files"]
    assert entry["name"] == server.storage_name(url)
    assert entry["size"] == 10
    assert entry["last_modified"].endswith("Z")
    assert any(f["name"] == entry["name"] for f in listing(server, recursive="true")["files"])


def test_usage_tracks_stores_and_deletes(server):
    before = listing(server)["usage"]
    doc = make_file(server, "x" * 1000)
    assert listing(server)["usage"] == before + 1000
    name = server.storage_name(doc["result"]["output"])
    dry = server.request("DELETE", f"/v2/storage/files/{name}", {"dry_run": True}).json()
    assert dry["deleted"] == [name] and dry["freed"] == 1000
    assert server.get(doc["result"]["output"]).status == 200
    done = server.request("DELETE", f"/v2/storage/files/{name}").json()
    assert done == {"deleted": [name], "freed": 1000, "usage": before}
    assert server.get(doc["result"]["output"]).status == 404


def test_delete_by_directory_urls_and_dates(server):
    a = make_file(server, "aaa")
    b = make_file(server, "bbb")
    c = make_file(server, "ccc")
    r = server.request("DELETE", f"/v2/storage/files/{a['key']}/").json()
    assert len(r["deleted"]) == 1 and r["deleted"][0].startswith(a["key"])
    r = server.request(
        "DELETE", "/v2/storage/files/", {"urls": [b["result"]["output"] + "?v=1"], "dry_run": False}
    ).json()
    assert len(r["deleted"]) == 1 and r["deleted"][0].startswith(b["key"])
    r = server.request("DELETE", "/v2/storage/files/", {"to": "2000-01-01T00:00:00"}).json()
    assert r["deleted"] == []
    r = server.request("DELETE", "/v2/storage/files/", {"max_age": 1, "dry_run": True}).json()
    assert r["deleted"] == []
    r = server.request("DELETE", "/v2/storage/files/", {"from": "2000-01-01"}).json()
    assert any(n.startswith(c["key"]) for n in r["deleted"])
    assert listing(server)["usage"] == 0
    assert server.request("DELETE", "/v2/storage/files/", {"from": "nope"}).status == 400


def test_volatile_files_are_not_listed_nor_counted(server):
    before = listing(server)["usage"]
    doc = make_file(server, "volatile!", store={"type": "volatile"})
    assert server.get(doc["result"]["output"]).body == b"volatile!"
    assert listing(server)["usage"] == before
    assert f"{doc['key']}/" not in listing(server)["directories"]


def test_expiration_get_and_set(server):
    assert server.request("GET", "/v2/storage/expiration").json() == 0
    assert server.request("POST", "/v2/storage/expiration", {"days": 30}).json() == 30
    assert server.request("GET", "/v2/storage/expiration").json() == 30
    assert server.request("POST", "/v2/storage/expiration", {"days": -1}).status == 400
    assert server.request("POST", "/v2/storage/expiration", {"days": 1e20}).status == 400
    assert server.request("POST", "/v2/storage/expiration", {"days": 0}).json() == 0


def test_accounts_cannot_see_or_delete_each_others_files(server):
    doc = make_file(server, "mine")
    other = server.create_account("storage-other")
    auth = {"Authorization": f"Secret {other['secret']}"}
    assert listing(server, auth=auth) == {"files": [], "directories": [], "usage": 0}
    assert server.request("GET", f"/v2/storage/files/{doc['key']}/", headers=auth).status == 404
    r = server.request(
        "DELETE", "/v2/storage/files/", {"urls": [doc["result"]["output"]]}, headers=auth
    )
    assert r.json()["deleted"] == []
    assert server.request("DELETE", "/v2/storage/files/", headers=auth).json()["deleted"] == []
    assert server.get(doc["result"]["output"]).status == 200
    assert server.request("GET", "/v2/storage/files/", auth=False).status == 401


def test_store_parameters_are_checked_at_create(server):
    docs = server.create(
        [
            {"task_name": "test.file", "task_store": {"type": "youtube"}},
            {"task_name": "test.file", "task_store": {"type": "s3_signed"}},
            {"task_name": "test.file", "task_store": {"type": "s3_signed", "url": "file:///x"}},
            {"task_name": "test.file", "task_store": "persistent"},
        ]
    )
    assert "access_token" in docs[0]["error"]["parameters"]["task_store"][0]
    assert "url" in docs[1]["error"]["parameters"]["task_store"][0]
    assert "http" in docs[2]["error"]["parameters"]["task_store"][0]
    assert "task_store" in docs[3]["error"]["parameters"]


def test_s3_signed_puts_to_the_url(server, origin):
    received = {}
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_PUT(self):
            length = int(self.headers["Content-Length"])
            received[self.path] = (self.rfile.read(length), self.headers["Content-Type"])
            code = 500 if "fail" in self.path else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        doc = make_file(
            server,
            "signed",
            store={"type": "s3_signed", "url": f"{base}/bucket/obj?X-Amz-Signature=abc"},
        )
        assert doc["result"]["output"] == f"{base}/bucket/obj"
        assert received["/bucket/obj?X-Amz-Signature=abc"] == (b"signed", "text/plain")
        r = server.request(
            "POST",
            "/v2/create",
            {
                "tasks": [
                    {
                        "task_name": "test.file",
                        "task_store": {"type": "s3_signed", "url": f"{base}/fail?sig=1"},
                    }
                ],
                "block": True,
            },
        )
        doc = r.json()[0]
        assert doc["status"] == "error" and doc["error_code"] == "storage_error"
        assert "500" in doc["error"]
    finally:
        httpd.shutdown()


def test_tasks_of_one_request_download_a_url_once(dragon_server, origin):
    path = f"/shared-once-{uuid.uuid4().hex}.bin"  # one per backend: the origin is shared
    url = origin.add(path, b"\x89PNG\r\n\x1a\n" + b"0" * 5000)
    docs = dragon_server.create(
        [{"task_name": "test.fetch", "url": url}] * 3 + [{"task_name": "hello", "name": "x"}]
    )
    assert [d["status"] for d in docs] == ["success"] * 4
    assert {d["result"]["sha256"] for d in docs[:3]} == {docs[0]["result"]["sha256"]}
    assert docs[0]["result"]["mime"] == "image/png"
    assert origin.hits.count(path) == 1
    # A later request downloads again (nothing is cached across requests).
    dragon_server.create([{"task_name": "test.fetch", "url": url}])
    assert origin.hits.count(path) == 2


def test_a_task_cannot_download_more_than_its_budget(make_server, origin):
    server = make_server(env={"DRAGON_MAX_TASK_DOWNLOAD_BYTES": "25000"})
    urls = [origin.add(f"budget-{i}.png", b"\x89PNG\r\n\x1a\n" + bytes(10_000)) for i in range(3)]
    [doc] = server.create([{"task_name": "image.strip", "urls": urls}])
    assert doc["status"] == "error" and doc["error_code"] == "download_too_large"
    [doc] = server.create([{"task_name": "test.fetch", "url": urls[0]}])
    assert doc["status"] == "success"
    server.stop()


def test_ended_tasks_are_deleted_after_retention(make_server):
    server = make_server(
        env={"DRAGON_TASK_RETENTION_DAYS": str(1 / 86400), "DRAGON_SWEEP_INTERVAL_SECONDS": "0.3"}
    )
    ended = server.create([{"task_name": "hello", "name": "old"}])[0]
    assert ended["status"] == "success"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        doc = server.request("GET", f"/v2/status?tasks={ended['key']}").json()[0]
        if doc.get("error_code") == "unknown_task":
            break
        time.sleep(0.2)
    assert doc["error_code"] == "unknown_task", doc
    running = server.create([{"task_name": "test.sleep", "seconds": 3}], block=False)[0]
    time.sleep(2)  # past retention, but not ended: kept
    doc = server.request("GET", f"/v2/status?tasks={running['key']}").json()[0]
    assert doc["status"] in ("queued", "executing"), doc


def test_a_polled_task_is_unknown_once_retention_deletes_it(make_server):
    # Polls of an ended task are answered from cached documents after the first two:
    # the deletion must still show at once.
    server = make_server(
        env={"DRAGON_TASK_RETENTION_DAYS": str(3 / 86400), "DRAGON_SWEEP_INTERVAL_SECONDS": "0.3"}
    )
    ended = server.create([{"task_name": "hello", "name": "polled"}])[0]
    polls, deadline = 0, time.monotonic() + 30
    while time.monotonic() < deadline:
        doc = server.request("GET", f"/v2/status?tasks={ended['key']}").json()[0]
        if doc.get("error_code") == "unknown_task":
            break
        assert doc == ended
        polls += 1
        time.sleep(0.05)
    assert doc["error_code"] == "unknown_task", doc
    assert polls >= 10
