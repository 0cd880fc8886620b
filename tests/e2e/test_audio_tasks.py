"""audio.info and audio.convert end to end, outputs checked with ffprobe and packet hashes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dragon import errors
from tests.support.media import ffmpeg, ffprobe
from tests.support.server import download as fetch
from tests.support.server import task_result as run

DURATION = 1.5


def packet_hash(path: Path) -> str:
    """MD5 of the first audio stream's packets: equal hashes mean the stream was copied."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-c", "copy", "-f", "md5", "-"],
        capture_output=True,
        check=True,
    )
    return out.stdout.decode().strip()


@pytest.fixture(scope="module")
def media(tmp_path_factory, origin):
    d = tmp_path_factory.mktemp("audio")
    sine = ("-f", "lavfi", "-i", f"sine=frequency=440:duration={DURATION}:sample_rate=44100")
    ffmpeg(*sine, "-c:a", "libmp3lame", str(d / "tone.mp3"))
    ffmpeg(*sine, str(d / "tone.wav"))
    ffmpeg(*sine, "-c:a", "libvorbis", str(d / "tone.ogg"))
    ffmpeg(*sine, "-c:a", "aac", str(d / "tone.m4a"))
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size=64x48:rate=10:duration={DURATION}",
        *sine,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        str(d / "clip.mp4"),
    )
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10:duration=1",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        str(d / "mute.mp4"),
    )
    paths = {p.name: p for p in d.iterdir()}
    urls = {name: origin.add_file(f"audio/{name}", path) for name, path in paths.items()}
    return paths, urls


@pytest.mark.parametrize(
    "name,content_type,codec",
    [
        ("tone.mp3", "audio/mpeg", "mp3"),
        ("tone.wav", "audio/wav", "pcm_s16le"),
        ("tone.ogg", "audio/ogg", "vorbis"),
        ("tone.m4a", "audio/mp4", "aac"),
        ("clip.mp4", "video/mp4", "aac"),
    ],
)
def test_info(dragon_server, media, name, content_type, codec):
    paths, urls = media
    result = run(dragon_server, {"task_name": "audio.info", "url": urls[name]})
    exact = float(ffprobe(paths[name])["format"]["duration"])
    assert result == {"duration": round(exact, 2), "content_type": content_type, "codec": codec}
    assert result["duration"] == pytest.approx(DURATION, abs=0.06)


def test_info_of_a_silent_video(dragon_server, media):
    _, urls = media
    status = dragon_server.run_task({"task_name": "audio.info", "url": urls["mute.mp4"]})
    assert status["status"] == "error" and status["error_code"] == errors.UNSUPPORTED_MEDIA
    assert "no audio" in status["error"]


@pytest.mark.parametrize(
    "source,codec,content_type,format_name,copied",
    [
        ("tone.wav", "mp3", "audio/mpeg", "mp3", False),
        ("tone.mp3", "mp3", "audio/mpeg", "mp3", True),
        ("tone.wav", "vorbis", "audio/ogg", "ogg", False),
        ("tone.ogg", "vorbis", "audio/ogg", "ogg", True),
        ("tone.mp3", "aac", "audio/mp4", "mov,mp4,m4a,3gp,3g2,mj2", False),
        ("tone.m4a", "aac", "audio/mp4", "mov,mp4,m4a,3gp,3g2,mj2", True),
        ("clip.mp4", "mp3", "audio/mpeg", "mp3", False),
    ],
)
def test_convert(dragon_server, media, tmp_path, source, codec, content_type, format_name, copied):
    paths, urls = media
    result = run(dragon_server, {"task_name": "audio.convert", "url": urls[source], "codec": codec})
    assert result["content_type"] == content_type
    assert result["duration"] == pytest.approx(DURATION, abs=0.08)
    out = fetch(dragon_server, result["output"], tmp_path / "out")
    probe = ffprobe(out)
    assert probe["format"]["format_name"] == format_name
    assert [s["codec_type"] for s in probe["streams"]] == ["audio"]  # video dropped
    expected_codec = "vorbis" if codec == "vorbis" else codec
    assert probe["streams"][0]["codec_name"] == expected_codec
    assert (packet_hash(out) == packet_hash(paths[source])) is copied
    if codec == "aac":
        data = out.read_bytes()
        assert data.index(b"moov") < data.index(b"mdat")  # +faststart


def test_force_reencodes(dragon_server, media, tmp_path):
    paths, urls = media
    result = run(
        dragon_server,
        {"task_name": "audio.convert", "url": urls["tone.mp3"], "codec": "mp3", "force": True},
    )
    out = fetch(dragon_server, result["output"], tmp_path / "forced.mp3")
    assert ffprobe(out)["streams"][0]["codec_name"] == "mp3"
    assert packet_hash(out) != packet_hash(paths["tone.mp3"])


def test_convert_parameters(dragon_server, media):
    _, urls = media
    status = dragon_server.run_task(
        {"task_name": "audio.convert", "url": urls["tone.wav"], "codec": "speex"}
    )
    assert status["status"] == "error" and "codec" in status["error"]["parameters"]
