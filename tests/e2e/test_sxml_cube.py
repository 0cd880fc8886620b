"""``<transition type="cube">``: the two pictures are two faces of a cube turning in
perspective, checked on the frames of real renders through the HTTP API."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.support import media

FPS = 25
W, H = 426, 240  # the 240p profile


def frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` of a video as an RGB array."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{index})"]
        + ["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(out, np.uint8).reshape(H, W, 3).astype(int)


def render(server, origin, direction: str, tmp_path: Path) -> Path:
    """Red for 2 s, then blue, through a 1 s cube turn (frames 25 to 49)."""
    red = origin.add("cube/red.png", media.image_bytes(320, 240, (255, 0, 0), "PNG"), "image/png")
    blue = origin.add("cube/blue.png", media.image_bytes(320, 240, (0, 0, 255), "PNG"), "image/png")
    body = (
        f'<effect type="none" duration="2"><image filename="{red}"/></effect>'
        f'<transition type="cube" direction="{direction}" duration="1"/>'
        f'<effect type="none" duration="2"><image filename="{blue}"/></effect>'
    )
    definition = f'<movie service="craftsman-1.0"><body>{body}</body></movie>'
    status = server.run_task(
        {"task_name": "video.create", "definition": definition, "profile": "240p"}
    )
    assert status["status"] == "success", status
    result = status["result"]
    assert result["duration"] == pytest.approx(3.0)
    assert not result.get("warnings"), result
    response = server.get(result["export"])
    assert response.status == 200
    path = tmp_path / f"cube-{direction}.mp4"
    path.write_bytes(response.body)
    return path


def red(picture: np.ndarray) -> np.ndarray:
    return (picture[:, :, 0] > 150) & (picture[:, :, 2] < 100)


def blue(picture: np.ndarray) -> np.ndarray:
    return (picture[:, :, 2] > 150) & (picture[:, :, 0] < 100)


def test_a_cube_turns_left_in_perspective(dragon_server, origin, tmp_path):
    path = render(dragon_server, origin, "left", tmp_path)
    assert red(frame(path, 20)).mean() > 0.95  # before the turn: the red face, whole
    assert blue(frame(path, 55)).mean() > 0.95  # after it: the blue one
    middle = frame(path, 37)
    r, b = red(middle), blue(middle)
    columns_r, columns_b = np.nonzero(r.any(axis=0))[0], np.nonzero(b.any(axis=0))[0]
    # Red (outgoing) on the left, blue (incoming) on the right, meeting at one edge.
    assert columns_r.size and columns_b.size
    assert columns_r.max() < columns_b.min() + 3
    assert 0.3 * W < columns_b.min() < 0.7 * W
    # Perspective: the shared edge is nearest, so taller than either far edge; above and
    # below the far edges, black.
    seam = columns_b.min()
    height = lambda mask, x: int(mask[:, x].sum())  # noqa: E731
    near = max(height(r, seam - 3), height(b, seam + 3))
    assert near > height(r, columns_r.min() + 2) + 10
    assert near > height(b, columns_b.max() - 2) + 10
    assert middle[:8, columns_r.min() + 2].max() < 40  # black above the far left edge
    # The turn moves on: a quarter in, red is the wider face; three quarters in, blue is.
    early, late = frame(path, 29), frame(path, 45)
    assert red(early).sum() > 2 * blue(early).sum()
    assert blue(late).sum() > 2 * red(late).sum()


def test_a_cube_turns_up_about_the_horizontal_axis(dragon_server, origin, tmp_path):
    path = render(dragon_server, origin, "up", tmp_path)
    middle = frame(path, 37)
    r, b = red(middle), blue(middle)
    rows_r, rows_b = np.nonzero(r.any(axis=1))[0], np.nonzero(b.any(axis=1))[0]
    assert rows_r.size and rows_b.size
    assert rows_r.max() < rows_b.min() + 3  # red above, blue below
    seam = rows_b.min()
    width = lambda mask, y: int(mask[y, :].sum())  # noqa: E731
    near = max(width(r, seam - 3), width(b, seam + 3))
    assert near > width(r, rows_r.min() + 2) + 10
    assert near > width(b, rows_b.max() - 2) + 10
