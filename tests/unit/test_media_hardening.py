"""Hostile and broken media for every audio and video task (docs/security.md).

Every command line we build is checked for the input guards; playlists and concat scripts
served as media, empty, random and truncated files, and media over the limits all end
with a known ``error_code`` and a message that leaks nothing; and no ffmpeg or ffprobe
is left running (or unreaped) afterwards.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from dragon import errors
from dragon.config import Settings
from dragon.media import ffmpeg as ff
from dragon.media import probe
from dragon.tasks import audio_convert, video_convert, video_reverse, video_strip, video_thumb
from tests.support.media import gab2_avi

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
        path=Path("/tmp/task/src0/source.mp4"),
        demuxer="mov",
        format_name="mov",
        content_type="video/mp4",
        duration=120.0,
        width=1920,
        height=1080,
        frame_rate=30.0,
        rotation=0.0,
        alpha=False,
        video_codec="h264",
        audio_codec="aac",
        sample_rate=48000,
        channels=2,
        has_video=True,
        has_audio=True,
        streams=2,
        bit_rate=5_000_000,
    )
    return probe.MediaInfo(**{**values, **overrides})


def all_argvs() -> list[list[str]]:
    out = Path("/tmp/task/out")
    src = info()
    convert = dict(
        width=640,
        height=None,
        crop=False,
        audio_codec="aac",
        video_codec="h264",
        video_bitrate=3000,
        audio_bitrate=128,
        sample_rate=44100,
        crf=23,
        gop=250,
    )
    encode = ff.x264_args(crf=23, gop=250, maxrate_kbps=None, preset="veryfast")
    return [
        probe.ffprobe_argv(src.path, src.demuxer),
        audio_convert.build_argv(src, "aac", False, out, SETTINGS),
        audio_convert.build_argv(
            info(demuxer="mp3", audio_codec="mp3"), "mp3", True, out, SETTINGS
        ),
        video_convert.build_argv(src, convert, out, SETTINGS)[0],
        video_convert.build_argv(
            info(rotation=90.0, has_audio=False),
            {**convert, "audio_codec": "wmav2", "crop": True, "height": 100},
            out,
            SETTINGS,
        )[0],
        video_thumb.frame_argv(src.path, "mov", out, SETTINGS, seek=100.0),
        video_thumb.frame_argv(src.path, "mov", out, SETTINGS, from_end=5.0),
        video_strip.batch_argv(src, [1.0, 2.0, 3.0], (160, 90), False, False, out, SETTINGS),
        video_strip.batch_argv(src, [0.0, 60.0], (100, 100), True, True, out, SETTINGS),
        video_strip.batch_argv(src, [5.0], (100, 100), True, False, out, SETTINGS),
        *(
            argv
            for chunk in video_reverse.plan(120.0, 30.0, (1920, 1080))
            for argv in (
                video_reverse.video_argv(src, chunk, "scale=2:2", encode, out, SETTINGS),
                video_reverse.audio_argv(src, chunk, out, SETTINGS),
            )
        ),
        video_reverse.concat_argv(
            Path("/tmp/task/v.ffconcat"), Path("/tmp/task/a.ffconcat"), out, SETTINGS
        ),
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


# -- a playlist hidden in an AVI GAB2 subtitle chunk --------------------------------------


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
