"""persistent/volatile on S3, against moto in server mode (the real S3 protocol, locally)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

from tests.support.server import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def moto():
    port = free_port()
    moto_server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(moto_server), "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **CREDENTIALS},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    client = boto3.client(
        "s3",
        endpoint_url=url,
        **{
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
            "region_name": "us-east-1",
        },
    )
    client.create_bucket(Bucket="dragon-test")
    yield url, client
    proc.terminate()
    proc.wait()


def test_outputs_go_to_the_bucket_and_deletes_remove_them(make_server, moto):
    url, client = moto
    server = make_server(
        env={**CREDENTIALS, "DRAGON_S3_BUCKET": "dragon-test", "DRAGON_S3_ENDPOINT_URL": url}
    )
    r = server.request(
        "POST",
        "/v2/create",
        {
            "tasks": [
                {"task_name": "test.file", "text": "in the bucket"},
                {"task_name": "test.file", "text": "volatile", "task_store": {"type": "volatile"}},
            ],
            "block": True,
        },
    )
    persistent, volatile = r.json()
    out = persistent["result"]["output"]
    # The bucket has no policy (private): the URL is the server's, redirecting to S3.
    assert out.startswith(f"{server.url}/storage/{persistent['key']}/dragon-test.file-")
    location = server.storage_name(out)
    assert server.get(out).body == b"in the bucket"
    obj = client.get_object(Bucket="dragon-test", Key=location)
    assert obj["Body"].read() == b"in the bucket"
    assert obj["ContentType"] == "text/plain"
    listing = server.request("GET", "/v2/storage/files/?recursive=true").json()
    assert [f["name"] for f in listing["files"]] == [location]
    assert listing["usage"] == len("in the bucket")
    vloc = server.storage_name(volatile["result"]["output"])
    assert client.get_object(Bucket="dragon-test", Key=vloc)["Body"].read() == b"volatile"
    deleted = server.request("DELETE", f"/v2/storage/files/{location}").json()
    assert deleted["deleted"] == [location]
    with pytest.raises(client.exceptions.NoSuchKey):
        client.get_object(Bucket="dragon-test", Key=location)
    assert server.get(out).status == 404


def test_s3_failure_ends_storage_error_and_leaves_no_temp_files(make_server):
    class Failing(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # so botocore's Expect: 100-continue is answered

        def log_message(self, *a):
            pass

        def do_PUT(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b"<Error><Code>InternalError</Code><Message>boom</Message></Error>"
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        server = make_server(
            env={
                **CREDENTIALS,
                "DRAGON_S3_BUCKET": "b",
                "DRAGON_S3_ENDPOINT_URL": f"http://127.0.0.1:{httpd.server_address[1]}",
            }
        )
        [doc] = server.create([{"task_name": "test.file", "text": "x"}])
        assert doc["status"] == "error"
        assert doc["error_code"] == "storage_error"
        assert "output" in doc["error"]
        tmp = server.data_dir / "tmp"
        deadline = time.monotonic() + 10  # the folder goes right after the status is published
        while list(tmp.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(tmp.iterdir()) == []
        listing = server.request("GET", "/v2/storage/files/?recursive=true").json()
        assert listing == {"files": [], "directories": [], "usage": 0}
    finally:
        httpd.shutdown()
