"""Outputs of today on the existing tasks: modern codecs and containers, and loudness.

Every output is checked with ffmpeg's own tools: ffprobe for codecs and containers, the
``ebur128`` filter (a measurement independent of the ``loudnorm`` filter the tasks
normalise with) for loudness. The tasks measure with ``ebur128`` too, so what audio.info
reports is checked against ``loudnorm``'s own measurement, another implementation of EBU
R128.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dragon import errors
from tests.support.media import ffmpeg, ffprobe, image_bytes
from tests.support.server import download as fetch
from tests.support.server import task_result as run


def integrated_loudness(path: Path) -> float:
    """EBU R128 integrated loudness (LUFS) of a file's first audio stream, by ``ebur128``."""
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-i", str(path), "-map", "0:a:0", "-af", "ebur128"]
        + ["-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    summary = out[out.rindex("Summary:") :]
    return float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))


def loudnorm_measurement(path: Path) -> dict[str, float]:
    """``loudnorm``'s measurement of a file's first audio stream: input_i, input_tp, ..."""
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-i", str(path), "-map", "0:a:0"]
        + ["-af", "loudnorm=print_format=json", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    return {k: float(v) for k, v in json.loads(out[out.rindex("{") :]).items() if k[0] == "i"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory, origin) -> dict[str, str]:
    d = tmp_path_factory.mktemp("outputs")
    # Speech-like levels: a quiet tone with a louder middle, and a loud one.
    quiet = (
        "sine=frequency=440:duration=6:sample_rate=44100,"
        "volume='if(between(t,2,4),0.2,0.05)':eval=frame"
    )
    ffmpeg("-f", "lavfi", "-i", quiet, "-c:a", "libmp3lame", str(d / "quiet.mp3"))
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:duration=4,volume=0.9", str(d / "loud.wav"))
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono", "-t", "2", str(d / "silence.wav"))
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=3",
        "-f",
        "lavfi",
        "-i",
        quiet.replace("duration=6", "duration=3"),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-shortest",
        str(d / "clip.mp4"),
    )
    ffmpeg("-f", "lavfi", "-i", "color=black:size=320x240:rate=25:duration=3", str(d / "black.mp4"))
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=9"),
        *("-f", "lavfi", "-i", "sine=frequency=330:duration=9"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest"),
        str(d / "wide.mp4"),
    )
    types = {"mp3": "audio/mpeg", "wav": "audio/wav", "mp4": "video/mp4"}
    urls = {
        p.stem: origin.add_file(f"outputs/{p.name}", p, types[p.suffix[1:]])
        for p in sorted(d.iterdir())
    }
    green = image_bytes(40, 20, (0, 255, 0, 255), "PNG", mode="RGBA")
    urls["logo"] = origin.add("outputs/logo.png", green, "image/png")
    cues = "1\n00:00:01,000 --> 00:00:02,000\n{\\fs300}HELLO WORLD\n\n"
    urls["srt"] = origin.add("outputs/cues.srt", cues.encode(), "application/x-subrip")
    vtt = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<b>HELLO WORLD</b>\n"
    urls["vtt"] = origin.add("outputs/cues.vtt", vtt.encode(), "text/vtt")
    urls["junk"] = origin.add("outputs/junk.srt", b"this is not a subtitle file\n", "text/plain")
    return urls


def frame_at(path: Path, seconds: float) -> np.ndarray:
    """The picture at ``seconds``, RGB, as integers."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", str(seconds), "-i", str(path), "-frames:v", "1"]
        + ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    height = len(out) // (320 * 3)
    return np.frombuffer(out, np.uint8).reshape(height, 320, 3).astype(int)


# -- loudness --------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["quiet", "loud"])
@pytest.mark.parametrize("codec", ["mp3", "aac"])
def test_audio_convert_reaches_the_loudness_asked(dragon_server, sources, tmp_path, source, codec):
    before = run(
        dragon_server, {"task_name": "audio.info", "url": sources[source], "loudness": True}
    )
    result = run(
        dragon_server,
        {"task_name": "audio.convert", "url": sources[source], "codec": codec, "loudness": -16},
    )
    out = fetch(dragon_server, result["output"], tmp_path / f"out.{codec}")
    assert abs(integrated_loudness(out) - -16) <= 1.0
    assert abs(before["loudness"]["integrated"] - -16) > 3  # it had to move
    assert result["duration"] == pytest.approx(6.0 if source == "quiet" else 4.0, abs=0.1)


def test_audio_info_measures_loudness_as_loudnorm_does(dragon_server, sources, tmp_path):
    result = run(
        dragon_server, {"task_name": "audio.info", "url": sources["quiet"], "loudness": True}
    )
    source = fetch(dragon_server, sources["quiet"], tmp_path / "quiet.mp3")
    measured, reference = result["loudness"], loudnorm_measurement(source)
    assert measured["integrated"] == pytest.approx(reference["input_i"], abs=0.5)
    assert measured["true_peak"] == pytest.approx(reference["input_tp"], abs=0.5)
    assert measured["range"] == pytest.approx(reference["input_lra"], abs=1.0)
    assert measured["range"] > 1  # a louder middle: the loudness moves
    plain = run(dragon_server, {"task_name": "audio.info", "url": sources["quiet"]})
    assert "loudness" not in plain  # old clients see what they always saw


def test_silence_has_no_loudness_and_is_left_as_it_is(dragon_server, sources):
    info = run(
        dragon_server, {"task_name": "audio.info", "url": sources["silence"], "loudness": True}
    )
    assert info["loudness"] == {"integrated": None, "true_peak": None, "range": None}
    status = dragon_server.run_task(
        {"task_name": "audio.convert", "url": sources["silence"], "loudness": -16}
    )
    assert status["status"] == "success", status
    assert any("silent" in w for w in status["result"]["warnings"]), status


def test_video_convert_normalises_its_audio(dragon_server, sources, tmp_path):
    result = run(
        dragon_server,
        {"task_name": "video.convert", "url": sources["clip"], "width": 160, "loudness": -14},
    )
    out = fetch(dragon_server, result["output"], tmp_path / "out.mp4")
    assert abs(integrated_loudness(out) - -14) <= 1.0
    assert result["video_codec"] == "h264"


def test_loudness_out_of_range_is_a_parameter_error(dragon_server, sources):
    status = dragon_server.run_task(
        {"task_name": "audio.convert", "url": sources["loud"], "loudness": 3}
    )
    assert status["status"] == "error" and status["error_code"] == errors.PARAMETERS
    assert set(status["error"]["parameters"]) == {"loudness"}


# -- codecs and containers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, video, audio, container, content_type",
    [
        ({"video_codec": "hevc"}, "hevc", "aac", "mov,mp4,m4a,3gp,3g2,mj2", "video/mp4"),
        ({"codec": "vp9"}, "vp9", "opus", "matroska,webm", "video/webm"),
        ({"video_codec": "av1", "crf": 45}, "av1", "aac", "mov,mp4,m4a,3gp,3g2,mj2", "video/mp4"),
        ({"codec": "av1", "container": "webm"}, "av1", "opus", "matroska,webm", "video/webm"),
        ({"audio_codec": "flac"}, "h264", "flac", "matroska,webm", "video/x-matroska"),
        ({"codec": "hevc", "container": "mkv"}, "hevc", "aac", "matroska,webm", "video/x-matroska"),
        (
            {"audio_codec": "mp3", "codec": "vp9"},
            "vp9",
            "mp3",
            "mov,mp4,m4a,3gp,3g2,mj2",
            "video/mp4",
        ),
        (
            {"audio_codec": "opus", "container": "mp4"},
            "h264",
            "opus",
            "mov,mp4,m4a,3gp,3g2,mj2",
            "video/mp4",
        ),
    ],
)
def test_video_convert_codecs_and_containers(
    dragon_server, sources, tmp_path, params, video, audio, container, content_type
):
    result = run(
        dragon_server,
        {"task_name": "video.convert", "url": sources["clip"], "width": 160, **params},
    )
    assert result["content_type"] == content_type
    probed = ffprobe(fetch(dragon_server, result["output"], tmp_path / "out"))
    assert probed["format"]["format_name"] == container
    codecs = {s["codec_type"]: s["codec_name"] for s in probed["streams"]}
    assert codecs == {"video": video, "audio": audio}
    assert float(probed["format"]["duration"]) == pytest.approx(3.0, abs=0.15)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"video_codec": "h264", "container": "webm"}, "container"),
        ({"codec": "vp9", "audio_codec": "aac", "container": "webm"}, "container"),
        ({"codec": "hevc", "audio_codec": "mp2"}, "container"),
        ({"crf": 60}, "crf"),
        ({"codec": "vp9", "video_codec": "hevc"}, "codec"),
        ({"codec": "theora"}, "codec"),
    ],
)
def test_video_convert_refuses_pairs_no_container_carries(dragon_server, sources, params, field):
    status = dragon_server.run_task(
        {"task_name": "video.convert", "url": sources["clip"], **params}
    )
    assert status["status"] == "error" and status["error_code"] == errors.PARAMETERS, status
    assert set(status["error"]["parameters"]) == {field}, status


@pytest.mark.parametrize(
    "codec, name, format_name, content_type",
    [("opus", "opus", "ogg", "audio/ogg"), ("flac", "flac", "flac", "audio/flac")],
)
def test_audio_convert_opus_and_flac(
    dragon_server, sources, tmp_path, codec, name, format_name, content_type
):
    result = run(
        dragon_server, {"task_name": "audio.convert", "url": sources["loud"], "codec": codec}
    )
    assert result["content_type"] == content_type
    probed = ffprobe(fetch(dragon_server, result["output"], tmp_path / "out"))
    assert probed["format"]["format_name"] == format_name
    assert probed["streams"][0]["codec_name"] == name


# -- watermarks and subtitles ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, box",
    [
        # 15 % of 320 is 48 wide (24 high for the 2:1 logo), 2 % margins are 6 pixels.
        ({}, (266, 210, 48, 24)),
        ({"position": "top-left", "size": 0.25, "margin": 0}, (0, 0, 80, 40)),
        ({"position": "center", "size": 0.1}, (144, 112, 32, 16)),
    ],
)
def test_video_convert_draws_the_watermark_where_asked(dragon_server, sources, tmp_path, spec, box):
    result = run(
        dragon_server,
        {
            "task_name": "video.convert",
            "url": sources["black"],
            "width": 320,
            "watermark": {"url": sources["logo"], **spec},
        },
    )
    picture = frame_at(fetch(dragon_server, result["output"], tmp_path / "out.mp4"), 1.0)
    green = (picture[:, :, 1] > 150) & (picture[:, :, 0] < 100)
    rows, columns = np.nonzero(green.any(axis=1))[0], np.nonzero(green.any(axis=0))[0]
    found = (columns.min(), rows.min(), np.ptp(columns) + 1, np.ptp(rows) + 1)
    assert all(abs(a - b) <= 2 for a, b in zip(found, box, strict=True)), (found, box)


def test_watermark_opacity_blends_with_the_picture(dragon_server, sources, tmp_path):
    mark = {"url": sources["logo"], "position": "center", "size": 0.5, "opacity": 0.5}
    result = run(
        dragon_server,
        {"task_name": "video.convert", "url": sources["black"], "width": 320, "watermark": mark},
    )
    picture = frame_at(fetch(dragon_server, result["output"], tmp_path / "out.mp4"), 1.0)
    assert 100 < picture[120, 160, 1] < 160  # half of 255 over black


def test_watermark_that_is_not_an_image_fails_the_task(dragon_server, sources):
    status = dragon_server.run_task(
        {
            "task_name": "video.convert",
            "url": sources["black"],
            "watermark": {"url": sources["srt"]},
        }
    )
    assert status["status"] == "error", status
    assert status["error_code"] in (errors.UNSUPPORTED_MEDIA, errors.INVALID_MEDIA), status


@pytest.mark.parametrize("cues", ["srt", "vtt"])
def test_subtitles_are_burned_in_at_their_times(dragon_server, sources, tmp_path, cues):
    result = run(
        dragon_server,
        {"task_name": "video.convert", "url": sources["black"], "subtitles": sources[cues]},
    )
    out = fetch(dragon_server, result["output"], tmp_path / "out.mp4")
    before, during, after = (frame_at(out, t) for t in (0.5, 1.5, 2.5))
    band = slice(during.shape[0] * 2 // 3, None)  # the bottom third, where captions go
    lit = (during[band].min(axis=2) > 200).sum()
    assert lit > 50, lit  # white text
    assert (before[band].min(axis=2) > 200).sum() == 0
    assert (after[band].min(axis=2) > 200).sum() == 0
    # The file's own styling ({\\fs300}, <b>) is not honoured: the text stays in the band.
    assert (during[: during.shape[0] // 3].min(axis=2) > 200).sum() == 0


def test_subtitles_that_are_not_srt_or_vtt_fail_the_task(dragon_server, sources):
    status = dragon_server.run_task(
        {"task_name": "video.convert", "url": sources["black"], "subtitles": sources["junk"]}
    )
    assert status["status"] == "error" and status["error_code"] == errors.INVALID_MEDIA, status
    assert "SRT or WebVTT" in status["error"], status


# -- adaptive streaming ---------------------------------------------------------------------------


def keyframe_times(url: str) -> list[float]:
    """Times of the video keyframes of an HLS playlist, read over HTTP by ffprobe."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries"]
        + ["packet=pts_time,flags", "-of", "csv=p=0", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [
        round(float(t), 2)
        for t, flags in (line.split(",")[:2] for line in out.split())
        if "K" in flags
    ]


def test_hls_ladder_plays_with_every_rendition_at_its_height(dragon_server, sources):
    result = run(
        dragon_server, {"task_name": "video.convert", "url": sources["wide"], "format": "hls"}
    )
    assert result["output"].endswith("/master.m3u8")
    assert result["content_type"] == "application/vnd.apple.mpegurl"
    assert [(r["height"], r["width"]) for r in result["renditions"]] == [
        (720, 1280),
        (480, 854),
        (360, 640),
    ]  # the default ladder, never above the source's 720 lines
    master = dragon_server.get(result["output"])
    assert master.status == 200
    text = master.body.decode()
    for resolution in ("1280x720", "854x480", "640x360"):
        assert f"RESOLUTION={resolution}" in text
    probed = ffprobe(result["output"])  # over HTTP: the playlists' relative paths resolve
    heights = sorted(s["height"] for s in probed["streams"] if s["codec_type"] == "video")
    assert heights == [360, 480, 720]
    assert any(s["codec_type"] == "audio" for s in probed["streams"])
    keys = [keyframe_times(r["playlist"]) for r in result["renditions"]]
    assert keys[0] == keys[1] == keys[2] and len(keys[0]) >= 3, keys  # aligned, every 4 s


def test_dash_manifest_lists_every_rendition(dragon_server, sources):
    result = run(
        dragon_server,
        {
            "task_name": "video.convert",
            "url": sources["wide"],
            "format": "dash",
            "renditions": [{"height": 480}, {"height": 240, "bitrate": 300}],
        },
    )
    assert result["output"].endswith("/manifest.mpd")
    probed = ffprobe(result["output"])
    heights = sorted(s["height"] for s in probed["streams"] if s["codec_type"] == "video")
    assert heights == [240, 480]
    assert [r["bitrate"] for r in result["renditions"]] == [1400, 300]


def test_a_rendition_taller_than_the_source_is_not_made(dragon_server, sources):
    status = dragon_server.run_task(
        {
            "task_name": "video.convert",
            "url": sources["black"],
            "format": "hls",
            "renditions": [{"height": 1080}, {"height": 240}],
        }
    )
    assert status["status"] == "success", status
    assert [r["height"] for r in status["result"]["renditions"]] == [240]
    assert any("1080p" in w and "not made" in w for w in status["result"]["warnings"])


@pytest.mark.parametrize(
    "params, field",
    [
        ({"format": "hls", "codec": "vp9"}, "codec"),
        ({"format": "dash", "watermark": {"url": "https://example.com/a.png"}}, "watermark"),
        ({"renditions": [{"height": 360}]}, "renditions"),
        ({"format": "hls", "renditions": []}, "renditions"),
        ({"format": "m3u"}, "format"),
    ],
)
def test_ladder_parameter_errors(dragon_server, sources, params, field):
    status = dragon_server.run_task(
        {"task_name": "video.convert", "url": sources["wide"], **params}
    )
    assert status["status"] == "error" and status["error_code"] == errors.PARAMETERS, status
    assert set(status["error"]["parameters"]) == {field}, status


def test_video_create_levels_its_mix_and_exports_a_ladder(dragon_server, sources, tmp_path):
    definition = (
        '<movie service="craftsman-1.0"><body><stack>'
        '<effect type="none" duration="4"><image color="#3366cc"/></effect>'
        f'<audio filename="{sources["quiet"]}" duration=".."/>'
        "</stack></body></movie>"
    )
    result = run(
        dragon_server,
        {
            "task_name": "video.create",
            "definition": definition,
            "profile": "360p",
            "loudness": -16,
            "format": "hls",
        },
    )
    export = fetch(dragon_server, result["export"], tmp_path / "export.mp4")
    assert abs(integrated_loudness(export) - -16) <= 1.0
    assert result["stream"].endswith("/master.m3u8")
    assert result["stream_format"] == "hls"
    assert [r["height"] for r in result["renditions"]] == [360, 240]  # never above the export
    probed = ffprobe(result["stream"])
    heights = sorted(s["height"] for s in probed["streams"] if s["codec_type"] == "video")
    assert heights == [240, 360]
