"""audio.beats and audio.waveform end to end: dragon serve fetching from a local origin."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile
from PIL import Image

from dragon import errors
from tests.support.beats import drum_track, f_measure
from tests.support.media import ffmpeg, image_bytes

SR = 22050


def wav_bytes(y: np.ndarray, rate: int = SR) -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, y, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def sources(tmp_path_factory, origin):
    d = tmp_path_factory.mktemp("analysis")
    y, ref, ref_down = drum_track(120, 4, 12.0, seed=5)
    (d / "drums.wav").write_bytes(wav_bytes(y))
    ffmpeg("-i", str(d / "drums.wav"), "-c:a", "libmp3lame", "-b:a", "128k", str(d / "drums.mp3"))
    t = np.arange(SR) / SR  # 1 s of a loud tone, then 1 s of silence
    half = np.concatenate([0.8 * np.sin(2 * np.pi * 440 * t), np.zeros(SR)]).astype(np.float32)
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-shortest",
        str(d / "clip.mp4"),
    )
    urls = {
        "drums.mp3": origin.add_file("analysis/drums.mp3", d / "drums.mp3"),
        "half.wav": origin.add("analysis/half.wav", wav_bytes(half), "audio/wav"),
        "clip.mp4": origin.add_file("analysis/clip.mp4", d / "clip.mp4"),
        "image.png": origin.add("analysis/image.png", image_bytes(fmt="PNG"), "image/png"),
    }
    return urls, ref, ref_down


def succeed(server, task: dict) -> dict:
    status = server.run_task(task)
    assert status["status"] == "success", status
    return status["result"]


def image_of(server, result: dict) -> Image.Image:
    r = server.get(result["output"])
    assert r.status == 200
    return Image.open(io.BytesIO(r.body))


def test_beats_of_an_mp3(dragon_server, sources):
    urls, ref, ref_down = sources
    result = succeed(dragon_server, {"task_name": "audio.beats", "url": urls["drums.mp3"]})
    assert set(result) >= {"beats", "downbeats", "duration"}
    assert result["duration"] == pytest.approx(12.0, abs=0.1)  # MP3 adds encoder padding
    assert f_measure(ref, result["beats"]) >= 0.9
    assert f_measure(ref_down, result["downbeats"]) >= 0.8
    assert set(result["downbeats"]) <= set(result["beats"])


def test_beats_refuses_what_is_not_audio(dragon_server, sources):
    urls, _, _ = sources
    status = dragon_server.run_task({"task_name": "audio.beats", "url": urls["image.png"]})
    assert status["status"] == "error"
    assert status["error_code"] == errors.UNSUPPORTED_MEDIA


def test_waveform_defaults(dragon_server, sources):
    urls, _, _ = sources
    result = succeed(dragon_server, {"task_name": "audio.waveform", "url": urls["half.wav"]})
    assert result["width"] == 1024 and result["height"] == 60
    assert result["content_type"] == "image/jpeg" and result["duration"] == 2.0
    with image_of(dragon_server, result) as img:
        assert (img.format, img.size) == ("JPEG", (1024, 60))
        gray = np.asarray(img.convert("L"))
    assert gray[:, :500].min() < 60  # black ink on the tone
    assert gray[:, 530:].min() > 200  # nothing on the silence


def test_waveform_parameters(dragon_server, sources):
    urls, _, _ = sources
    result = succeed(
        dragon_server,
        {
            "task_name": "audio.waveform",
            "url": urls["half.wav"],
            "format": "png",
            "width": 300,
            "height": 50,
            "vmargin": 5,
            "fill": "#FF0000",
            "background": "#0000FF",
            "start": 0.5,
            "end": 1.5,
        },
    )
    assert result["content_type"] == "image/png" and result["duration"] == 2.0
    with image_of(dragon_server, result) as img:
        assert (img.format, img.size) == ("PNG", (300, 50))
        pixels = np.asarray(img.convert("RGB"))
    red = np.all(pixels == (255, 0, 0), axis=2)
    blue = np.all(pixels == (0, 0, 255), axis=2)
    assert (red | blue).all()
    assert not red[:5].any() and not red[-5:].any()  # the vertical margin
    columns = red.any(axis=0)
    assert columns[:145].all() and not columns[155:].any()  # 0.5-1.0 s tone, 1.0-1.5 s silence


def test_waveform_of_a_video_soundtrack(dragon_server, sources):
    urls, _, _ = sources
    result = succeed(
        dragon_server,
        {"task_name": "audio.waveform", "url": urls["clip.mp4"], "format": "png", "width": 100},
    )
    assert result["duration"] == pytest.approx(2.0, abs=0.1)
    with image_of(dragon_server, result) as img:
        assert img.size == (100, 60)


@pytest.mark.parametrize(
    "params,field",
    [
        ({"vmargin": 30}, "vmargin"),
        ({"start": 1.0, "end": 0.5}, "end"),
        ({"start": 5.0}, "start"),
        ({"fill": "red"}, "fill"),
        ({"format": "gif"}, "format"),
    ],
)
def test_waveform_parameter_errors(dragon_server, sources, params, field):
    urls, _, _ = sources
    status = dragon_server.run_task(
        {"task_name": "audio.waveform", "url": urls["half.wav"], **params}
    )
    assert status["status"] == "error" and status["error_code"] == errors.PARAMETERS, status
    assert field in status["error"]["parameters"]
