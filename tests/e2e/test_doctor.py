"""``dragon doctor``: every check on this machine, a missing tool, S3 up and down."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.e2e.test_s3_store import CREDENTIALS, moto  # noqa: F401 - the moto fixture
from tests.support.server import free_port


def doctor(data_dir, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dragon", "doctor", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_a_ready_machine_passes(tmp_path):
    out = doctor(tmp_path / "data")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    for name in (
        "ffmpeg",
        "ffprobe",
        "ffmpeg encoders",
        "ffmpeg filters",
        "ImageMagick",
        "fonts",
        "data folder",
        "database",
    ):
        assert any(line.startswith(f"ok    {name}: ") for line in lines), out.stdout
    assert not any(line.startswith("ok    S3") for line in lines)  # not configured
    assert lines[-1] == "all checks passed"


def test_missing_tools_fail_with_how_to_fix(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    out = doctor(tmp_path / "data", {"PATH": str(empty)})
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    for name in ("ffmpeg", "ffprobe", "ImageMagick"):
        i = next(i for i, line in enumerate(lines) if line.startswith(f"FAIL  {name}: "))
        assert "not found" in lines[i]
        assert lines[i + 1].strip().startswith("fix: apt-get install")
    assert any(line.startswith("ok    database") for line in lines)
    assert lines[-1] == "3 problems found"


def test_s3_bucket_reachable_or_not(tmp_path, moto):  # noqa: F811
    url, _ = moto
    env = {**CREDENTIALS, "DRAGON_S3_BUCKET": "dragon-test", "DRAGON_S3_ENDPOINT_URL": url}
    out = doctor(tmp_path / "data", env)
    assert out.returncode == 0, out.stdout
    assert f"ok    S3: bucket 'dragon-test' at {url}" in out.stdout
    out = doctor(tmp_path / "data", {**env, "DRAGON_S3_BUCKET": "no-such-bucket"})
    assert out.returncode == 1
    assert "FAIL  S3: bucket 'no-such-bucket'" in out.stdout
    assert "fix: check DRAGON_S3_BUCKET" in out.stdout
    closed = f"http://127.0.0.1:{free_port()}"
    out = doctor(tmp_path / "data", {**env, "DRAGON_S3_ENDPOINT_URL": closed})
    assert out.returncode == 1 and "FAIL  S3" in out.stdout
