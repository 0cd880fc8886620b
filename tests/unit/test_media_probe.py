"""Unit tests of dragon.media.probe: real ffprobe on media generated here, no server.

``local_ctx`` builds a real ``TaskContext`` whose fetcher serves local files (sniffed with
the real sniffer) and whose store copies outputs to a folder; the audio and video task
tests import it to run tasks directly when they need settings the shared server lacks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PIL import Image

from dragon import errors
from dragon.config import Settings
from dragon.media import probe
from dragon.net.sniff import sniff_file

# -- a TaskContext over local files --------------------------------------------------------
from tests.support.context import local_ctx
from tests.support.media import ffmpeg


def run_probe(ctx, path: Path, mime: str | None = "sniff") -> probe.MediaInfo:
    mime = sniff_file(path) if mime == "sniff" else mime
    return asyncio.run(probe.probe_path(ctx, path, mime))


def probe_error(ctx, path: Path, mime: str | None = "sniff") -> errors.TaskError:
    with pytest.raises(errors.TaskError) as info:
        run_probe(ctx, path, mime)
    return info.value


# -- media ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("probe")
    f = {
        name: d / name
        for name in (
            "av.mp4",
            "rot90.mp4",
            "rot270.mp4",
            "alpha.mov",
            "plain.mkv",
            "tone.mp3",
            "tone.wav",
            "tone.ogg",
            "tone.m4a",
            "tone.flac",
            "tone.aac",
            "cover.mp3",
            "hf.wav",
        )
    }
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=25:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        str(f["av.mp4"]),
    )
    # ffmpeg 5.1 writes a display matrix for the legacy ``rotate`` tag when remuxing.
    ffmpeg(
        "-i", str(f["av.mp4"]), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(f["rot90.mp4"])
    )
    ffmpeg(
        "-i", str(f["av.mp4"]), "-c", "copy", "-metadata:s:v:0", "rotate=270", str(f["rot270.mp4"])
    )
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=c=red@0.5:s=64x48:r=10:d=1,format=argb",
        "-c:v",
        "qtrle",
        str(f["alpha.mov"]),
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
        str(f["plain.mkv"]),
    )
    sine = ("-f", "lavfi", "-i", "sine=frequency=440:duration=1.5:sample_rate=44100")
    ffmpeg(*sine, "-c:a", "libmp3lame", str(f["tone.mp3"]))
    ffmpeg(*sine, str(f["tone.wav"]))
    ffmpeg(*sine, "-c:a", "libvorbis", str(f["tone.ogg"]))
    ffmpeg(*sine, "-c:a", "aac", str(f["tone.m4a"]))
    ffmpeg(*sine, str(f["tone.flac"]))
    ffmpeg(*sine, "-c:a", "aac", "-f", "adts", str(f["tone.aac"]))
    cover = d / "cover.png"
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=32x32", "-frames:v", "1", str(cover))
    ffmpeg(
        "-i",
        str(f["tone.mp3"]),
        "-i",
        str(cover),
        "-map",
        "0",
        "-map",
        "1",
        "-c",
        "copy",
        "-disposition:v",
        "attached_pic",
        "-id3v2_version",
        "3",
        str(f["cover.mp3"]),
    )
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "sine=duration=0.05:sample_rate=1000000",
        "-c:a",
        "pcm_s16le",
        str(f["hf.wav"]),
    )
    return f


@pytest.fixture
def ctx(tmp_path):
    return local_ctx(tmp_path)


# -- what probe reports ------------------------------------------------------------------


def test_video_with_audio(ctx, files):
    info = run_probe(ctx, files["av.mp4"])
    assert (info.demuxer, info.content_type) == ("mov", "video/mp4")
    assert "mp4" in info.format_name
    assert (info.width, info.height, info.display_size) == (160, 120, (160, 120))
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.frame_rate == pytest.approx(25.0)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.sample_rate, info.channels) == (44100, 1)
    assert info.has_video and info.has_audio and info.streams == 2
    assert info.rotation == 0 and info.alpha is False
    assert info.bit_rate and info.bit_rate > 0


@pytest.mark.parametrize("name", ["rot90.mp4", "rot270.mp4"])
def test_rotation_matches_what_ffmpeg_shows(ctx, files, name, tmp_path):
    """``rotation`` is counter-clockwise; check it against the frame ffmpeg decodes."""
    info = run_probe(ctx, files[name])
    assert info.rotation in (90.0, 270.0)
    assert (info.width, info.height) == (160, 120)  # stored size
    assert info.display_size == (120, 160)
    # testsrc2 draws its scrolling gradient bar near the bottom of the stored frame; turning
    # it counter-clockwise by ``rotation`` puts it on the right (90) or on the left (270).
    frame = tmp_path / "f.png"
    ffmpeg("-i", str(files[name]), "-frames:v", "1", str(frame))
    plain = tmp_path / "p.png"
    ffmpeg("-i", str(files["av.mp4"]), "-frames:v", "1", str(plain))
    upright = Image.open(frame).convert("RGB")
    stored = Image.open(plain).convert("RGB")
    turned = stored.rotate(info.rotation, expand=True)  # PIL rotates counter-clockwise
    assert upright.size == turned.size
    diff = sum(abs(a - b) for a, b in zip(upright.tobytes(), turned.tobytes(), strict=True))
    assert diff / len(upright.tobytes()) < 8


def test_alpha_and_quicktime(ctx, files):
    info = run_probe(ctx, files["alpha.mov"])
    assert info.content_type == "video/quicktime"
    assert info.alpha is True and info.video_codec == "qtrle"
    assert not run_probe(ctx, files["av.mp4"]).alpha


def test_matroska(ctx, files):
    info = run_probe(ctx, files["plain.mkv"])
    assert (info.demuxer, info.content_type, info.has_audio) == (
        "matroska",
        "video/x-matroska",
        False,
    )
    assert info.frame_rate == pytest.approx(10.0)


@pytest.mark.parametrize(
    "name,demuxer,content_type,codec",
    [
        ("tone.mp3", "mp3", "audio/mpeg", "mp3"),
        ("tone.wav", "wav", "audio/wav", "pcm_s16le"),
        ("tone.ogg", "ogg", "audio/ogg", "vorbis"),
        ("tone.m4a", "mov", "audio/mp4", "aac"),
        ("tone.flac", "flac", "audio/flac", "flac"),
        ("tone.aac", "aac", "audio/aac", "aac"),
    ],
)
def test_audio_formats(ctx, files, name, demuxer, content_type, codec):
    info = run_probe(ctx, files[name])
    assert (info.demuxer, info.content_type, info.audio_codec) == (demuxer, content_type, codec)
    assert info.duration == pytest.approx(1.5, abs=0.1)
    assert info.sample_rate == 44100 and not info.has_video and info.width is None


def test_cover_art_is_not_video(ctx, files):
    info = run_probe(ctx, files["cover.mp3"])
    assert info.streams == 2
    assert not info.has_video and info.video_codec is None and info.audio_codec == "mp3"
    with pytest.raises(errors.TaskError) as err:
        probe.require_video(info)
    assert err.value.code == errors.UNSUPPORTED_MEDIA


def test_input_args():
    info = probe.MediaInfo(
        path=Path("/t/source.mp4"),
        demuxer="mov",
        format_name="mov",
        content_type="video/mp4",
        duration=2.0,
        width=2,
        height=2,
        frame_rate=25.0,
        rotation=0.0,
        alpha=False,
        video_codec="h264",
        audio_codec=None,
        sample_rate=None,
        channels=None,
        has_video=True,
        has_audio=False,
        streams=1,
        bit_rate=None,
    )
    guard = ["-protocol_whitelist", "file,pipe", "-format_whitelist", "mov"]
    assert probe.input_args(info) == [*guard, "-f", "mov", "-i", "/t/source.mp4"]
    assert probe.input_args(info, seek=1.5) == [
        *guard,
        "-ss",
        "1.500000",
        "-f",
        "mov",
        "-i",
        "/t/source.mp4",
    ]
    assert probe.last_frame_time(info) == pytest.approx(2.0 - 0.04 - 0.001)


# -- what probe refuses ------------------------------------------------------------------


@pytest.mark.parametrize(
    "mime",
    [
        None,
        "text/html",
        "image/png",
        "image/gif",
        "application/vnd.apple.mpegurl",
        "text/x-ffconcat",
        "application/pdf",
    ],
)
def test_unsupported_types_spawn_nothing(ctx, files, mime):
    err = probe_error(ctx, files["av.mp4"], mime)
    assert err.code == errors.UNSUPPORTED_MEDIA
    assert not ctx.processes  # refused before any ffprobe


def test_forced_demuxer_refuses_a_playlist_posing_as_mp4(ctx, tmp_path):
    """Even if a playlist got past the sniffer, ``-f mov`` would not read it as HLS."""
    fake = tmp_path / "x.mp4"
    fake.write_text("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\nfile:///etc/passwd\n")
    err = probe_error(ctx, fake, "video/mp4")
    assert err.code == errors.INVALID_MEDIA and "root:" not in err.message
    concat = tmp_path / "c.mp4"
    concat.write_text("ffconcat version 1.0\nfile '/etc/passwd'\n")
    assert probe_error(ctx, concat, "video/mp4").code == errors.INVALID_MEDIA


def test_corrupt_files(ctx, files, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(bytes(range(256)) * 64)
    data = files["av.mp4"].read_bytes()  # ftyp, then mdat, moov last (no faststart)
    assert data.index(b"moov") > data.index(b"mdat")
    no_moov = tmp_path / "nomoov.mp4"
    no_moov.write_bytes(data[: data.index(b"moov") - 4])
    for path in (empty, noise, no_moov):
        err = probe_error(ctx, path, "video/mp4")
        assert err.code == errors.INVALID_MEDIA, err.message
        assert str(tmp_path) not in err.message  # no server paths in user-facing errors


def test_limits(tmp_path, files):
    small = local_ctx(tmp_path, settings=Settings.load(env={}).replace(max_pixels=160 * 119))
    err = probe_error(small, files["av.mp4"])
    assert err.code == errors.MEDIA_TOO_LARGE and "160x120" in err.message
    short = local_ctx(tmp_path, settings=Settings.load(env={}).replace(max_media_duration=1.0))
    assert probe_error(short, files["av.mp4"]).code == errors.MEDIA_TOO_LARGE
    few = local_ctx(tmp_path, settings=Settings.load(env={}).replace(max_media_streams=1))
    assert probe_error(few, files["av.mp4"]).code == errors.MEDIA_TOO_LARGE
    assert run_probe(few, files["tone.mp3"]).streams == 1


def test_absurd_sample_rate_file(ctx, files):
    err = probe_error(ctx, files["hf.wav"])
    assert err.code == errors.MEDIA_TOO_LARGE and "1000000 Hz" in err.message


@pytest.mark.parametrize(
    "stream,fmt,words",
    [
        ({"codec_type": "video", "width": 30000, "height": 30000}, {}, "30000x30000"),
        ({"codec_type": "video", "width": 64, "height": 64}, {"duration": "36000"}, "36000"),
        ({"codec_type": "audio", "sample_rate": "1000000", "channels": 2}, {}, "1000000 Hz"),
        ({"codec_type": "audio", "sample_rate": "48000", "channels": 255}, {}, "255 audio"),
        (
            {"codec_type": "video", "width": 64, "height": 64, "avg_frame_rate": "100000/1"},
            {},
            "frames per second",
        ),
        (
            {"codec_type": "audio", "sample_rate": "48000", "channels": 2},
            {"nb_streams": 500},
            "500 streams",
        ),
    ],
)
def test_declared_metadata_limits(stream, fmt, words):
    """What ffprobe *reports* is checked before anything decodes (docs/security.md)."""
    data = {"streams": [stream], "format": {"format_name": "x", **fmt}}
    info = probe.parse_probe(data, path=Path("x"), demuxer="mov", mime="video/mp4")
    with pytest.raises(errors.TaskError) as err:
        probe.check_limits(info, data, Settings.load(env={}))
    assert err.value.code == errors.MEDIA_TOO_LARGE and words in err.value.message


def test_no_streams_is_invalid():
    with pytest.raises(errors.TaskError) as err:
        probe.parse_probe(
            {"streams": [{"codec_type": "data"}], "format": {}},
            path=Path("x"),
            demuxer="mov",
            mime="video/mp4",
        )
    assert err.value.code == errors.INVALID_MEDIA


def test_rotation_sources():
    def rot(**video):
        return probe.parse_probe(
            {"streams": [{"codec_type": "video", "width": 4, "height": 2, **video}]},
            path=Path("x"),
            demuxer="mov",
            mime="video/mp4",
        ).rotation

    assert rot(side_data_list=[{"side_data_type": "Display Matrix", "rotation": -90}]) == 270
    assert rot(side_data_list=[{"rotation": 180}]) == 180
    assert rot(tags={"rotate": "90"}) == 270  # the legacy tag is clockwise
    assert rot() == 0
