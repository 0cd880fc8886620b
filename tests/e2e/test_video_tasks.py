"""video.info, video.convert, video.thumb, video.strip and video.reverse, end to end.

The main source is a grey ramp: the frame at time t has luma 50*t (``geq``), so a pixel
tells which instant a thumbnail, a strip cell or a reversed frame came from. Its sound
grows louder with time, so reversed sound is checkable too. Outputs are checked with
ffprobe and pixels, never only by status.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dragon import errors
from dragon.tasks import video_reverse
from tests.support import media as generate
from tests.support.context import local_ctx
from tests.support.media import ffmpeg, ffprobe
from tests.support.server import download as fetch
from tests.support.server import task_result as run

FPS = 25
DURATION = 4.0


def luma_to_gray(y: float) -> float:
    """The RGB grey a limited-range luma decodes to."""
    return (y - 16) * 255 / 219


def gray_at(t: float) -> float:
    return max(0.0, luma_to_gray(50 * t))


def mean(img: Image.Image, box=None) -> float:
    region = img.convert("L").crop(box) if box else img.convert("L")
    return float(np.asarray(region, dtype=np.float64).mean())


def frames(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Every frame's mean grey, in order."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, size[1] * size[0]).mean(axis=1)


def loudness(path: Path) -> np.ndarray:
    """RMS of each 0.5 s of the first audio stream."""
    raw = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(path),
            "-map",
            "0:a:0",
            "-ac",
            "1",
            "-ar",
            "8000",
            "-f",
            "s16le",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    pcm = np.frombuffer(raw, np.int16).astype(np.float64)
    n = len(pcm) // 4000
    return np.sqrt((pcm[: n * 4000].reshape(n, 4000) ** 2).mean(axis=1))


@pytest.fixture(scope="module")
def media(tmp_path_factory, origin):
    d = tmp_path_factory.mktemp("video")
    ramp = f"color=c=black:s=160x120:r={FPS}:d={DURATION},geq=lum='50*T':cb=128:cr=128"
    louder = f"aevalsrc='0.2*t*sin(2*PI*440*t)':s=44100:d={DURATION}"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        ramp,
        "-f",
        "lavfi",
        "-i",
        louder,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "10",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        str(d / "ramp.mp4"),
    )
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        ramp.replace(f"d={DURATION}", "d=1"),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        str(d / "silent.mp4"),
    )
    # Left half white, right half black, stored landscape with a 90 degree display matrix.
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=160x120:r=10:d=1,drawbox=x=0:y=0:w=80:h=120:c=white:t=fill",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        str(d / "lr.mp4"),
    )
    ffmpeg(
        "-i", str(d / "lr.mp4"), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(d / "rot.mp4")
    )
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=c=red@0.5:s=64x48:r=10:d=1,format=argb",
        "-c:v",
        "qtrle",
        str(d / "alpha.mov"),
    )
    # One second of picture, three of sound: the container outlasts the video stream.
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        ramp.replace(f"d={DURATION}", "d=1"),
        "-f",
        "lavfi",
        "-i",
        "sine=duration=3",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        str(d / "tail.mp4"),
    )
    paths = {p.name: p for p in d.iterdir()}
    urls = {name: origin.add_file(f"video/{name}", path) for name, path in paths.items()}
    return paths, urls


def image(server, url: str) -> Image.Image:
    r = server.get(url)
    assert r.status == 200
    return Image.open(io.BytesIO(r.body))


# -- video.info ----------------------------------------------------------------------------


def test_info(dragon_server, media):
    _, urls = media
    result = run(dragon_server, {"task_name": "video.info", "url": urls["ramp.mp4"]})
    assert result == {
        "content_type": "video/mp4",
        "width": 160,
        "height": 120,
        "duration": pytest.approx(DURATION, abs=1 / FPS),
        "frame_rate": 25.0,
        "alpha": False,
        "rotation": 0.0,
        "audio_codec": "aac",
        "video_codec": "h264",
    }
    rot = run(dragon_server, {"task_name": "video.info", "url": urls["rot.mp4"]})
    assert (rot["width"], rot["height"], rot["rotation"]) == (160, 120, 90.0)
    alpha = run(dragon_server, {"task_name": "video.info", "url": urls["alpha.mov"]})
    assert alpha["alpha"] is True and alpha["content_type"] == "video/quicktime"
    assert alpha["audio_codec"] is None and alpha["video_codec"] == "qtrle"


# -- video.convert -------------------------------------------------------------------------


def test_convert_defaults(dragon_server, media, tmp_path):
    _, urls = media
    result = run(dragon_server, {"task_name": "video.convert", "url": urls["ramp.mp4"]})
    out = fetch(dragon_server, result["output"], tmp_path / "out.mp4")
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart
    probe = ffprobe(out, "-count_frames")
    video, audio = probe["streams"]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 160, 120)
    assert (audio["codec_name"], audio["sample_rate"]) == ("aac", "44100")
    assert int(video["nb_read_frames"]) == DURATION * FPS
    assert result["duration"] == pytest.approx(float(probe["format"]["duration"]), abs=0.001)
    assert result["duration"] == pytest.approx(DURATION, abs=1 / FPS + 0.03)
    assert {
        k: result[k]
        for k in (
            "content_type",
            "width",
            "height",
            "original_width",
            "original_height",
            "video_codec",
            "audio_codec",
            "rotation",
            "alpha",
            "frame_rate",
        )
    } == {
        "content_type": "video/mp4",
        "width": 160,
        "height": 120,
        "original_width": 160,
        "original_height": 120,
        "video_codec": "h264",
        "audio_codec": "aac",
        "rotation": 0.0,
        "alpha": False,
        "frame_rate": 25.0,
    }
    # The picture survived: the frame at 2 s is still the grey of 2 s.
    ramp = frames(out, (160, 120))
    assert ramp[50] == pytest.approx(gray_at(2.0), abs=4)


@pytest.mark.parametrize(
    "params,size",
    [
        ({"width": 80}, (80, 60)),
        ({"height": 61}, (80, 60)),  # 81.3 x 61, made even
        ({"width": 64, "height": 64, "crop": True}, (64, 64)),
        ({"width": 64, "height": 64}, (64, 48)),
    ],
)
def test_convert_sizes(dragon_server, media, params, size):
    _, urls = media
    result = run(
        dragon_server,
        {"task_name": "video.convert", "url": urls["silent.mp4"], "crf": 35, **params},
    )
    assert (result["width"], result["height"]) == size
    assert result["audio_codec"] is None  # a source without sound works


def test_convert_rotated_comes_out_upright(dragon_server, media, tmp_path):
    _, urls = media
    result = run(dragon_server, {"task_name": "video.convert", "url": urls["rot.mp4"], "width": 60})
    assert (result["width"], result["height"], result["rotation"]) == (60, 80, 0.0)
    assert (result["original_width"], result["original_height"]) == (160, 120)
    out = fetch(dragon_server, result["output"], tmp_path / "rot.mp4")
    first = frames(out, (60, 80))[0]
    assert first == pytest.approx(127, abs=10)  # half white, half black
    png = tmp_path / "f.png"
    ffmpeg("-i", str(out), "-frames:v", "1", str(png))
    img = Image.open(png)
    # Turned counter-clockwise: the white left half is now the bottom half.
    assert mean(img, (0, 0, 60, 35)) < 30 and mean(img, (0, 45, 60, 80)) > 225


@pytest.mark.parametrize(
    "codec,content_type,container",
    [
        ("wmav2", "video/x-ms-asf", "asf"),
        ("mp2", "video/mp2t", "mpegts"),
        ("mp3", "video/mp4", "mov,mp4,m4a,3gp,3g2,mj2"),
    ],
)
def test_convert_audio_codecs(dragon_server, media, tmp_path, codec, content_type, container):
    _, urls = media
    result = run(
        dragon_server,
        {
            "task_name": "video.convert",
            "url": urls["ramp.mp4"],
            "audio_codec": codec,
            "sample_rate": 22050,
            "audio_bitrate": 64,
            "width": 80,
            "crf": 35,
            "gop": 12,
        },
    )
    assert (result["content_type"], result["audio_codec"]) == (content_type, codec)
    probe = ffprobe(fetch(dragon_server, result["output"], tmp_path / "o"), "-count_frames")
    assert probe["format"]["format_name"] == container
    audio = next(s for s in probe["streams"] if s["codec_type"] == "audio")
    assert (audio["codec_name"], audio["sample_rate"]) == (codec, "22050")


def test_convert_parameter_errors(dragon_server, media):
    _, urls = media
    for bad in ({"audio_codec": "speex"}, {"sample_rate": 8000}, {"crf": 99}, {"width": 0}):
        status = dragon_server.run_task(
            {"task_name": "video.convert", "url": urls["ramp.mp4"], **bad}
        )
        assert status["status"] == "error" and status["error_code"] == errors.PARAMETERS
        assert set(status["error"]["parameters"]) == set(bad)


# -- video.thumb ---------------------------------------------------------------------------


@pytest.mark.parametrize("time", [0.0, 1.0, 2.6, 3.5])
def test_thumb_frame_at_time(dragon_server, media, time):
    _, urls = media
    result = run(
        dragon_server,
        {"task_name": "video.thumb", "url": urls["ramp.mp4"], "time": time, "format": "png"},
    )
    assert result == {
        "width": 160,
        "height": 120,
        "original_width": 160,
        "original_height": 120,
        "duration": pytest.approx(DURATION, abs=1 / FPS),
        "content_type": "image/png",
        "output": result["output"],
    }
    img = image(dragon_server, result["output"])
    assert img.format == "PNG" and img.size == (160, 120)
    assert mean(img) == pytest.approx(gray_at(time), abs=3)


def test_thumb_past_the_end_is_the_last_frame(dragon_server, media):
    _, urls = media
    result = run(
        dragon_server,
        {"task_name": "video.thumb", "url": urls["ramp.mp4"], "time": 1000, "format": "png"},
    )
    last = DURATION - 1 / FPS
    assert mean(image(dragon_server, result["output"])) == pytest.approx(gray_at(last), abs=3)


def test_thumb_after_the_video_stream_ends(dragon_server, media):
    _, urls = media
    result = run(
        dragon_server,
        {"task_name": "video.thumb", "url": urls["tail.mp4"], "time": 2.0, "format": "png"},
    )
    assert result["duration"] == pytest.approx(3.0, abs=0.05)
    assert mean(image(dragon_server, result["output"])) == pytest.approx(gray_at(0.96), abs=3)


def test_thumb_size_crop_quality_poster(dragon_server, media):
    _, urls = media
    base = {"task_name": "video.thumb", "url": urls["ramp.mp4"], "time": 2.0}
    small = run(dragon_server, {**base, "width": 80})
    assert (small["width"], small["height"], small["content_type"]) == (80, 60, "image/jpeg")
    img = image(dragon_server, small["output"])
    assert img.format == "JPEG" and img.size == (80, 60)
    cropped = run(dragon_server, {**base, "width": 50, "height": 50, "crop": True})
    assert image(dragon_server, cropped["output"]).size == (50, 50)
    fitted = run(dragon_server, {**base, "width": 50, "height": 50})
    assert (fitted["width"], fitted["height"]) == (50, 38)

    sizes = {}
    for q in (5, 95):
        r = run(dragon_server, {**base, "quality": q, "format": "jpeg"})
        sizes[q] = len(dragon_server.get(r["output"]).body)
    assert sizes[5] < sizes[95]

    plain = image(dragon_server, run(dragon_server, {**base, "format": "png"})["output"])
    poster = image(
        dragon_server, run(dragon_server, {**base, "format": "png", "poster": True})["output"]
    )
    # A 36 px disc at the centre: white triangle in its middle, darkened frame around it.
    triangle, disc, corner = (77, 57, 84, 63), (65, 56, 71, 64), (0, 0, 20, 20)
    assert mean(poster, triangle) > 220 and mean(plain, triangle) < 110
    assert mean(poster, disc) < mean(plain, disc) - 25
    assert mean(poster, corner) == pytest.approx(mean(plain, corner), abs=1)


def test_thumb_of_rotated_video_is_upright(dragon_server, media):
    _, urls = media
    result = run(
        dragon_server, {"task_name": "video.thumb", "url": urls["rot.mp4"], "format": "png"}
    )
    assert (result["width"], result["height"]) == (120, 160)
    assert (result["original_width"], result["original_height"]) == (160, 120)
    img = image(dragon_server, result["output"])
    assert mean(img, (0, 0, 120, 70)) < 30 and mean(img, (0, 90, 120, 160)) > 225


# -- video.strip ---------------------------------------------------------------------------


def cells(img: Image.Image, cell: tuple[int, int], cols: int, rows: int) -> list[float]:
    w, h = cell
    return [
        mean(img, (c * w + 4, r * h + 4, (c + 1) * w - 4, (r + 1) * h - 4))
        for r in range(rows)
        for c in range(cols)
    ]


def test_strip_defaults(dragon_server, media):
    _, urls = media
    result = run(
        dragon_server, {"task_name": "video.strip", "url": urls["ramp.mp4"], "format": "png"}
    )
    assert result == {
        "count": 10,
        "width": 1600,
        "height": 120,
        "original_width": 160,
        "original_height": 120,
        "duration": pytest.approx(DURATION, abs=1 / FPS),
        "frame_rate": 25.0,
        "content_type": "image/png",
        "output": result["output"],
    }
    img = image(dragon_server, result["output"])
    assert img.size == (1600, 120)
    got = cells(img, (160, 120), 10, 1)
    last = DURATION - 1 / FPS
    want = [gray_at(i * last / 9) for i in range(10)]
    assert got == pytest.approx(want, abs=4)
    assert all(b > a for a, b in zip(got, got[1:], strict=False))


def test_strip_wrap_start_end_and_letterbox(dragon_server, media):
    _, urls = media
    result = run(
        dragon_server,
        {
            "task_name": "video.strip",
            "url": urls["ramp.mp4"],
            "count": 5,
            "wrap": 2,
            "start": 1.0,
            "end": 3.0,
            "width": 40,
            "height": 40,
            "format": "png",
        },
    )
    assert (result["count"], result["width"], result["height"]) == (5, 80, 120)
    img = image(dragon_server, result["output"]).convert("L")
    arr = np.asarray(img, dtype=np.float64)
    # Cells are 40x40 with the 40x30 frame letterboxed on black (5 px bars).
    for i, t in enumerate([1.0, 1.5, 2.0, 2.5, 3.0]):
        x, y = (i % 2) * 40, (i // 2) * 40
        assert arr[y + 8 : y + 32, x + 4 : x + 36].mean() == pytest.approx(gray_at(t), abs=4)
        assert arr[y : y + 4, x : x + 40].max() < 12 and arr[y + 36 : y + 40, x : x + 40].max() < 12
    assert arr[80:120, 40:80].max() < 12  # the sixth cell is empty


def test_strip_more_frames_than_one_process_takes(dragon_server, media):
    """12 frames: two ffmpeg batches (10 + 2) laid out 5 per row."""
    _, urls = media
    result = run(
        dragon_server,
        {
            "task_name": "video.strip",
            "url": urls["ramp.mp4"],
            "count": 12,
            "wrap": 5,
            "height": 30,
            "format": "png",
        },
    )
    assert (result["count"], result["width"], result["height"]) == (12, 200, 90)
    got = cells(image(dragon_server, result["output"]), (40, 30), 5, 3)
    last = DURATION - 1 / FPS
    assert got[:12] == pytest.approx([gray_at(i * last / 11) for i in range(12)], abs=4)
    assert max(got[12:]) < 3  # the three empty cells


def test_strip_crop_and_jpeg(dragon_server, media):
    _, urls = media
    result = run(
        dragon_server,
        {
            "task_name": "video.strip",
            "url": urls["rot.mp4"],
            "count": 3,
            "width": 30,
            "height": 30,
            "crop": True,
        },
    )
    assert (result["width"], result["height"], result["content_type"]) == (90, 30, "image/jpeg")
    img = image(dragon_server, result["output"])
    assert img.format == "JPEG" and img.size == (90, 30)
    # Upright and centre-cropped from 120x160: the black top and white bottom halves remain.
    assert mean(img, (0, 0, 30, 10)) < 40 and mean(img, (0, 20, 30, 30)) > 215


# -- video.reverse -------------------------------------------------------------------------


def check_reversed(out: Path, src: Path, size: tuple[int, int]) -> None:
    forward, backward = frames(src, (160, 120)), frames(out, size)
    assert len(backward) == len(forward)
    assert backward[0] == pytest.approx(forward[-1], abs=3)
    assert backward[-1] == pytest.approx(forward[0], abs=3)
    assert np.abs(backward[::-1] - forward).max() < 4  # every frame once, in reverse order
    louder, quieter = loudness(src), loudness(out)
    assert louder[1] < louder[-1] and quieter[0] > quieter[-2]
    assert quieter == pytest.approx(louder[::-1], rel=0.1, abs=300)


def test_reverse_end_to_end(dragon_server, media, tmp_path):
    paths, urls = media
    result = run(dragon_server, {"task_name": "video.reverse", "url": urls["ramp.mp4"]})
    assert result["duration"] == pytest.approx(DURATION, abs=1 / FPS + 0.03)
    out = fetch(dragon_server, result["output"], tmp_path / "rev.mp4")
    assert ffprobe(out, "-count_frames")["format"]["format_name"].startswith("mov")
    check_reversed(out, paths["ramp.mp4"], (160, 120))


def test_reverse_in_parts_and_chunks_keeps_every_frame(tmp_path, media, monkeypatch):
    """17-frame parts and 1.5 s chunks: three chunk processes of two parts each, so the
    output has joins inside a chunk (segment muxer) and between chunks (separate seeks)."""
    paths, _ = media
    budget = 17 * 80 * 60 * 3 // 2
    monkeypatch.setattr(video_reverse, "CHUNK_SECONDS", 1.5)
    chunks = video_reverse.plan(DURATION, FPS, (80, 60), budget)
    assert [(c.parts, c.part_frames) for c in chunks] == [(2, 17)] * 3
    ctx = local_ctx(
        tmp_path,
        params={
            "url": "u",
            "width": 80,
            "height": None,
            "crop": False,
            "video_codec": "h264",
            "video_bitrate": None,
            "crf": 20,
            "gop": 250,
        },
        files={"u": paths["ramp.mp4"]},
        reverse_segment_bytes=budget,
    )
    result = asyncio.run(video_reverse.run(ctx))
    assert result["duration"] == pytest.approx(DURATION, abs=1 / FPS + 0.03)
    assert (result["width"], result["height"]) == (80, 60)
    assert ctx._reporter.values[-1] == pytest.approx(95.0)
    assert sorted(p.name for p in ctx.tmpdir.glob("c*_*.mp4")) == [
        f"c{c:04d}_{j:03d}.mp4" for c in range(3) for j in range(2)
    ]
    check_reversed(Path(ctx.outputs["output"]), paths["ramp.mp4"], (80, 60))


def test_plan_cuts_between_frames():
    chunks = video_reverse.plan(10.0, 25.0, (1920, 1080), budget=100 * 3110400, chunk_seconds=8.0)
    assert [(c.parts, c.part_frames) for c in chunks] == [(2, 100), (1, 100)]
    assert (chunks[0].start, chunks[0].first_frame) == (0.0, 0.0)
    assert chunks[0].length == pytest.approx(7.98) and chunks[0].audio_cuts() == [4.0]
    assert chunks[1].start == pytest.approx(7.98) and chunks[1].length == pytest.approx(2.04)
    assert chunks[1].frames == 50
    assert chunks[1].first_frame == pytest.approx(0.02)
    long = video_reverse.plan(100.0, 30.0, (64, 48))  # parts of 10 s, chunks of 60 s
    assert [(c.parts, c.part_frames) for c in long] == [(6, 300), (4, 300)]


def test_reverse_trusts_no_more_frames_than_the_declared_duration(dragon_server, origin, tmp_path):
    import struct

    path = generate.video(tmp_path / "long.mkv", duration=12, size="64x48", audio=True)
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Segment Info > Duration, an 8-byte float (ms)
    assert at > 0
    data[at + 3 : at + 11] = struct.pack(">d", 1000.0)  # claims 1 s, holds 12 s
    url = origin.add("lying-duration.mkv", bytes(data))
    doc = dragon_server.run_task({"task_name": "video.reverse", "url": url})
    assert doc["status"] == "success", doc
    assert doc["result"]["duration"] <= 1.5


def test_convert_reports_ffmpeg_progress_on_the_stream(dragon_server, origin, tmp_path):
    path = generate.video(tmp_path / "long.mp4", duration=30, size="640x360", audio=False)
    url = origin.add("progress-source.mp4", path.read_bytes())
    r = dragon_server.request(
        "POST",
        "/v2/create_stream",
        {"tasks": [{"task_name": "video.convert", "url": url, "width": 640, "crf": 18}]},
    )
    lines = r.lines()
    assert lines[-1]["status"] == "success"
    seen = [d["progress"] for d in lines[1:] if d["status"] == "executing"]
    inside = [p for p in seen if 0 < p < 100]
    assert inside, seen  # ffmpeg's -progress reached the status while it encoded
    assert inside == sorted(inside)
