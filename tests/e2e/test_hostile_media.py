"""Hostile, broken and oversized media sent through the API: every audio and video task ends
with a known ``error_code``, leaks nothing and leaves no tool process behind."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from dragon import errors
from tests.support.media import AV_TASKS as TASKS
from tests.support.media import PLAYLIST, ffmpeg, gab2_avi


def test_bad_sources_end_with_known_codes(dragon_server, bad):
    tasks, expected = [], []
    for task_name in TASKS:
        for name, (url, code) in bad.items():
            tasks.append({"task_name": task_name, "url": url})
            expected.append((task_name, name, code))
    statuses = dragon_server.create(tasks, block=True)
    for status, (task_name, name, code) in zip(statuses, expected, strict=True):
        assert status["status"] == "error", (task_name, name, status)
        assert status["error_code"] == code, (task_name, name, status)
        assert "root:" not in str(status) and "/etc/passwd" not in status["error"]
        assert str(dragon_server.data_dir) not in status["error"]
    assert ffmpeg_processes_under(dragon_server.data_dir) == []
    assert zombie_children(dragon_server.proc.pid) == []
    messages = {
        name: s["error"]
        for s, (t, name, _) in zip(statuses, expected, strict=True)
        if t == "video.thumb"
    }
    assert "playlist" in messages["playlist"] and "empty" in messages["empty"]
    assert "not a readable video/mp4 file" in messages["no_moov"]


@pytest.fixture(scope="module")
def limited(make_server):
    return make_server(env={"DRAGON_MAX_MEDIA_DURATION": "1", "DRAGON_MAX_PIXELS": "10000"})


def test_limits_before_any_work(limited, origin, tmp_path):
    long_small = tmp_path / "long.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10:duration=3",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=3",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-shortest",
        str(long_small),
    )
    short_big = tmp_path / "big.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=10:duration=0.5",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        str(short_big),
    )
    hf = tmp_path / "hf.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.05:sample_rate=1000000", str(hf))
    sources = {
        "duration": (origin.add_file("limits/long.mp4", long_small), "duration of 3.0 s"),
        "pixels": (origin.add_file("limits/big.mp4", short_big), "160x120"),
        "rate": (origin.add_file("limits/hf.wav", hf), "1000000 Hz"),
    }
    tasks, expected = [], []
    for task_name in TASKS:
        for name, (url, words) in sources.items():
            if name == "pixels" and task_name.startswith("audio"):
                continue  # no audio stream: refused for that reason instead
            tasks.append({"task_name": task_name, "url": url})
            expected.append((task_name, words))
    statuses = limited.create(tasks, block=True)
    for status, (task_name, words) in zip(statuses, expected, strict=True):
        assert status["status"] == "error", (task_name, status)
        assert status["error_code"] == errors.MEDIA_TOO_LARGE, (task_name, status)
        assert words in status["error"], (task_name, status)
    assert ffmpeg_processes_under(limited.data_dir) == []
    assert zombie_children(limited.proc.pid) == []

    # What we are asked to produce is limited too: 200x200 pictures exceed 10,000 pixels.
    small = tmp_path / "small.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10:duration=0.5",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        str(small),
    )
    url = origin.add_file("limits/small.mp4", small)
    for task_name in ("video.thumb", "video.convert", "video.strip", "video.reverse"):
        status = limited.run_task(
            {
                "task_name": task_name,
                "url": url,
                "width": 200,
                "height": 200,
                "crop": True,
                "count": 1,
            }
        )
        assert status["error_code"] == errors.PARAMETERS, (task_name, status)
        assert "exceeds 10000 pixels" in str(status["error"]["parameters"]["width"])


def test_gab2_playlist_never_reads_local_files(dragon_server, origin, tmp_path):
    url = origin.add("bad/gab2.mp4", gab2_avi(PLAYLIST), "video/mp4")
    statuses = dragon_server.create(
        [
            {"task_name": name, "url": url}
            for name in ("video.info", "video.thumb", "video.convert", "video.strip")
        ],
        block=True,
    )
    for status in statuses:
        assert status["status"] == "success" or status["error_code"] in (
            errors.INVALID_MEDIA,
            errors.UNSUPPORTED_MEDIA,
        ), status
        assert "root:" not in json.dumps(status)
        if status["status"] == "success" and "output" in status["result"]:
            body = dragon_server.get(status["result"]["output"]).body
            assert b"root:" not in body and b"/bin/" not in body
    assert statuses[0]["result"]["content_type"] == "video/x-msvideo"


@pytest.fixture(scope="module")
def bad(tmp_path_factory, origin) -> dict[str, tuple[str, str]]:
    """name -> (url, expected error_code)."""
    d = tmp_path_factory.mktemp("bad")
    clip = d / "clip.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10:duration=1",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=1",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-shortest",
        str(clip),
    )
    data = clip.read_bytes()
    sources = {
        "playlist": (
            b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\nfile:///etc/passwd\n"
            b"#EXT-X-ENDLIST\n",
            errors.UNSUPPORTED_MEDIA,
        ),
        "ffconcat": (b"ffconcat version 1.0\nfile '/etc/passwd'\n", errors.UNSUPPORTED_MEDIA),
        "html": (b"<!doctype html><html><body>video</body></html>", errors.UNSUPPORTED_MEDIA),
        "empty": (b"", errors.INVALID_MEDIA),
        "random": (random.Random(0).randbytes(64 * 1024), errors.UNSUPPORTED_MEDIA),
        "no_moov": (data[: data.index(b"moov") - 4], errors.INVALID_MEDIA),
    }
    return {
        name: (origin.add(f"bad/{name}.mp4", body, "video/mp4"), code)
        for name, (body, code) in sources.items()
    }


def ffmpeg_processes_under(folder: Path) -> list[int]:
    """ffmpeg/ffprobe processes whose working directory is inside ``folder``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if name in ("ffmpeg", "ffprobe") and cwd.startswith(str(folder)):
            found.append(int(pid))
    return found


def zombie_children(pid: int) -> list[int]:
    zombies = []
    for child in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z" and int(fields[1]) == pid:
            zombies.append(int(child))
    return zombies
