"""Resumable uploads (tus 1.0.0 at /v2/uploads) through ``dragon serve``, with the real
``tuspy`` client, and uploads as task inputs (``upload:ID`` or the upload's own URL).

The bytes a task reads are checked by ``test.fetch`` (tests/plugins/fetch.py), which
reports the SHA-256 of what it was handed; a cut connection is a raw socket that sends half
of a PATCH's body and closes; a restart is the same data folder and port served again.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
from pathlib import Path

import pytest
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

from tests.support import media

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = 256 * 1024


def tus(server, **headers) -> tus_client.TusClient:
    return tus_client.TusClient(
        f"{server.url}/v2/uploads", headers={"Authorization": f"Secret {server.secret}", **headers}
    )


def upload_file(server, path: Path, **options) -> str:
    """Upload ``path`` with tuspy in CHUNK pieces; the upload's URL."""
    uploader = tus(server).uploader(str(path), chunk_size=CHUNK, **options)
    uploader.upload()
    return uploader.url


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetched(server, url: str) -> dict:
    """What ``test.fetch`` read from ``url``: its size, type and SHA-256, or its error."""
    return server.run_task({"task_name": "test.fetch", "url": url})


def create_upload(server, length: int, *, secret: str | None = None, **headers):
    auth = {"Authorization": f"Secret {secret or server.secret}"}
    return server.request(
        "POST", "/v2/uploads", headers={**TUS, **auth, "Upload-Length": str(length), **headers}
    )


def patch(server, url: str, offset: int, body: bytes, **headers):
    return server.request(
        "PATCH",
        url.removeprefix(server.url),
        raw=body,
        headers={
            **TUS,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            **headers,
        },
    )


def offset_of(server, url: str, **headers) -> int:
    r = server.request("HEAD", url.removeprefix(server.url), headers={**TUS, **headers})
    assert r.status == 200, r.status
    return int(r.headers["Upload-Offset"])


@pytest.fixture(scope="module")
def video_file(tmp_path_factory) -> Path:
    return media.video(tmp_path_factory.mktemp("src") / "clip.mp4", duration=2.0)


def test_tuspy_uploads_feed_video_convert_and_image_thumb(dragon_server, video_file, tmp_path):
    url = upload_file(dragon_server, video_file, metadata={"filename": "clip.mp4"})
    assert url.startswith(f"{dragon_server.url}/v2/uploads/")
    upload_id = url.rsplit("/", 1)[1]
    head = dragon_server.request("HEAD", f"/v2/uploads/{upload_id}", headers=TUS)
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"]
    assert head.headers["Upload-Length"] == str(video_file.stat().st_size)
    assert base64.b64decode(head.headers["Upload-Metadata"].split(" ")[1]) == b"clip.mp4"
    assert "Upload-Expires" not in head.headers  # finished: no longer expiring as unfinished

    got = fetched(dragon_server, f"upload:{upload_id}")
    assert got["status"] == "success", got
    assert got["result"]["sha256"] == sha256(video_file)
    assert got["result"]["mime"] == "video/mp4"

    converted = dragon_server.run_task(
        {"task_name": "video.convert", "url": f"upload:{upload_id}", "width": 160}
    )
    assert converted["status"] == "success", converted
    assert converted["result"]["width"] == 160
    out = tmp_path / "converted.mp4"
    out.write_bytes(dragon_server.get(converted["result"]["output"]).body)
    video = [s for s in media.ffprobe(out)["streams"] if s["codec_type"] == "video"]
    assert video[0]["width"] == 160

    picture = tmp_path / "picture.png"
    picture.write_bytes(media.image_bytes(200, 100, fmt="PNG"))
    image_url = upload_file(dragon_server, picture, upload_checksum=True)
    thumb = dragon_server.run_task(
        {"task_name": "image.thumb", "url": image_url, "width": 50, "height": 25}
    )
    assert thumb["status"] == "success", thumb
    assert dragon_server.get(thumb["result"]["output"]).status == 200


def test_a_cut_connection_and_a_restart_resume_from_the_stored_offset(make_server, tmp_path):
    server = make_server()
    source = tmp_path / "noise.bin"
    source.write_bytes(os.urandom(3 * CHUNK + 1234))
    data = source.read_bytes()
    created = create_upload(server, len(data))
    assert created.status == 201, created.body
    url = created.headers["Location"]
    assert patch(server, url, 0, data[:CHUNK]).headers["Upload-Offset"] == str(CHUNK)

    # Half of the next PATCH's body, then the connection drops: what arrived is kept.
    sent = CHUNK // 2
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            (
                f"PATCH {url.removeprefix(server.url)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Secret {server.secret}\r\nTus-Resumable: 1.0.0\r\n"
                f"Upload-Offset: {CHUNK}\r\nContent-Type: application/offset+octet-stream\r\n"
                f"Content-Length: {CHUNK}\r\n\r\n"
            ).encode()
            + data[CHUNK : CHUNK + sent]
        )
        time.sleep(0.2)  # let the bytes arrive before the close
    assert offset_of(server, url) == CHUNK + sent

    server.stop()
    server.start()
    assert offset_of(server, url) == CHUNK + sent
    # tuspy resumes from the offset the server answers (HEAD), not from its own count.
    uploader = tus(server).uploader(str(source), url=url, chunk_size=CHUNK)
    assert uploader.offset == CHUNK + sent
    uploader.upload()
    got = fetched(server, url)
    assert got["status"] == "success", got
    assert got["result"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_long_body_cut_past_its_checkpoints_keeps_all_that_arrived(dragon_server):
    """One PATCH much longer than CHECKPOINT_BYTES (16 MiB) moves the stored offset while
    it arrives, the flushes running as the body goes on; cut off past two of those
    checkpoints, the upload keeps every byte that arrived, not only those up to the last
    checkpoint, and the rest completes it."""
    server = dragon_server
    data = os.urandom(48 * 1024**2)
    sent = 40 * 1024**2 + 12345
    created = create_upload(server, len(data))
    assert created.status == 201, created.body
    url = created.headers["Location"]
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            (
                f"PATCH {url.removeprefix(server.url)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Secret {server.secret}\r\nTus-Resumable: 1.0.0\r\n"
                f"Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            ).encode()
            + data[:sent]
        )
        time.sleep(0.2)  # let the bytes arrive before the close
    # HEAD waits a few seconds for the cut request to store what it got; on a loaded box
    # that may take longer, so ask again until the offset says all of it (or a minute passes).
    deadline = time.monotonic() + 60
    while (stored := offset_of(server, url)) != sent and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stored == sent
    assert patch(server, url, sent, data[sent:]).headers["Upload-Offset"] == str(len(data))
    got = fetched(server, url)
    assert got["status"] == "success", got
    assert got["result"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_checksum_mismatch_is_refused_with_460_and_nothing_stored(dragon_server):
    data = os.urandom(1000)
    url = create_upload(dragon_server, len(data)).headers["Location"]
    wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    refused = patch(dragon_server, url, 0, data, **{"Upload-Checksum": f"sha1 {wrong}"})
    assert refused.status == 460, refused.body
    assert offset_of(dragon_server, url) == 0
    right = base64.b64encode(hashlib.sha1(data).digest()).decode()
    stored = patch(dragon_server, url, 0, data, **{"Upload-Checksum": f"sha1 {right}"})
    assert stored.status == 204 and stored.headers["Upload-Offset"] == "1000"
    unknown = create_upload(dragon_server, 10).headers["Location"]
    assert (
        patch(dragon_server, unknown, 0, b"x" * 10, **{"Upload-Checksum": "crc32 AAAA"}).status
        == 400
    )


def test_tuspy_sees_a_checksum_mismatch_refused(dragon_server, tmp_path):
    """tuspy's Upload-Checksum of a body changed on the way (the digest of other bytes)."""
    source = tmp_path / "a.bin"
    source.write_bytes(os.urandom(5000))
    uploader = tus(dragon_server).uploader(str(source), chunk_size=CHUNK, upload_checksum=True)
    # The private name tuspy keeps its algorithm under: what it hashes is not what it sends.
    uploader._BaseUploader__checksum_algorithm = lambda chunk: hashlib.sha1(chunk + b"!")
    with pytest.raises(TusCommunicationError) as refused:
        uploader.upload()
    assert refused.value.status_code == 460
    assert offset_of(dragon_server, uploader.url) == 0


def test_protocol_answers_cors_and_limits(make_server):
    server = make_server(
        env={"DRAGON_MAX_UPLOAD_BYTES": "1000", "DRAGON_MAX_PENDING_UPLOAD_BYTES": "1500"}
    )
    options = server.request(
        "OPTIONS", "/v2/uploads", auth=False, headers={"Origin": "https://app.example"}
    )
    assert options.status == 204
    assert options.headers["Tus-Version"] == "1.0.0"
    assert options.headers["Tus-Max-Size"] == "1000"
    assert set(options.headers["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "expiration",
        "checksum",
        "termination",
    }
    assert "sha1" in options.headers["Tus-Checksum-Algorithm"].split(",")
    assert "PATCH" in options.headers["Access-Control-Allow-Methods"]
    assert "Upload-Offset" in options.headers["Access-Control-Allow-Headers"]
    for exposed in ("Location", "Upload-Offset", "Upload-Length", "Upload-Expires"):
        assert exposed in options.headers["Access-Control-Expose-Headers"]

    assert create_upload(server, 1001).status == 413  # past Tus-Max-Size
    no_version = server.request("POST", "/v2/uploads", headers={"Upload-Length": "5"})
    assert no_version.status == 412 and no_version.headers["Tus-Version"] == "1.0.0"
    assert create_upload(server, 5, **{"Upload-Metadata": "name not-base64!"}).status == 400
    assert create_upload(server, 5, secret="WRONG").status == 401

    # An api key from an allowed page may upload, as it may create tasks.
    browser = {"Authorization": f"Api-Key {server.api_key}", "Origin": "https://app.example"}
    first = server.request(
        "POST", "/v2/uploads", headers={**TUS, **browser, "Upload-Length": "1000"}
    )
    assert first.status == 201, first.body
    assert first.headers["Access-Control-Expose-Headers"]
    assert first.headers["Tus-Resumable"] == "1.0.0"
    expires = first.headers["Upload-Expires"]
    assert expires.endswith("GMT")
    url = first.headers["Location"]
    # 1000 unfinished + 600 > 1500: the account's unfinished bytes are full.
    assert create_upload(server, 600).status == 413
    assert patch(server, url, 5, b"abc").status == 409
    assert patch(server, url, 0, b"abc", **{"Content-Type": "text/plain"}).status == 415
    assert patch(server, url, 0, b"x" * 1001).status == 413
    stored = patch(server, url, 0, b"abc", **browser)
    assert stored.status == 204 and stored.headers["Upload-Offset"] == "3"

    other = server.create_account("other")
    theirs = {"Authorization": f"Secret {other['secret']}"}
    assert (
        server.request("HEAD", url.removeprefix(server.url), headers={**TUS, **theirs}).status
        == 404
    )
    assert patch(server, url, 3, b"d", **theirs).status == 404

    deleted = server.request("DELETE", url.removeprefix(server.url), headers=TUS)
    assert deleted.status == 204
    assert server.request("HEAD", url.removeprefix(server.url), headers=TUS).status == 404
    assert create_upload(server, 600).status == 201  # its bytes no longer count

    # creation-with-upload: the first bytes ride on the POST.
    with_body = server.request(
        "POST",
        "/v2/uploads",
        raw=b"hello",
        headers={
            **TUS,
            "Upload-Length": "5",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert with_body.status == 201 and with_body.headers["Upload-Offset"] == "5"
    assert "Upload-Expires" not in with_body.headers  # finished at once


def test_only_a_finished_upload_of_the_account_is_an_input(make_server):
    server = make_server()
    other = server.create_account("stranger")
    theirs = create_upload(server, 4, secret=other["secret"]).headers["Location"]
    assert (
        patch(server, theirs, 0, b"abcd", Authorization=f"Secret {other['secret']}").status == 204
    )
    unfinished = create_upload(server, 10).headers["Location"]
    assert patch(server, unfinished, 0, b"abc").status == 204
    for url in (theirs, unfinished, f"upload:{theirs.rsplit('/', 1)[1]}", "upload:nothing"):
        got = fetched(server, url)
        assert got["status"] == "error" and got["error_code"] == "unknown_upload", got
    # Not a reference: the URL rules still hold.
    assert fetched(server, "upload:../etc/passwd")["error_code"] == "parameters"
    assert fetched(server, "file:///etc/passwd")["error_code"] == "parameters"


def stored_bytes(server, backends, upload_id: str) -> list[str]:
    """Where the upload's bytes are: its file in the data folder, or (several nodes, on
    PostgreSQL) its objects and open multipart upload in the bucket."""
    if "DRAGON_DATABASE_URL" not in server.env:
        path = server.data_dir / "uploads" / upload_id
        return [str(path)] if path.exists() else []
    s3, bucket, prefix = backends.s3.client, server.env["DRAGON_S3_BUCKET"], f"uploads/{upload_id}/"
    objects = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    parts = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    return [o["Key"] for o in objects] + [u["UploadId"] for u in parts]


def test_expired_uploads_are_swept(make_server, backends):
    server = make_server(
        env={"DRAGON_UPLOAD_HOURS": "0.0003", "DRAGON_SWEEP_INTERVAL_SECONDS": "0.5"}
    )
    url = create_upload(server, 10).headers["Location"]
    upload_id = url.rsplit("/", 1)[1]
    assert stored_bytes(server, backends, upload_id)
    deadline = time.monotonic() + 30
    while stored_bytes(server, backends, upload_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not stored_bytes(server, backends, upload_id)
    assert server.request("HEAD", url.removeprefix(server.url), headers=TUS).status == 404
