"""Confused and hostile video platforms (issue 26, Weak): the upload ends ``upload_failed``
with a message, soon and after a few paced requests, never ``internal_error`` and never a
flood of requests until the task's timeout.

- A YouTube session whose ``Range`` answers alternate (forward, back, forward...) and a
  Facebook transfer that asks for the same range again and again make no progress: each
  such answer counts as a failure, with its pause, up to ``DRAGON_UPLOAD_MAX_TRIES``.
- A platform answering JSON nested 200,000 deep, or a free space of ``10**400`` bytes,
  is a malformed answer, not a crash.
"""

from __future__ import annotations

import time

import pytest

from tests.support import media
from tests.support.platforms import PlatformServer

TOKEN = "ya29.faults-token-4c1d"
DEV_KEY = "AIza-faults-key-77"
CHUNK = 256 * 1024
TRIES = 3


@pytest.fixture(scope="module")
def platforms():
    server = PlatformServer()
    for protocol in (server.youtube, server.vimeo, server.graph):
        protocol.tokens = {TOKEN}
    server.youtube.dev_keys = {DEV_KEY}
    yield server
    server.close()


@pytest.fixture()
def fresh(platforms):
    platforms.youtube.ranges = []
    platforms.graph.stuck = False
    platforms.vimeo.me_body = None
    for protocol in (platforms.youtube, platforms.vimeo, platforms.graph):
        protocol.requests.clear()
    yield platforms
    platforms.youtube.ranges = []
    platforms.graph.stuck = False
    platforms.vimeo.me_body = None


@pytest.fixture(scope="module")
def server(make_server, platforms):
    return make_server(
        env={
            **platforms.env,
            "DRAGON_UPLOAD_CHUNK_BYTES": str(CHUNK),
            "DRAGON_UPLOAD_MAX_TRIES": str(TRIES),
            "DRAGON_TASK_TIMEOUT_SECONDS": "20",
        }
    )


@pytest.fixture(scope="module")
def source(origin, tmp_path_factory):
    path = media.video(tmp_path_factory.mktemp("faults") / "source.mp4", size="640x480")
    assert path.stat().st_size > 2 * CHUNK
    return origin.add("faults/source.mp4", path.read_bytes(), "video/mp4")


def ended_upload_failed(server, task: dict) -> dict:
    started = time.monotonic()
    doc = server.run_task(task)
    assert doc["status"] == "error", doc
    assert doc["error_code"] == "upload_failed", doc
    assert time.monotonic() - started < 15, doc  # well before the task's timeout
    assert "Traceback" not in server.log()
    return doc


def test_youtube_ranges_that_go_back_and_forth_are_failures(server, fresh, source):
    fresh.youtube.ranges = [2 * CHUNK, CHUNK]  # forward, back, forward, back...
    doc = ended_upload_failed(
        server,
        {
            "task_name": "video.upload.youtube",
            "url": source,
            "access_token": TOKEN,
            "developer_key": DEV_KEY,
            "title": "t",
        },
    )
    assert f"failed after {TRIES} tries" in doc["error"], doc
    puts = [r for r in fresh.youtube.requests if r["method"] == "PUT"]
    assert len(puts) <= 2 * TRIES + 2, len(puts)


def test_facebook_asking_the_same_range_again_is_a_failure(server, fresh, source):
    fresh.graph.stuck = True
    doc = ended_upload_failed(
        server, {"task_name": "video.upload.fb", "url": source, "access_token": TOKEN}
    )
    assert f"failed after {TRIES} tries" in doc["error"], doc
    transfers = [r for r in fresh.graph.requests if r["form"].get("upload_phase") == "transfer"]
    assert len(transfers) <= TRIES + 1, len(transfers)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000 + b"]" * 200_000,
        b'{"upload_quota": {"space": {"free": 1' + b"0" * 400 + b"}}}",
        b'{"upload_quota": {"space": {"free": 1e400}}}',
    ],
    ids=["deep", "huge", "infinite"],
)
def test_vimeo_answering_hostile_json_ends_upload_failed(server, fresh, source, body):
    fresh.vimeo.me_body = body
    doc = ended_upload_failed(
        server, {"task_name": "video.upload.vimeo", "url": source, "oauth2_token": TOKEN}
    )
    assert "Vimeo upload failed" in doc["error"], doc
    assert not fresh.vimeo.uploads  # nothing was created on a nonsense answer
