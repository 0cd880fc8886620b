"""video.create end to end: render a definition through a real server's API and read the
movie's frames back (decoded by ffmpeg, exact frame numbers)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

W, H = 426, 240  # the 240p profile the tests render at


def movie(body: str) -> str:
    return f'<movie service="craftsman-1.0"><body>{body}</body></movie>'


def render(server, body: str, tmp_path: Path, name: str, warnings: bool = False) -> Path:
    """The movie of ``body`` at 240p, rendered and fetched; it must succeed, and (unless
    ``warnings``) without warnings."""
    status = server.run_task(
        {"task_name": "video.create", "definition": movie(body), "profile": "240p"}
    )
    assert status["status"] == "success", status
    if not warnings:
        assert not status["result"].get("warnings"), status["result"]
    response = server.get(status["result"]["export"])
    assert response.status == 200
    path = tmp_path / f"{name}.mp4"
    path.write_bytes(response.body)
    return path


def frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` of a 240p video as an RGB array of ints."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{index})"]
        + ["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(out, np.uint8).reshape(H, W, 3).astype(int)


def frames(path: Path) -> np.ndarray:
    """Every frame of a 240p video as RGB arrays of ints."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, H, W, 3).astype(int)
