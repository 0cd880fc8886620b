"""details=true on a failed task: diagnostics (stage, tool run, versions, attempts)."""

from __future__ import annotations

import pytest

from tests.support.media import video


@pytest.fixture(scope="module")
def server(make_server):
    return make_server()


def details(server, key: str) -> dict:
    r = server.request("GET", f"/v2/status?tasks={key}&details=true")
    assert r.status == 200
    [doc] = r.json()
    return doc


def test_failing_ffmpeg_run(server, origin, tmp_path):
    origin.add(
        "diag/clip.mp4", video(tmp_path / "clip.mp4", duration=1.0).read_bytes(), "video/mp4"
    )
    # MP2 has no 512 kbit/s mode at 22.05 kHz: ffmpeg refuses to open the encoder.
    [done] = server.create(
        [
            {
                "task_name": "video.convert",
                "url": origin.url + "/diag/clip.mp4",
                "audio_codec": "mp2",
                "audio_bitrate": 512,
                "sample_rate": 22050,
            }
        ]
    )
    assert done["status"] == "error", done
    assert "diagnostics" not in done  # only with details=true
    diagnostics = details(server, done["key"])["diagnostics"]
    assert diagnostics["stage"] == "process"
    assert diagnostics["attempts"] == 1
    tool = diagnostics["tool"]
    assert tool["argv"][0] == "ffmpeg"
    assert tool["exit_code"] not in (0, None)
    assert "bitrate 512 is not allowed in mp2" in tool["stderr"]
    # Paths are relative to the task folder: no server path leaks.
    assert any(arg.startswith("src0/") for arg in tool["argv"]), tool["argv"]
    assert "output.ts" in tool["argv"]
    for text in (*tool["argv"], tool["stderr"]):
        assert str(server.data_dir) not in text and "/tmp" not in text
    versions = diagnostics["versions"]
    assert versions["ffmpeg"] and versions["pillow"] and versions["imagemagick"]
    assert versions["ffmpeg"][0].isdigit()


def test_failing_download(server, origin):
    [done] = server.create(
        [{"task_name": "video.convert", "url": origin.url + "/diag/missing.mp4?token=abc"}]
    )
    assert done["status"] == "error"
    assert done["error_code"] == "download_failed"
    diagnostics = details(server, done["key"])["diagnostics"]
    assert diagnostics["stage"] == "fetch"
    assert diagnostics["tool"] is None
    assert diagnostics["attempts"] == 1
    assert set(diagnostics["versions"]) >= {"ffmpeg", "imagemagick", "pillow"}


def test_invalid_parameters_fail_at_validate(server):
    [done] = server.create([{"task_name": "video.convert"}])
    assert done["status"] == "error"
    diagnostics = details(server, done["key"])["diagnostics"]
    assert diagnostics["stage"] == "validate"
    assert diagnostics["tool"] is None and diagnostics["attempts"] == 0


def test_success_has_no_diagnostics(server):
    [done] = server.create([{"task_name": "hello", "name": "fine"}])
    assert "diagnostics" not in details(server, done["key"])


def test_a_tool_past_its_memory_limit_shows_its_run(make_server, origin, tmp_path):
    server = make_server(env={"DRAGON_TOOL_MEMORY_BYTES": str(1024**3)})
    clip = video(tmp_path / "tiny.mp4", duration=0.5, size="64x48", rate=10, audio=False)
    url = origin.add_file("diag/tiny-for-memory.mp4", clip)
    # 5792x5792 H.264 needs about 1.3 GB in ffmpeg: more than the 1 GiB allowed here.
    [done] = server.create(
        [{"task_name": "video.convert", "url": url, "width": 5792, "height": 5792, "crop": True}]
    )
    assert done["error_code"] == "resource_limit", done
    diagnostics = details(server, done["key"])["diagnostics"]
    assert diagnostics["stage"] == "process"
    assert diagnostics["tool"]["argv"][0] == "ffmpeg"
    assert diagnostics["tool"]["exit_code"] not in (0, None)
    assert diagnostics["tool"]["stderr"]
