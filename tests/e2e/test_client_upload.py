"""``Client.upload``, ``AsyncClient.upload`` and ``dragon upload``: a local file sent with the
server's tus uploads, read back by a task as ``upload:ID``; a connection cut in the middle of
a chunk (a real TCP reset, through a proxy) resumes from the offset the server answers, and
an upload begun by another client is finished from where it stands.

What arrived is checked by ``test.fetch`` (tests/plugins/fetch.py), which reports the
SHA-256 of the bytes a task was handed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import threading

import pytest

from dragon.client import AsyncClient, Client, DragonError, Upload
from tests.e2e.test_cli import cli
from tests.support.proxy import TcpProxy

CHUNK = 256 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


def random_file(folder, name: str, size: int):
    path = folder / name
    path.write_bytes(os.urandom(size))
    return path


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetched(server, url: str) -> dict:
    done = server.run_task({"task_name": "test.fetch", "url": url})
    assert done["status"] == "success", done
    return done["result"]


def test_upload_sends_the_file_in_chunks_and_a_task_reads_it(dragon_server, tmp_path):
    path = random_file(tmp_path, "clip.bin", 2 * CHUNK + 1000)
    seen: list[tuple[int, int | None]] = []
    with Client(dragon_server.url, dragon_server.secret) as client:
        upload = client.upload(
            path, lambda done, total: seen.append((done, total)), chunk_bytes=CHUNK
        )
    assert isinstance(upload, Upload) and upload.size == path.stat().st_size
    assert upload.ref == f"upload:{upload.id}" and upload.url.endswith(f"/v2/uploads/{upload.id}")
    size = upload.size
    assert seen == [(0, size), (CHUNK, size), (2 * CHUNK, size), (size, size)]
    for reference in (upload.ref, upload.url):
        got = fetched(dragon_server, reference)
        assert got["sha256"] == sha256(path) and got["size"] == size

    async def upload_async():
        async with AsyncClient(dragon_server.url, dragon_server.secret) as client:
            return await client.upload(path, chunk_bytes=CHUNK)

    other = asyncio.run(upload_async())
    assert other.id != upload.id and fetched(dragon_server, other.ref)["sha256"] == sha256(path)

    empty = random_file(tmp_path, "empty.bin", 0)
    with Client(dragon_server.url, dragon_server.secret) as client:
        nothing = client.upload(empty)
    assert nothing.size == 0
    head = dragon_server.request("HEAD", nothing.url.removeprefix(dragon_server.url), headers=TUS)
    assert head.status == 200, (head.status, dict(head.headers))
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == "0"


class CuttingProxy(TcpProxy):
    """Resets every connection once, when ``after`` bytes have gone from the client to the
    server (in the middle of a request's body); counts the bytes sent."""

    def __init__(self, upstream_port: int, after: int) -> None:
        self.after = after
        self.sent = 0
        self.cuts = 0
        super().__init__(upstream_port)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        upstream = dst.getpeername() == self.upstream
        try:
            while data := src.recv(16384):
                dst.sendall(data)
                if upstream:
                    self.sent += len(data)
                    if self.cuts == 0 and self.sent >= self.after:
                        self.cuts += 1
                        threading.Thread(target=self.cut, daemon=True).start()
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def test_a_cut_in_the_middle_of_a_chunk_resumes_from_the_server_s_offset(dragon_server, tmp_path):
    path = random_file(tmp_path, "big.bin", 4 * CHUNK)
    port = int(dragon_server.url.rsplit(":", 1)[1])
    with (
        CuttingProxy(port, after=CHUNK + CHUNK // 2) as proxy,
        Client(proxy.url, dragon_server.secret) as client,
    ):
        upload = client.upload(path, chunk_bytes=CHUNK)
    assert proxy.cuts == 1 and proxy.connections >= 2
    assert fetched(dragon_server, upload.ref)["sha256"] == sha256(path)
    # Resumed, not started again: at most the chunk that was cut is sent twice (plus the
    # requests' headers).
    assert proxy.sent < upload.size + CHUNK + 16 * 1024


def test_an_upload_begun_elsewhere_is_finished_from_where_it_stands(dragon_server, tmp_path):
    path = random_file(tmp_path, "half.bin", 3 * CHUNK)
    data = path.read_bytes()
    auth = {"Authorization": f"Secret {dragon_server.secret}", **TUS}
    created = dragon_server.request(
        "POST", "/v2/uploads", headers={**auth, "Upload-Length": str(len(data))}
    )
    assert created.status == 201
    location = created.headers["Location"]
    half = len(data) // 2 + 123
    patched = dragon_server.request(
        "PATCH",
        location.removeprefix(dragon_server.url),
        raw=data[:half],
        headers={
            **auth,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert patched.status == 204
    seen: list[tuple[int, int | None]] = []
    with Client(dragon_server.url, dragon_server.secret) as client:
        upload = client.upload(
            path, lambda d, t: seen.append((d, t)), url=location, chunk_bytes=CHUNK
        )
    assert upload.url == location and seen[0] == (half, len(data))  # after its HEAD
    assert fetched(dragon_server, upload.ref)["sha256"] == sha256(path)


def test_refusals_raise_and_are_not_retried_forever(make_server, tmp_path):
    server = make_server(env={"DRAGON_MAX_UPLOAD_BYTES": "1000"})
    path = random_file(tmp_path, "large.bin", 5000)
    with Client(server.url, server.secret, retries=2) as client:
        with pytest.raises(DragonError) as too_large:
            client.upload(path)
        assert too_large.value.status == 413
    with Client(server.url, "not-the-secret", retries=2) as client:
        with pytest.raises(DragonError) as refused:
            client.upload(path)
        assert refused.value.status == 401


def test_dragon_upload_prints_the_input_a_task_takes(dragon_server, tmp_path):
    path = random_file(tmp_path, "cli.bin", CHUNK + 10)
    done = cli(dragon_server, "upload", str(path))
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["input"].startswith("upload:") and printed["size"] == CHUNK + 10
    assert printed["url"].endswith("/v2/uploads/" + printed["input"].removeprefix("upload:"))
    assert f"cli.bin: sent {CHUNK + 10} bytes" in done.stderr
    ran = cli(dragon_server, "run", "test.fetch", f"url={printed['input']}")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout.splitlines()[-1])["result"]["sha256"] == sha256(path)

    missing = cli(dragon_server, "upload", str(tmp_path / "nope.bin"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
