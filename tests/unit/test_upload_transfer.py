"""The upload clients' shared pieces: file ranges, retries, scrubbing, YouTube's arithmetic."""

from __future__ import annotations

import json
import os

import pytest

from dragon import errors
from dragon.config import Settings
from dragon.uploads import facebook, transfer, youtube


async def test_a_file_range_streams_exactly_its_bytes_a_piece_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "PIECE", 1000)
    data = os.urandom(10_000)
    path = tmp_path / "f"
    path.write_bytes(data)
    positions: list[int] = []
    body = transfer.FileRange(path, 2500, 4321, head=b"<", tail=b">", on_piece=positions.append)
    assert body.size == 4323
    alive = []
    pieces = [p async for p in body.pieces(lambda: alive.append(1))]
    assert b"".join(pieces) == b"<" + data[2500:6821] + b">"
    assert max(len(p) for p in pieces) == 1000  # never more than a piece in memory
    assert positions == [3500, 4500, 5500, 6500, 6821] and len(alive) == 5


async def test_backoff_gives_up_after_the_tries_in_a_row(monkeypatch):
    monkeypatch.setattr(transfer, "FIRST_DELAY", 0.001)
    backoff = transfer.Backoff("YouTube", 3, lambda why: why)
    await backoff.wait("503")
    backoff.progress()  # a request got through: the count starts again
    await backoff.wait("503")
    await backoff.wait("503")
    with pytest.raises(errors.TaskError) as caught:
        await backoff.wait("the connection failed")
    assert caught.value.code == errors.UPLOAD_FAILED
    assert caught.value.message == ("YouTube upload failed after 3 tries: the connection failed")


def test_errors_scrub_every_secret():
    client = transfer.Client(Settings.load(env={}), "Vimeo", ["tok-123", None, "sec9"])
    error = client.unauthorized("token tok-123 refused; secret sec9")
    assert error.code == errors.UPLOAD_UNAUTHORIZED
    assert error.message == "Vimeo refused the credentials: token *** refused; secret ***"


def test_youtube_chunks_and_ranges():
    assert youtube.chunk_size(16 * 1024**2) == 16 * 1024**2
    assert youtube.chunk_size(1_000_000) == 3 * 256 * 1024  # rounded down to 256 KiB
    assert youtube.chunk_size(1) == 256 * 1024
    answer = transfer.Answer(308, {"Range": "bytes=0-524287"}, b"")  # type: ignore[arg-type]
    assert youtube.received(answer) == 524288
    assert youtube.received(transfer.Answer(308, {}, b"")) == 0  # type: ignore[arg-type]


def test_appsecret_proof_is_hmac_sha256_of_the_token_keyed_with_the_secret():
    # The published HMAC-SHA256 example (key "key"), as Graph computes appsecret_proof.
    proof = facebook.appsecret_proof("The quick brown fox jumps over the lazy dog", "key")
    assert proof == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"


def test_settings_refuse_a_chunk_below_256_kib():
    with pytest.raises(ValueError, match="DRAGON_UPLOAD_CHUNK_BYTES"):
        Settings.load(env={"DRAGON_UPLOAD_CHUNK_BYTES": "1000"})


def answer(status: int, body: dict) -> transfer.Answer:
    return transfer.Answer(status, {}, json.dumps(body).encode())  # type: ignore[arg-type]


def test_platform_refusals_map_to_the_error_codes(tmp_path):
    settings = Settings.load(env={})
    client = transfer.Client(settings, "P", ["tok"])
    yt = youtube._Upload(
        client,
        settings,
        tmp_path,
        1,
        "video/mp4",
        youtube.Video("t"),
        "tok",
        "key",
        transfer.Progress(1, None),
    )

    def google(status: int, reason: str) -> transfer.Answer:
        return answer(
            status, {"error": {"code": status, "message": reason, "errors": [{"reason": reason}]}}
        )

    assert yt.refusal(google(401, "authError")).code == errors.UPLOAD_UNAUTHORIZED
    assert yt.refusal(google(403, "forbidden")).code == errors.UPLOAD_UNAUTHORIZED
    assert yt.refusal(google(403, "quotaExceeded")).code == errors.UPLOAD_QUOTA_EXCEEDED
    assert yt.refusal(google(403, "uploadLimitExceeded")).code == errors.UPLOAD_QUOTA_EXCEEDED
    assert yt.refusal(google(400, "invalidTitle")).code == errors.UPLOAD_FAILED

    fb = facebook._Upload(client, settings, tmp_path, 1, {}, transfer.Progress(1, None))

    def graph(code: int, **extra) -> tuple[transfer.Answer, dict]:
        error = {"message": f"code {code}", "code": code, **extra}
        return answer(400, {"error": error}), error

    for code, expected in [
        (190, errors.UPLOAD_UNAUTHORIZED),
        (200, errors.UPLOAD_UNAUTHORIZED),
        (4, errors.UPLOAD_QUOTA_EXCEEDED),
        (613, errors.UPLOAD_QUOTA_EXCEEDED),
        (100, errors.UPLOAD_FAILED),
    ]:
        reply, error = graph(code)
        assert not fb.transient(reply, error)
        assert fb.refusal(reply, error).code == expected
    assert fb.transient(*graph(2))
    assert fb.transient(*graph(6000, is_transient=True))
    assert not fb.transient(*graph(4, is_transient=True))  # a rate limit is a quota refusal
