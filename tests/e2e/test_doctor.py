"""``dragon doctor``: every check on this machine, a missing tool, S3 up and down, the
database it does not create, and the server it asks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.e2e.test_s3_store import CREDENTIALS, moto  # noqa: F401 - the moto fixture
from tests.support.server import free_port


def doctor(
    data_dir, env: dict | None = None, cwd=None, server: str | None = None
) -> subprocess.CompletedProcess:
    """``dragon doctor`` with ``server`` as DRAGON_URL; without, on a local port where
    nothing listens (so no other server of this machine answers)."""
    base = {k: v for k, v in os.environ.items() if k not in ("DRAGON_DATA_DIR", "DRAGON_URL")}
    base["DRAGON_PORT"] = str(free_port())
    if server:
        base["DRAGON_URL"] = server
    return subprocess.run(
        [sys.executable, "-m", "dragon", "doctor"]
        + (["--data-dir", str(data_dir)] if data_dir else []),
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
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
    ):
        assert any(line.startswith(f"ok    {name}: ") for line in lines), out.stdout
    assert not any(line.startswith("ok    S3") for line in lines)  # not configured
    assert any(line.startswith("note  database: no database at") for line in lines)
    assert any(line.startswith("note  server: nothing answers at") for line in lines)
    assert lines[-1] == "all checks passed (2 notes)"


def test_from_another_folder_it_creates_nothing_and_says_where_it_looked(tmp_path):
    out = doctor(None, cwd=tmp_path, server=f"http://127.0.0.1:{free_port()}")
    assert out.returncode == 1, out.stdout  # a server was named and does not answer
    var = tmp_path / "var"
    assert not var.exists()  # no empty database left behind
    assert f"data folder: {var} " in out.stdout
    assert f"(from ./var of the current folder, {tmp_path}: pass --data-dir" in out.stdout
    assert f"note  database: no database at {var / 'dragon.db'}: `dragon serve`" in out.stdout
    assert "FAIL  server: nothing answers at http://127.0.0.1:" in out.stdout
    assert "(from DRAGON_URL)" in out.stdout
    assert "0 accounts" not in out.stdout


def test_a_running_server_and_its_database_are_checked(make_server, tmp_path):
    server = make_server()
    out = doctor(server.data_dir, env=server.env, server=server.url)
    assert out.returncode == 0, out.stdout
    assert "ok    database: " in out.stdout and ", 1 accounts" in out.stdout
    assert f"ok    server: {server.url} (from DRAGON_URL): 0 queued, 0 running" in out.stdout
    # The server `dragon login` saved is the one asked when DRAGON_URL is not set.
    config = tmp_path / "client.json"
    config.write_text(json.dumps({"url": server.url, "secret": server.secret}))
    out = doctor(server.data_dir, env={**server.env, "DRAGON_CONFIG": str(config)})
    assert f"ok    server: {server.url} (from dragon login)" in out.stdout
    server.stop()
    out = doctor(server.data_dir, env=server.env, server=server.url)
    assert out.returncode == 1 and f"FAIL  server: nothing answers at {server.url}" in out.stdout


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
    assert any(line.startswith("note  database") for line in lines)
    assert lines[-1] == "3 problems found (2 notes)"


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
