"""Filters that read a picture inside them (masks, maskedBlur, displacement), the
panoramic adapter and motionInterpolate, checked on the frames of real renders through
the HTTP API."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.support import media
from tests.support.movies import H, W, frame, movie
from tests.support.movies import render as render_movie


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
    body = f'<effect type="none" duration="2"><image filename="{red}"/>{filters}</effect>'
    return render_movie(server, body, tmp_path, name)


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
    body = (
        f'<effect type="none" duration="1"><image filename="{red}"/><filter type="mask"/></effect>'
    )
    status = dragon_server.run_task(
        {"task_name": "video.create", "definition": movie(body), "profile": "240p"}
    )
    assert status["status"] == "success", status
    assert any("needs a picture" in w for w in status["result"]["warnings"])


def detail(picture: np.ndarray) -> float:
    """Mean difference between horizontal neighbours: high for sharp stripes."""
    return float(np.abs(np.diff(picture.mean(axis=2), axis=1)).mean())


def test_masked_blur_blurs_where_its_picture_is_light(dragon_server, origin, tmp_path):
    stripes = np.zeros((240, 320, 3), np.uint8)
    stripes[:, (np.arange(320) // 4) % 2 == 1] = 255
    striped = origin.add("masks/stripes.png", png(Image.fromarray(stripes)), "image/png")
    url = origin.add("masks/halves.png", halves((255, 255, 255), (0, 0, 0)), "image/png")
    body = (
        f'<effect type="none" duration="2"><image filename="{striped}"/>'
        f'<filter type="maskedBlur" radius="0.02" margin-start="1"><image filename="{url}"/>'
        "</filter></effect>"
    )
    path = render_movie(dragon_server, body, tmp_path, "masked-blur")
    before, during = frame(path, 12), frame(path, 37)
    left, right = slice(10, W // 3), slice(2 * W // 3, W - 10)
    assert detail(during[:, left]) < 0.3 * detail(before[:, left])  # light: blurred
    assert detail(during[:, right]) > 0.9 * detail(before[:, right])  # dark: sharp


def test_displacement_moves_pixels_by_its_picture(dragon_server, origin, tmp_path):
    two = origin.add("masks/two.png", halves((255, 0, 0), (0, 0, 255)), "image/png")
    # Red 255: each pixel read 0.05 of the height (12 pixels) further right; green 128: still.
    push = origin.add(
        "masks/push.png", media.image_bytes(64, 48, (255, 128, 0), "PNG"), "image/png"
    )
    body = (
        f'<effect type="none" duration="2"><image filename="{two}"/>'
        f'<filter type="displacement" margin-start="1"><image filename="{push}"/></filter>'
        "</effect>"
    )
    path = render_movie(dragon_server, body, tmp_path, "displaced")

    def edge(picture: np.ndarray) -> int:
        row = picture[H // 2]
        return int(np.argmax(row[:, 2] > row[:, 0]))  # the first blue column

    before, during = edge(frame(path, 12)), edge(frame(path, 37))
    assert 9 <= before - during <= 15  # the edge moved 12 pixels to the left


def test_motion_interpolate_makes_the_frames_between_a_clips_own(dragon_server, origin, tmp_path):
    """A 5 frames a second clip in a 25 frames a second movie: repeated, each of its frames
    shows five times; interpolated, every movie frame differs from the one before."""
    clip = media.video(tmp_path / "slow.mp4", duration=2.0, rate=5, audio=False)
    url = origin.add_file("masks/slow.mp4", clip, "video/mp4")

    def changes(filters: str) -> int:
        body = f'<effect type="none" duration="1.6"><video filename="{url}"/>{filters}</effect>'
        path = render_movie(dragon_server, body, tmp_path, f"clip{len(filters)}")
        frames = [frame(path, i) for i in range(5, 25)]
        return sum(np.abs(b - a).mean() > 0.5 for a, b in zip(frames, frames[1:], strict=False))

    assert changes("") <= 5  # one change per clip frame
    assert changes('<filter type="motionInterpolate"/>') >= 15


def test_a_panoramic_picture_is_panned_across(dragon_server, origin, tmp_path):
    """A picture three times wider than tall, red, green and blue thirds: panned from its
    left (red) to its right (blue) over the effect, never squeezed."""
    wide = Image.new("RGB", (900, 300), (0, 0, 255))
    ImageDraw.Draw(wide).rectangle((0, 0, 299, 299), fill=(255, 0, 0))
    ImageDraw.Draw(wide).rectangle((300, 0, 599, 299), fill=(0, 255, 0))
    url = origin.add("masks/wide.png", png(wide), "image/png")
    for place in ('adapter="panoramicAdapter"', ""):
        inner = "" if place else '<filter type="panoramicAdapter"/>'
        body = f'<effect type="none" duration="4" {place}><image filename="{url}"/>{inner}</effect>'
        path = render_movie(dragon_server, body, tmp_path, f"panned{len(inner)}")
        first, middle, last = frame(path, 0), frame(path, 50), frame(path, 99)
        assert first[:, :100, 0].mean() > 200  # its left end: red
        assert middle[:, W // 2 - 20 : W // 2 + 20, 1].mean() > 200  # its middle: green
        assert last[:, -100:, 2].mean() > 200  # its right end: blue
        # Not squeezed: the picture is drawn 240 high, so its green third is 240 wide.
        row = middle[H // 2]
        green = np.nonzero((row[:, 1] > 150) & (row[:, 0] < 100) & (row[:, 2] < 100))[0]
        assert 220 <= green.size <= 260
