"""Mask filters with their picture: the parent shows where the mask says, during the
filter's window, checked on the frames of real renders through the HTTP API."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.support import media

W, H = 426, 240  # the 240p profile


def frame(path: Path, index: int) -> np.ndarray:
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{index})"]
        + ["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(out, np.uint8).reshape(H, W, 3).astype(int)


def png(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def halves(left: tuple[int, ...], right: tuple[int, ...], mode: str = "RGB") -> bytes:
    picture = Image.new(mode, (320, 240), right)
    ImageDraw.Draw(picture).rectangle((0, 0, 159, 239), fill=left)
    return png(picture)


def render(server, origin, filters: str, tmp_path: Path, name: str) -> Path:
    """A 2 s red picture with ``filters`` inside its effect, over black."""
    red = origin.add("masks/red.png", media.image_bytes(320, 240, (255, 0, 0), "PNG"), "image/png")
    definition = (
        '<movie service="craftsman-1.0"><body>'
        f'<effect type="none" duration="2"><image filename="{red}"/>{filters}</effect>'
        "</body></movie>"
    )
    status = server.run_task(
        {"task_name": "video.create", "definition": definition, "profile": "240p"}
    )
    assert status["status"] == "success", status
    assert not status["result"].get("warnings"), status
    path = tmp_path / f"{name}.mp4"
    path.write_bytes(server.get(status["result"]["export"]).body)
    return path


def sides(picture: np.ndarray) -> tuple[float, float]:
    """Mean red of the left and right thirds."""
    return picture[:, : W // 3, 0].mean(), picture[:, 2 * W // 3 :, 0].mean()


@pytest.mark.parametrize(
    ("kind", "shown"),
    [("lumamask", "left"), ("lumainvmask", "right"), ("mask", "left")],
)
def test_a_brightness_mask_shows_its_parent_where_it_is_light(
    dragon_server, origin, tmp_path, kind, shown
):
    url = origin.add("masks/halves.png", halves((255, 255, 255), (0, 0, 0)), "image/png")
    path = render(
        dragon_server,
        origin,
        f'<filter type="{kind}"><image filename="{url}"/></filter>',
        tmp_path,
        kind,
    )
    left, right = sides(frame(path, 25))
    visible, hidden = (left, right) if shown == "left" else (right, left)
    assert visible > 200 and hidden < 30


def test_alpha_masks_and_a_colour_mask_and_the_window(dragon_server, origin, tmp_path):
    clear_right = origin.add(
        "masks/alpha.png", halves((0, 0, 0, 255), (0, 0, 0, 0), "RGBA"), "image/png"
    )
    colours = origin.add("masks/colours.png", halves((0, 0, 255), (0, 255, 0)), "image/png")
    path = render(
        dragon_server,
        origin,
        f'<filter type="alphamask"><image filename="{clear_right}"/></filter>',
        tmp_path,
        "alpha",
    )
    left, right = sides(frame(path, 25))
    assert left > 200 and right < 30
    path = render(
        dragon_server,
        origin,
        f'<filter type="alphainvmask"><image filename="{clear_right}"/></filter>',
        tmp_path,
        "alphainv",
    )
    left, right = sides(frame(path, 25))
    assert left < 30 and right > 200
    # Green opaque, blue clear: the right half (green) shows; only during the window.
    path = render(
        dragon_server,
        origin,
        '<filter type="mask" opaqueColor="#00FF00" transparentColor="#0000FF" '
        f'margin-start="1"><image filename="{colours}"/></filter>',
        tmp_path,
        "colours",
    )
    assert min(sides(frame(path, 12))) > 200  # before the window: the whole picture
    left, right = sides(frame(path, 37))
    assert left < 30 and right > 200


def test_a_mask_without_a_picture_is_ignored_with_a_warning(dragon_server, origin):
    red = origin.add("masks/red.png", media.image_bytes(320, 240, (255, 0, 0), "PNG"), "image/png")
    definition = (
        '<movie service="craftsman-1.0"><body>'
        f'<effect type="none" duration="1"><image filename="{red}"/>'
        '<filter type="mask"/></effect></body></movie>'
    )
    status = dragon_server.run_task(
        {"task_name": "video.create", "definition": definition, "profile": "240p"}
    )
    assert status["status"] == "success", status
    assert any("mask needs a picture" in w for w in status["result"]["warnings"])
