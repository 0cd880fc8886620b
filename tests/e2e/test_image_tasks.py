"""image.info, image.thumb, image.strip and image.gif end to end through a real server.

Sources are generated here with Pillow and served by the local ``origin``; outputs are
downloaded from the store and checked pixel by pixel with Pillow.
"""

from __future__ import annotations

import io
import os
import uuid

import numpy as np
import pytest
from PIL import Image

from tests.support.images import BLACK, BLUE, GREEN, RED, close, halves, truncated_jpeg
from tests.support.media import png_header


def encode(im: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return buf.getvalue()


def serve(origin, data: bytes, suffix: str = ".png", ctype: str | None = "image/png") -> str:
    return origin.add(f"img/{uuid.uuid4().hex}{suffix}", data, ctype)


def ok(status: dict) -> dict:
    assert status["status"] == "success", status
    return status["result"]


def failed(status: dict, code: str) -> str:
    assert status["status"] == "error", status
    assert status["error_code"] == code, status
    return status["error"] if isinstance(status["error"], str) else str(status["error"])


def output(server, result: dict, content_type: str) -> Image.Image:
    r = server.get(result["output"])
    assert r.status == 200
    assert r.headers["Content-Type"].startswith(content_type)
    im = Image.open(io.BytesIO(r.body))
    im.load()
    return im


# -- image.info ---------------------------------------------------------------------------


def test_info_reports_exif(dragon_server, origin):
    exif = Image.Exif()
    exif[0x010F] = "dragon-test"
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0x9003] = "2022:03:04 05:06:07"
    exif.get_ifd(0x8769)[0x9209] = 1
    url = serve(
        origin, encode(Image.new("RGB", (64, 48), RED), "JPEG", exif=exif), ".jpg", "image/jpeg"
    )
    result = ok(dragon_server.run_task({"task_name": "image.info", "url": url}))
    assert result == {
        "content_type": "image/jpeg",
        "type": "image",
        "width": 64,
        "height": 48,
        "alpha": False,
        "exif_orientation": 6,
        "rotation": 90.0,
        "date_time": "2022:03:04 05:06:07",
        "flash": True,
        "focal_length": None,
        "iso_speed": None,
        "exposure_time": None,
    }


def test_info_png_alpha_without_exif(dragon_server, origin):
    url = serve(origin, encode(Image.new("RGBA", (10, 7), (1, 2, 3, 4))), ctype=None)
    result = ok(dragon_server.run_task({"task_name": "image.info", "url": url}))
    assert (result["content_type"], result["width"], result["height"]) == ("image/png", 10, 7)
    assert result["alpha"] is True
    assert result["exif_orientation"] is None and result["rotation"] is None


# -- image.thumb --------------------------------------------------------------------------


def test_thumb_exif_crop_rotation_and_poster(dragon_server, origin):
    # Stored as a camera held sideways would (orientation 6): upright it is red over blue.
    stored = halves(RED, BLUE, (120, 60)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    url = serve(origin, encode(stored, "JPEG", quality=95, exif=exif), ".jpg", "image/jpeg")

    upright = ok(dragon_server.run_task({"task_name": "image.thumb", "url": url, "width": 60}))
    assert upright == {
        "width": 60,
        "height": 30,
        "original_width": 120,
        "original_height": 60,
        "output": upright["output"],
    }
    im = output(dragon_server, upright, "image/jpeg")
    assert im.size == (60, 30)
    assert close(im.getpixel((30, 3)), RED) and close(im.getpixel((30, 27)), BLUE)

    turned = ok(
        dragon_server.run_task(
            {
                "task_name": "image.thumb",
                "url": url,
                "width": 40,
                "height": 40,
                "crop": True,
                "rotation": 90,
                "format": "png",
            }
        )
    )
    im = output(dragon_server, turned, "image/png")
    assert im.size == (40, 40) and (turned["width"], turned["height"]) == (40, 40)
    # 90 degrees counter-clockwise: the red top half is now on the left
    assert close(im.getpixel((3, 20)), RED) and close(im.getpixel((36, 20)), BLUE)

    badged = ok(
        dragon_server.run_task(
            {
                "task_name": "image.thumb",
                "url": url,
                "width": 40,
                "height": 40,
                "crop": True,
                "rotation": 90,
                "format": "png",
                "poster": True,
            }
        )
    )
    badge = output(dragon_server, badged, "image/png")
    assert not close(badge.getpixel((20, 20)), im.getpixel((20, 20)), 60)
    for xy in ((0, 0), (39, 0), (0, 39), (39, 39)):
        assert badge.getpixel(xy) == im.getpixel(xy)


@pytest.mark.parametrize("fmt, ctype", [("gif", "image/gif"), ("webp", "image/webp")])
def test_thumb_other_formats(dragon_server, origin, fmt, ctype):
    url = serve(origin, encode(halves(size=(80, 40))))
    result = ok(
        dragon_server.run_task(
            {"task_name": "image.thumb", "url": url, "height": 20, "format": fmt}
        )
    )
    im = output(dragon_server, result, ctype)
    assert im.size == (40, 20) and im.format == fmt.upper()
    assert close(im.convert("RGB").getpixel((20, 3)), RED)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"width": 20000}, "width"),
        ({"height": 0}, "height"),
        ({"rotation": 45}, "rotation"),
        ({"format": "bmp"}, "format"),
        ({"url": "file:///etc/passwd"}, "url"),
    ],
)
def test_thumb_parameter_errors(dragon_server, origin, params, field):
    url = serve(origin, encode(halves(size=(80, 40))))
    task = {"task_name": "image.thumb", "url": url, **params}
    status = dragon_server.run_task(task)
    assert status["status"] == "error" and status["error_code"] == "parameters"
    assert field in status["error"]["parameters"]


# -- bad input ----------------------------------------------------------------------------

PAYLOADS = {
    "svg": b'<?xml version="1.0" standalone="no"?>\n<svg width="100" height="100" '
    b'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
    b'<image xlink:href="text:/etc/passwd" width="100" height="100"/></svg>',
    "mvg": b"push graphic-context\nviewbox 0 0 640 480\n"
    b"fill 'url(https://127.0.0.1/x.jpg\";touch \"/tmp/pwned)'\npop graphic-context\n",
    "msl": b'<?xml version="1.0" encoding="UTF-8"?>\n<image>\n<read filename="/etc/passwd" />'
    b'\n<write filename="/tmp/pwned" />\n</image>\n',
}


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_script_payloads_are_unsupported(dragon_server, origin, kind):
    url = serve(origin, PAYLOADS[kind], ".jpg", "image/jpeg")
    for task in (
        {"task_name": "image.info", "url": url},
        {"task_name": "image.thumb", "url": url, "width": 10},
        {"task_name": "image.gif", "images": [url]},
    ):
        message = failed(dragon_server.run_task(task), "unsupported_media")
        assert "root:" not in message
    assert not os.path.exists("/tmp/pwned")


RANDOM = np.random.default_rng(2).integers(0, 256, 5000, dtype=np.uint8).tobytes()


@pytest.mark.parametrize(
    "data", [truncated_jpeg(), RANDOM, b""], ids=["truncated-jpeg", "random", "empty"]
)
def test_broken_files_are_invalid_media(dragon_server, origin, data):
    url = serve(origin, data, ".jpg", "image/jpeg")
    failed(
        dragon_server.run_task({"task_name": "image.thumb", "url": url, "width": 10}),
        "invalid_media",
    )
    status = dragon_server.run_task({"task_name": "image.info", "url": url})
    if data.startswith(b"\xff\xd8"):
        ok(status)  # the header of a truncated JPEG is intact: info does not decode pixels
    else:
        failed(status, "invalid_media")


@pytest.fixture(scope="module")
def small_pixels_server(make_server):
    return make_server(env={"DRAGON_MAX_PIXELS": "1000000"})


def test_decompression_bomb_is_refused_before_decoding(small_pixels_server, origin):
    bomb = serve(origin, png_header(20000, 20000))
    fine = serve(origin, encode(halves(size=(80, 40))))
    message = failed(
        small_pixels_server.run_task({"task_name": "image.thumb", "url": bomb, "width": 100}),
        "image_too_large",
    )
    assert bomb in message and "1000000 pixels" in message
    failed(
        small_pixels_server.run_task({"task_name": "image.strip", "urls": [fine, bomb]}),
        "image_too_large",
    )
    failed(
        small_pixels_server.run_task({"task_name": "image.gif", "images": [fine, bomb]}),
        "image_too_large",
    )
    # an output beyond max_pixels is refused at validation
    status = small_pixels_server.run_task(
        {"task_name": "image.thumb", "url": fine, "width": 2000, "height": 2000}
    )
    assert status["error_code"] == "parameters" and "width" in status["error"]["parameters"]


# -- image.strip --------------------------------------------------------------------------


def test_strip_wraps_and_letterboxes(dragon_server, origin):
    urls = [serve(origin, encode(Image.new("RGB", (40, 20), c))) for c in (RED, GREEN, BLUE)]
    result = ok(
        dragon_server.run_task(
            {
                "task_name": "image.strip",
                "urls": urls,
                "width": 20,
                "height": 20,
                "wrap": 2,
                "format": "png",
            }
        )
    )
    assert {k: result[k] for k in ("count", "width", "height", "content_type")} == {
        "count": 3,
        "width": 40,
        "height": 40,
        "content_type": "image/png",
    }
    im = output(dragon_server, result, "image/png")
    assert im.size == (40, 40) and im.mode == "RGBA"
    assert im.getpixel((10, 10)) == (*RED, 255) and im.getpixel((30, 10)) == (*GREEN, 255)
    assert im.getpixel((10, 30)) == (*BLUE, 255)
    assert im.getpixel((10, 2))[3] == 0 and im.getpixel((30, 30))[3] == 0  # letterbox, empty

    cropped = ok(
        dragon_server.run_task(
            {"task_name": "image.strip", "urls": urls, "width": 20, "height": 20, "crop": True}
        )
    )
    im = output(dragon_server, cropped, "image/jpeg")
    assert im.size == (60, 20) and cropped["content_type"] == "image/jpeg"
    assert close(im.getpixel((10, 1)), RED) and close(im.getpixel((50, 18)), BLUE)


def test_strip_failing_url_is_named(dragon_server, origin):
    good = serve(origin, encode(halves(size=(80, 40))))
    missing = origin.url + "/img/nothing-here.png"
    message = failed(
        dragon_server.run_task({"task_name": "image.strip", "urls": [good, missing]}),
        "download_failed",
    )
    assert missing in message
    broken = serve(origin, b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    message = failed(
        dragon_server.run_task({"task_name": "image.strip", "urls": [good, broken]}),
        "invalid_media",
    )
    assert broken in message


# -- image.gif ----------------------------------------------------------------------------


def test_gif_frames_durations_loop(dragon_server, origin):
    urls = [serve(origin, encode(halves(c, BLACK, (60, 40)))) for c in (RED, GREEN, BLUE)]
    result = ok(
        dragon_server.run_task(
            {"task_name": "image.gif", "images": urls, "frame_duration": 0.25, "loop": 2}
        )
    )
    gif = output(dragon_server, result, "image/gif")
    assert gif.n_frames == 3 and gif.info["loop"] == 2
    for i, color in enumerate((RED, GREEN, BLUE)):
        gif.seek(i)
        assert gif.info["duration"] == 250
        frame = gif.convert("RGB")
        assert frame.size == (60, 40)
        assert close(frame.getpixel((30, 5)), color) and close(frame.getpixel((30, 35)), BLACK)

    once = ok(
        dragon_server.run_task(
            {"task_name": "image.gif", "images": urls[:2], "loop": -1, "width": 30}
        )
    )
    gif = output(dragon_server, once, "image/gif")
    assert gif.n_frames == 2 and "loop" not in gif.info and gif.size == (30, 20)


def test_gif_parameter_errors(dragon_server, origin):
    url = serve(origin, encode(halves(size=(80, 40))))
    for params, field in (
        ({"images": []}, "images"),
        ({"images": [url], "loop": -2}, "loop"),
        ({"images": [url], "frame_duration": 0}, "frame_duration"),
    ):
        status = dragon_server.run_task({"task_name": "image.gif", **params})
        assert status["error_code"] == "parameters" and field in status["error"]["parameters"]
