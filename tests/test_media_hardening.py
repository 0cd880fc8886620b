"""Hostile and broken media for every audio and video task (RELIABILITY.md 8, cases 9-11).

Every command line we build is checked for the input guards; playlists and concat scripts
served as media, empty, random and truncated files, and media over the limits all end
with a known ``error_code`` and a message that leaks nothing; and no ffmpeg or ffprobe
is left running (or unreaped) afterwards.
"""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
from pathlib import Path

import pytest

from dragon import errors
from dragon.config import Settings
from dragon.media import ffmpeg as ff
from dragon.media import probe
from dragon.tasks import audio_convert, video_convert, video_reverse, video_strip, video_thumb
from tests.media import ffmpeg

TASKS = ["audio.info", "audio.convert", "video.info", "video.convert", "video.thumb",
         "video.strip", "video.reverse"]
SETTINGS = Settings.load(env={})


# -- every argv is guarded -----------------------------------------------------------------


def assert_guarded(argv: list[str]) -> None:
    """Before each ``-i``: the protocol whitelist and a forced, allowed demuxer; local paths."""
    assert argv[0] == "ffmpeg" or argv[0] == "ffprobe"
    inputs = [i for i, a in enumerate(argv) if a == "-i"]
    assert inputs, argv
    start = 0
    for i in inputs:
        options = argv[start:i]
        pairs = dict(zip(options, options[1:], strict=False))
        assert pairs.get("-protocol_whitelist") == "file,pipe", argv
        assert pairs.get("-f") in {*probe.DEMUXERS.values(), "concat"}, argv
        assert "-format_whitelist" in options, argv
        assert argv[i + 1].startswith("/") and "://" not in argv[i + 1] and ":" not in argv[i + 1]
        start = i + 2
    assert "-safe" not in argv


def info(**overrides) -> probe.MediaInfo:
    values = dict(
        path=Path("/tmp/task/src0/source.mp4"), demuxer="mov", format_name="mov",
        content_type="video/mp4", duration=120.0, width=1920, height=1080, frame_rate=30.0,
        rotation=0.0, alpha=False, video_codec="h264", audio_codec="aac", sample_rate=48000,
        channels=2, has_video=True, has_audio=True, streams=2, bit_rate=5_000_000)
    return probe.MediaInfo(**{**values, **overrides})


def all_argvs() -> list[list[str]]:
    out = Path("/tmp/task/out")
    src = info()
    convert = dict(width=640, height=None, crop=False, audio_codec="aac", video_codec="h264",
                   video_bitrate=3000, audio_bitrate=128, sample_rate=44100, crf=23, gop=250)
    encode = ff.x264_args(crf=23, gop=250, maxrate_kbps=None, preset="veryfast")
    return [
        probe.ffprobe_argv(src.path, src.demuxer),
        audio_convert.build_argv(src, "aac", False, out, SETTINGS),
        audio_convert.build_argv(info(demuxer="mp3", audio_codec="mp3"), "mp3", True, out,
                                 SETTINGS),
        video_convert.build_argv(src, convert, out, SETTINGS)[0],
        video_convert.build_argv(info(rotation=90.0, has_audio=False),
                                 {**convert, "audio_codec": "wmav2", "crop": True,
                                  "height": 100}, out, SETTINGS)[0],
        video_thumb.frame_argv(src.path, "mov", out, SETTINGS, seek=100.0),
        video_thumb.frame_argv(src.path, "mov", out, SETTINGS, from_end=5.0),
        video_strip.batch_argv(src, [1.0, 2.0, 3.0], (160, 90), False, False, out, SETTINGS),
        video_strip.batch_argv(src, [0.0, 60.0], (100, 100), True, True, out, SETTINGS),
        video_strip.batch_argv(src, [5.0], (100, 100), True, False, out, SETTINGS),
        *(argv for chunk in video_reverse.plan(120.0, 30.0, (1920, 1080))
          for argv in (video_reverse.video_argv(src, chunk, "scale=2:2", encode, out, SETTINGS),
                       video_reverse.audio_argv(src, chunk, out, SETTINGS))),
        video_reverse.concat_argv(Path("/tmp/task/v.ffconcat"), Path("/tmp/task/a.ffconcat"),
                                  out, SETTINGS),
    ]


@pytest.mark.parametrize("argv", all_argvs(), ids=lambda a: " ".join(a[-3:]))
def test_every_argv_is_guarded(argv):
    assert_guarded(argv)


def test_unguarded_inputs_are_refused_when_built():
    with pytest.raises(RuntimeError):
        ff.ffmpeg_argv("-f", "mov", "-i", "/x.mp4", "/y.mp4")
    with pytest.raises(RuntimeError):
        ff.ffmpeg_argv(*probe.path_input_args(Path("/a"), "mov"), "-i", "/b", "/y.mp4")
    ff.ffmpeg_argv(*probe.path_input_args(Path("/a"), "mov"), "/y.mp4")


def test_output_sizes_are_capped():
    with pytest.raises(errors.ParameterError):
        ff.check_size(16384, 16384, SETTINGS)
    ff.check_size(8000, 8000, SETTINGS)


# -- hostile and broken sources, through the server ----------------------------------------


@pytest.fixture(scope="module")
def bad(tmp_path_factory, origin) -> dict[str, tuple[str, str]]:
    """name -> (url, expected error_code)."""
    d = tmp_path_factory.mktemp("bad")
    clip = d / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=1",
           "-f", "lavfi", "-i", "sine=duration=1", "-c:v", "libx264", "-preset", "ultrafast",
           "-c:a", "aac", "-shortest", str(clip))
    data = clip.read_bytes()
    sources = {
        "playlist": (b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\nfile:///etc/passwd\n"
                     b"#EXT-X-ENDLIST\n", errors.UNSUPPORTED_MEDIA),
        "ffconcat": (b"ffconcat version 1.0\nfile '/etc/passwd'\n", errors.UNSUPPORTED_MEDIA),
        "html": (b"<!doctype html><html><body>video</body></html>", errors.UNSUPPORTED_MEDIA),
        "empty": (b"", errors.INVALID_MEDIA),
        "random": (random.Random(0).randbytes(64 * 1024), errors.UNSUPPORTED_MEDIA),
        "no_moov": (data[: data.index(b"moov") - 4], errors.INVALID_MEDIA),
    }
    return {name: (origin.add(f"bad/{name}.mp4", body, "video/mp4"), code)
            for name, (body, code) in sources.items()}


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
    messages = {name: s["error"] for s, (t, name, _) in zip(statuses, expected, strict=True)
                if t == "video.thumb"}
    assert "playlist" in messages["playlist"] and "empty" in messages["empty"]
    assert "not a readable video/mp4 file" in messages["no_moov"]


@pytest.fixture(scope="module")
def limited(make_server):
    return make_server(env={"DRAGON_MAX_MEDIA_DURATION": "1", "DRAGON_MAX_PIXELS": "10000"})


def test_limits_before_any_work(limited, origin, tmp_path):
    long_small = tmp_path / "long.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=3",
           "-f", "lavfi", "-i", "sine=duration=3", "-c:v", "libx264", "-preset", "ultrafast",
           "-c:a", "aac", "-shortest", str(long_small))
    short_big = tmp_path / "big.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=0.5", "-c:v", "libx264",
           "-preset", "ultrafast", str(short_big))
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
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=0.5", "-c:v", "libx264",
           "-preset", "ultrafast", str(small))
    url = origin.add_file("limits/small.mp4", small)
    for task_name in ("video.thumb", "video.convert", "video.strip", "video.reverse"):
        status = limited.run_task({"task_name": task_name, "url": url, "width": 200,
                                   "height": 200, "crop": True, "count": 1})
        assert status["error_code"] == errors.PARAMETERS, (task_name, status)
        assert "exceeds 10000 pixels" in str(status["error"]["parameters"]["width"])


# -- a playlist hidden in an AVI GAB2 subtitle chunk (RELIABILITY.md 2b) -------------------


def _chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _list(kind: bytes, *items: bytes) -> bytes:
    body = kind + b"".join(items)
    return b"LIST" + struct.pack("<I", len(body)) + body


def gab2_avi(subtitle: bytes, size: int = 16, frames: int = 10) -> bytes:
    """An AVI: raw 16x16 video plus a ``txts`` stream whose first chunk is a GAB2 block
    carrying ``subtitle``, a whole file that ffmpeg's AVI demuxer opens with a nested demuxer
    (how the 2017 exploit smuggled an HLS playlist in)."""
    desc = "x".encode("utf-16le") + b"\0\0"
    gab2 = (b"GAB2\0" + struct.pack("<HI", 2, len(desc)) + desc
            + struct.pack("<HI", 4, len(subtitle)) + subtitle)
    frame = bytes([40, 80, 160]) * (size * size)
    avih = struct.pack("<14I", 40000, 0, 0, 0x10, frames, 0, 2, 0, size, size, 0, 0, 0, 0)
    strh = "<4s4sIHHIIIIIIII4h"
    video = (_chunk(b"strh", struct.pack(strh, b"vids", bytes(4), 0, 0, 0, 0, 1, 25, 0, frames,
                                         len(frame), 0, 0, 0, 0, size, size))
             + _chunk(b"strf", struct.pack("<IiiHHIIiiII", 40, size, size, 1, 24, 0,
                                           len(frame), 0, 0, 0, 0)))
    text = (_chunk(b"strh", struct.pack(strh, b"txts", bytes(4), 0, 0, 0, 0, 1, 25, 0, 1,
                                        len(gab2), 0, 0, 0, 0, 0, 0))
            + _chunk(b"strf", bytes(4)))
    hdrl = _list(b"hdrl", _chunk(b"avih", avih), _list(b"strl", video), _list(b"strl", text))
    chunks, index, offset = [], [], 4
    for fourcc, data in [(b"01tx", gab2)] + [(b"00db", frame)] * frames:
        chunks.append(_chunk(fourcc, data))
        index.append(struct.pack("<4sIII", fourcc, 0x10, offset, len(data)))
        offset += len(chunks[-1])
    body = b"AVI " + hdrl + _list(b"movi", *chunks) + _chunk(b"idx1", b"".join(index))
    return b"RIFF" + struct.pack("<I", len(body)) + body


PLAYLIST = b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"


def test_nested_demuxers_are_not_opened(tmp_path):
    """Control: plain ffprobe opens the GAB2 payload with a nested (SubRip) demuxer; with our
    argv's ``-format_whitelist`` the nested demuxer is refused and the stream stays empty."""
    avi = tmp_path / "gab2.avi"
    avi.write_bytes(gab2_avi(b"1\n00:00:00,000 --> 00:00:01,000\nhello\n\n"))

    def subtitle_codec(argv):
        out = json.loads(subprocess.run(argv, capture_output=True, check=True).stdout)
        return [s.get("codec_name") for s in out["streams"]]

    ours = probe.ffprobe_argv(avi, "avi")
    plain = [a for a in ours if a not in ("-format_whitelist",)]
    plain.remove("avi")  # the whitelist's value (the forced -f avi stays)
    assert subtitle_codec(plain) == ["rawvideo", "subrip"]
    assert subtitle_codec(ours) == ["rawvideo", None]


def test_gab2_playlist_never_reads_local_files(dragon_server, origin, tmp_path):
    url = origin.add("bad/gab2.mp4", gab2_avi(PLAYLIST), "video/mp4")
    statuses = dragon_server.create([
        {"task_name": name, "url": url}
        for name in ("video.info", "video.thumb", "video.convert", "video.strip")], block=True)
    for status in statuses:
        assert status["status"] == "success" or status["error_code"] in (
            errors.INVALID_MEDIA, errors.UNSUPPORTED_MEDIA), status
        assert "root:" not in json.dumps(status)
        if status["status"] == "success" and "output" in status["result"]:
            body = dragon_server.get(status["result"]["output"]).body
            assert b"root:" not in body and b"/bin/" not in body
    assert statuses[0]["result"]["content_type"] == "video/x-msvideo"
