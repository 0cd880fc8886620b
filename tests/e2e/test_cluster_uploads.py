"""Resumable uploads on several nodes: the bytes go to S3 parts, any node takes the next PATCH.

Two real ``dragon serve`` nodes share a fresh PostgreSQL database and a moto bucket (the
cluster tests' set-up). tuspy starts an upload on one node and finishes it on the other;
S3's parts are at least 5 MiB, so the sizes below make one node store a full part and
leave the rest pending in the bucket, which the other node reads back into its next part.
What a task reads is checked by ``test.fetch`` (tests/plugins/fetch.py), which reports the
SHA-256 of what it was handed; what is left in the bucket is listed with moto's client.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading

import pytest
from tusclient import client as tus_client

from tests.e2e.test_cluster import another_node, first_node
from tests.support.postgres import postgres_bin

pytestmark = pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL is not installed")

MiB = 1024**2
TUS = {"Tus-Resumable": "1.0.0"}


def tus(server) -> tus_client.TusClient:
    return tus_client.TusClient(
        f"{server.url}/v2/uploads", headers={"Authorization": f"Secret {server.secret}"}
    )


def on(server, url: str) -> str:
    """The same upload's URL on another node (each node's public URL is its own here)."""
    return server.url + "/v2/uploads/" + url.rsplit("/", 1)[1]


def create_upload(server, length: int) -> str:
    r = server.request("POST", "/v2/uploads", headers={**TUS, "Upload-Length": str(length)})
    assert r.status == 201, r.body
    return r.headers["Location"]


def patch(server, url: str, offset: int, body: bytes):
    return server.request(
        "PATCH",
        "/v2/uploads/" + url.rsplit("/", 1)[1],
        raw=body,
        headers={
            **TUS,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        },
    )


def offset_of(server, url: str) -> int:
    r = server.request("HEAD", "/v2/uploads/" + url.rsplit("/", 1)[1], headers=TUS)
    assert r.status == 200, r.status
    return int(r.headers["Upload-Offset"])


def bucket_state(backends, node, upload_id: str) -> tuple[list[str], list[str]]:
    """The keys under the upload's prefix, and the multipart uploads still open there."""
    s3, bucket = backends.s3.client, node.env["DRAGON_S3_BUCKET"]
    prefix = f"uploads/{upload_id}/"
    objects = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    open_uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    return sorted(o["Key"] for o in objects), [u["Key"] for u in open_uploads]


def test_tuspy_starts_on_one_node_and_finishes_on_the_other(make_server, backends, tmp_path):
    a = first_node(make_server)
    b = another_node(make_server, a)
    # 6 MiB to A: one full 5 MiB part and 1 MiB pending in the bucket. The other 5 MiB to B:
    # B reads the pending MiB back, stores a second full part, then the last MiB as the
    # last part, and S3 joins the three.
    source = tmp_path / "noise.bin"
    source.write_bytes(os.urandom(11 * MiB))
    data = source.read_bytes()
    first = tus(a).uploader(str(source), chunk_size=6 * MiB)
    first.upload_chunk()
    assert offset_of(a, first.url) == offset_of(b, first.url) == 6 * MiB
    upload_id = first.url.rsplit("/", 1)[1]
    keys, open_uploads = bucket_state(backends, a, upload_id)
    assert len(keys) == 1 and keys[0].startswith(f"uploads/{upload_id}/pending-")
    assert open_uploads == [f"uploads/{upload_id}/data"]

    # tuspy resumes on B from the offset B answers.
    rest = tus(b).uploader(str(source), url=on(b, first.url), chunk_size=6 * MiB)
    assert rest.offset == 6 * MiB
    rest.upload()
    assert offset_of(a, first.url) == len(data)
    # The parts are joined into one object; nothing pending or open is left.
    assert bucket_state(backends, a, upload_id) == ([f"uploads/{upload_id}/data"], [])
    stored = backends.s3.client.get_object(
        Bucket=a.env["DRAGON_S3_BUCKET"], Key=f"uploads/{upload_id}/data"
    )["Body"].read()
    assert stored == data

    # A task on either node reads it from the bucket.
    for node in (a, b):
        got = node.run_task({"task_name": "test.fetch", "url": f"upload:{upload_id}"})
        assert got["status"] == "success", got
        assert got["result"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert got["result"]["size"] == len(data)
    # Terminating a finished upload deletes its object.
    assert b.request("DELETE", "/v2/uploads/" + upload_id, headers=TUS).status == 204
    assert bucket_state(backends, a, upload_id) == ([], [])


def test_termination_on_another_node_aborts_the_multipart_upload(make_server, backends):
    a = first_node(make_server)
    b = another_node(make_server, a)
    url = create_upload(a, 8 * MiB)
    upload_id = url.rsplit("/", 1)[1]
    assert patch(a, url, 0, os.urandom(6 * MiB)).headers["Upload-Offset"] == str(6 * MiB)
    keys, open_uploads = bucket_state(backends, a, upload_id)
    assert len(keys) == 1 and open_uploads == [f"uploads/{upload_id}/data"]

    deleted = b.request("DELETE", "/v2/uploads/" + upload_id, headers=TUS)
    assert deleted.status == 204, deleted.body
    assert bucket_state(backends, a, upload_id) == ([], [])
    assert a.request("HEAD", "/v2/uploads/" + upload_id, headers=TUS).status == 404
    assert patch(b, url, 6 * MiB, b"more").status == 404
    got = b.run_task({"task_name": "test.fetch", "url": f"upload:{upload_id}"})
    assert got["status"] == "error" and got["error_code"] == "unknown_upload", got
    # An empty upload is finished at its creation: an empty object, no multipart upload.
    empty = create_upload(a, 0)
    assert offset_of(b, empty) == 0
    empty_id = empty.rsplit("/", 1)[1]
    assert bucket_state(backends, a, empty_id) == ([f"uploads/{empty_id}/data"], [])


def test_a_patch_at_a_stale_offset_on_another_node_is_409(make_server, backends):
    a = first_node(make_server)
    b = another_node(make_server, a)
    data = os.urandom(3000)
    url = create_upload(a, len(data))
    assert patch(a, url, 0, data[:1000]).status == 204
    # B answers from the row A moved: the offset is shared, a stale one refused.
    stale = patch(b, url, 0, data[:1000])
    assert stale.status == 409, stale.body
    assert offset_of(b, url) == 1000
    assert patch(b, url, 1000, data[1000:2000]).headers["Upload-Offset"] == "2000"
    assert patch(a, url, 1000, data[1000:2000]).status == 409
    assert patch(a, url, 2000, data[2000:]).headers["Upload-Offset"] == "3000"
    got = a.run_task({"task_name": "test.fetch", "url": f"upload:{url.rsplit('/', 1)[1]}"})
    assert got["status"] == "success", got
    assert got["result"]["sha256"] == hashlib.sha256(data).hexdigest()


def raw_patch(node, upload_id: str, offset: int, body: bytes, gate: threading.Barrier) -> int:
    """PATCH ``body`` over a raw socket: all but the last MiB, then wait at ``gate`` for
    the other request to get as far, then the rest; the answer's status."""
    with socket.create_connection(("127.0.0.1", node.port), timeout=120) as sock:
        sock.sendall(
            (
                f"PATCH /v2/uploads/{upload_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Secret {node.secret}\r\nTus-Resumable: 1.0.0\r\n"
                f"Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        # A request refused mid-body is answered (and closed) before the rest went.
        with contextlib.suppress(OSError):
            sock.sendall(body[:-MiB])
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(timeout=120)
        with contextlib.suppress(OSError):
            sock.sendall(body[-MiB:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def test_two_nodes_writing_one_offset_at_once_leave_one_writers_bytes(make_server, backends):
    """Two PATCHes at offset 0 at once, one per node, with different bytes: one is stored
    (204), the other refused (409), and the finished upload is the stored one's bytes then
    the rest, whichever part each node wrote to S3 meanwhile."""
    a = first_node(make_server)
    b = another_node(make_server, a)
    bodies = {"a": os.urandom(7 * MiB), "b": os.urandom(7 * MiB)}
    rest = os.urandom(2 * MiB)
    url = create_upload(a, 9 * MiB)
    upload_id = url.rsplit("/", 1)[1]
    gate = threading.Barrier(2)
    statuses: dict[str, int] = {}

    def send(name: str, node) -> None:
        statuses[name] = raw_patch(node, upload_id, 0, bodies[name], gate)

    threads = [threading.Thread(target=send, args=(n, s)) for n, s in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sorted(statuses.values()) == [204, 409], statuses
    [winner] = [n for n, s in statuses.items() if s == 204]
    assert offset_of(b, url) == 7 * MiB
    assert patch(b, url, 7 * MiB, rest).headers["Upload-Offset"] == str(9 * MiB)
    stored = backends.s3.client.get_object(
        Bucket=a.env["DRAGON_S3_BUCKET"], Key=f"uploads/{upload_id}/data"
    )["Body"].read()
    assert stored == bodies[winner] + rest
    assert bucket_state(backends, a, upload_id) == ([f"uploads/{upload_id}/data"], [])
