"""The image outputs beyond the original API, end to end through a real server: smart crop
and watermarks on image.thumb and image.strip, animated WebP from image.gif and
video.strip, and video.thumb's ``pick: "best"``.

Sources are generated here (Pillow, ffmpeg lavfi) and served by the local ``origin``;
outputs are downloaded and measured with Pillow and numpy.
"""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest
from PIL import Image, features

from tests.support.media import ffmpeg

BACKGROUND = (90, 110, 130)
SUBJECT = (250, 250, 250)
RED = (230, 20, 20)
BLUE = (20, 20, 230)


def encode(im: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def serve(origin, im: Image.Image) -> str:
    return origin.add(f"img/{uuid.uuid4().hex}.png", encode(im), "image/png")


def ok(status: dict) -> dict:
    assert status["status"] == "success", status
    return status["result"]


def download(server, url: str) -> Image.Image:
    r = server.get(url)
    assert r.status == 200
    im = Image.open(io.BytesIO(r.body))
    im.load()
    return im


def bad_parameter(server, task: dict, field: str) -> None:
    status = server.run_task(task)
    assert status["status"] == "error" and status["error_code"] == "parameters", status
    assert field in status["error"]["parameters"], status


# -- smart crop -----------------------------------------------------------------------------


def subject_near_edge() -> Image.Image:
    """A flat 600x200 picture with a 40x40 bright square near its right edge: a square
    crop of the centre (x 200 to 400) cannot hold it."""
    im = Image.new("RGB", (600, 200), BACKGROUND)
    im.paste(SUBJECT, (520, 80, 560, 120))
    return im


def bright_pixels(im: Image.Image) -> int:
    return int((np.asarray(im.convert("RGB"), dtype=np.int16).min(axis=2) > 200).sum())


def test_smart_crop_keeps_an_off_centre_subject(dragon_server, origin):
    url = serve(origin, subject_near_edge())
    task = {"task_name": "image.thumb", "url": url, "width": 100, "height": 100, "format": "png"}
    centre = download(dragon_server, ok(dragon_server.run_task({**task, "crop": True}))["output"])
    smart = ok(dragon_server.run_task({**task, "crop": "smart"}))
    assert (smart["width"], smart["height"]) == (100, 100)
    picture = download(dragon_server, smart["output"])
    assert picture.size == (100, 100)
    assert bright_pixels(centre) == 0  # the centre crop loses the subject...
    assert bright_pixels(picture) >= 0.9 * 20 * 20  # ...the smart one keeps all of it (x0.5)


def test_smart_crop_of_a_tall_picture_slides_vertically(dragon_server, origin):
    url = serve(origin, subject_near_edge().transpose(Image.Transpose.TRANSPOSE))
    task = {"task_name": "image.thumb", "url": url, "width": 50, "height": 50, "crop": "smart"}
    picture = download(dragon_server, ok(dragon_server.run_task(task))["output"])
    assert bright_pixels(picture) >= 0.9 * 10 * 10


def test_smart_crop_among_equal_windows_takes_the_centre_one(dragon_server, origin):
    # Two subjects 50 px apart about the centre: every window from x 80 to x 120 holds both,
    # the same saliency; the centred one (x 100) is what crop: true gives.
    im = Image.new("RGB", (300, 100), BACKGROUND)
    im.paste(RED, (120, 40, 130, 60))
    im.paste(RED, (170, 40, 180, 60))
    task = {"task_name": "image.thumb", "url": serve(origin, im), "width": 50, "height": 50}
    task["format"] = "png"
    smart = download(dragon_server, ok(dragon_server.run_task({**task, "crop": "smart"}))["output"])
    centre = download(dragon_server, ok(dragon_server.run_task({**task, "crop": True}))["output"])
    assert np.array_equal(np.asarray(smart), np.asarray(centre))


NO_AVIF = pytest.mark.skipif(not features.check("avif"), reason="this Pillow cannot write AVIF")


@pytest.mark.parametrize(
    "fmt, mime", [("webp", "image/webp"), pytest.param("avif", "image/avif", marks=NO_AVIF)]
)
def test_smart_crop_as_webp_and_avif(dragon_server, origin, fmt, mime):
    url = serve(origin, subject_near_edge())
    task = {"task_name": "image.thumb", "url": url, "width": 100, "height": 100, "format": fmt}
    result = ok(dragon_server.run_task({**task, "crop": "smart"}))
    assert dragon_server.get(result["output"]).headers["Content-Type"].startswith(mime)
    picture = download(dragon_server, result["output"])
    assert (picture.format, picture.size) == (fmt.upper(), (100, 100))
    assert bright_pixels(picture) >= 0.8 * 20 * 20  # lossy: most of the subject's pixels


@pytest.mark.parametrize("crop", ["clever", 2, None])
def test_crop_refuses_other_values(dragon_server, origin, crop):
    task = {"task_name": "image.thumb", "url": serve(origin, subject_near_edge()), "crop": crop}
    bad_parameter(dragon_server, {**task, "width": 10, "height": 10}, "crop")


# -- watermarks -----------------------------------------------------------------------------


def logo() -> Image.Image:
    """A 40x20 logo: opaque red on its left half, fully transparent on its right half."""
    im = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    im.paste((*RED, 255), (0, 0, 20, 20))
    return im


def red_box(im: Image.Image) -> tuple[int, int, int, int]:
    """The bounding box ``(x0, y0, x1, y1)`` of the red pixels of ``im``."""
    rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 100) & (rgb[..., 2] < 100)
    ys, xs = np.nonzero(red)
    assert len(xs), "no logo on the output"
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def near(box: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 2) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(box, expected, strict=True))


def test_thumb_watermark_lands_where_position_size_and_margin_say(dragon_server, origin):
    url = serve(origin, Image.new("RGB", (400, 300), BLUE))
    mark = {"url": serve(origin, logo()), "position": "top-left", "size": 0.25, "margin": 0.05}
    task = {"task_name": "image.thumb", "url": url, "width": 200, "format": "png"}
    result = ok(dragon_server.run_task({**task, "watermark": mark}))
    picture = download(dragon_server, result["output"])
    assert picture.size == (200, 150)
    # 0.25 x 200 = 50 px wide (25 high), 10 px from the top and left edges; only the
    # logo's opaque left half is red, and its transparent half leaves the picture as it was.
    assert near(red_box(picture), (10, 10, 35, 35))
    assert np.asarray(picture)[20, 50].tolist()[:3] == list(BLUE)

    bottom = ok(dragon_server.run_task({**task, "watermark": {**mark, "position": "bottom-right"}}))
    assert near(red_box(download(dragon_server, bottom["output"])), (140, 115, 165, 140))


def test_thumb_watermark_opacity_blends(dragon_server, origin):
    url = serve(origin, Image.new("RGB", (200, 200), BLUE))
    mark = {"url": serve(origin, logo()), "position": "center", "size": 0.5, "opacity": 0.5}
    task = {"task_name": "image.thumb", "url": url, "format": "png", "watermark": mark}
    picture = download(dragon_server, ok(dragon_server.run_task(task))["output"])
    # The logo is 100x50 at (50, 75); its red half covers x 50 to 100.
    blended = np.asarray(picture.convert("RGB"), dtype=np.int16)[100, 75]
    expected = (np.array(RED) + np.array(BLUE)) / 2
    assert np.abs(blended - expected).max() <= 3, blended
    assert np.asarray(picture.convert("RGB"))[100, 125].tolist() == list(BLUE)


def test_strip_watermark_is_sized_to_the_whole_strip(dragon_server, origin):
    urls = [serve(origin, Image.new("RGB", (100, 100), BLUE)) for _ in range(3)]
    mark = {"url": serve(origin, logo()), "size": 0.2, "margin": 0.0}
    task = {"task_name": "image.strip", "urls": urls, "width": 100, "height": 100}
    result = ok(dragon_server.run_task({**task, "format": "png", "watermark": mark}))
    picture = download(dragon_server, result["output"])
    assert picture.size == (300, 100)
    assert near(red_box(picture), (240, 70, 270, 100))  # 60x30 in the bottom-right corner


def test_watermark_parameters_are_checked(dragon_server, origin):
    task = {"task_name": "image.thumb", "url": serve(origin, logo())}
    bad_parameter(dragon_server, {**task, "watermark": {"position": "top"}}, "watermark")
    mark = {"url": serve(origin, logo()), "opacity": 2}
    bad_parameter(dragon_server, {**task, "watermark": mark}, "watermark")


def test_watermark_that_cannot_be_fetched_names_its_url(dragon_server, origin):
    missing = f"{origin.url}/img/{uuid.uuid4().hex}.png"
    task = {"task_name": "image.thumb", "url": serve(origin, logo()), "watermark": {"url": missing}}
    status = dragon_server.run_task(task)
    assert status["status"] == "error" and missing in str(status["error"]), status


# -- animated WebP --------------------------------------------------------------------------


def frames_of(im: Image.Image) -> list[tuple[int, tuple[int, int, int]]]:
    """``(duration ms, centre colour)`` of every frame of an animation."""
    out = []
    for i in range(im.n_frames):
        im.seek(i)
        im.load()
        rgb = im.convert("RGB")
        out.append((im.info["duration"], rgb.getpixel((rgb.width // 2, rgb.height // 2))))
    return out


def close(colour: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


def test_gif_as_animated_webp_keeps_the_gif_timing(dragon_server, origin):
    colours = [RED, RED, BLUE, SUBJECT]
    urls = [serve(origin, Image.new("RGB", (40, 30), c)) for c in colours]
    task = {"task_name": "image.gif", "images": urls, "frame_duration": 0.123, "loop": 2}
    result = ok(dragon_server.run_task({**task, "format": "webp"}))
    assert dragon_server.get(result["output"]).headers["Content-Type"].startswith("image/webp")
    webp = download(dragon_server, result["output"])
    gif = download(dragon_server, ok(dragon_server.run_task(task))["output"])
    assert (webp.format, webp.size, webp.is_animated) == ("WEBP", (40, 30), True)
    # 0.123 s is 120 ms in a GIF and in its WebP; the two reds are one frame of 240 ms.
    timing = frames_of(webp)
    assert [d for d, _ in timing] == [d for d, _ in frames_of(gif)] == [240, 120, 120]
    assert all(close(c, e) for (_, c), e in zip(timing, (RED, BLUE, SUBJECT), strict=True))
    assert webp.info["loop"] == 3  # two repeats after the first play, as the GIF's loop 2


def test_gif_refuses_other_formats(dragon_server, origin):
    task = {"task_name": "image.gif", "images": [serve(origin, logo())], "format": "png"}
    bad_parameter(dragon_server, task, "format")


def test_video_strip_as_animated_webp(dragon_server, origin, tmp_path):
    # Four seconds: red, green, blue, white, one second each.
    path = tmp_path / "colours.mp4"
    parts = [f"color=c={c}:size=64x48:rate=10:duration=1" for c in ("red", "green", "blue")]
    parts.append("color=c=white:size=64x48:rate=10:duration=1")
    inputs = [arg for part in parts for arg in ("-f", "lavfi", "-i", part)]
    ffmpeg(
        *inputs,
        "-filter_complex",
        "concat=n=4:v=1:a=0",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        str(path),
    )
    url = origin.add(f"video/{uuid.uuid4().hex}.mp4", path.read_bytes())
    task = {"task_name": "video.strip", "url": url, "count": 4, "start": 0.5, "end": 3.5}
    result = ok(dragon_server.run_task({**task, "format": "webp", "frame_duration": 0.25}))
    assert result["content_type"] == "image/webp"
    assert (result["width"], result["height"]) == (64, 48)
    webp = download(dragon_server, result["output"])
    assert (webp.format, webp.n_frames, webp.size) == ("WEBP", 4, (64, 48))
    timing = frames_of(webp)
    assert [d for d, _ in timing] == [250] * 4
    expected = [(254, 0, 0), (0, 128, 0), (0, 0, 254), (255, 255, 255)]
    assert all(close(c, e, 40) for (_, c), e in zip(timing, expected, strict=True)), timing
    assert webp.info["loop"] == 0


# -- video.thumb pick: best -----------------------------------------------------------------


def two_part_clip(path, first: str) -> None:
    """Two seconds at 320x240: ``first`` (a lavfi filtergraph over testsrc2) for one
    second, then testsrc2 as it is."""
    source = "testsrc2=size=320x240:rate=25:duration=1"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        source,
        "-f",
        "lavfi",
        "-i",
        source,
        "-filter_complex",
        f"[0:v]{first}[a];[a][1:v]concat=n=2:v=1:a=0",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        str(path),
    )


def grey(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("L"), dtype=np.float32)


def test_best_thumbnail_skips_a_black_first_second(dragon_server, origin, tmp_path):
    path = tmp_path / "black-leader.mp4"
    two_part_clip(path, "drawbox=t=fill:c=black")
    url = origin.add(f"video/{uuid.uuid4().hex}.mp4", path.read_bytes())
    task = {"task_name": "video.thumb", "url": url, "format": "png"}
    first = download(dragon_server, ok(dragon_server.run_task(task))["output"])
    best = ok(dragon_server.run_task({**task, "pick": "best"}))
    assert (best["width"], best["height"]) == (320, 240)
    picture = download(dragon_server, best["output"])
    assert grey(first).mean() < 20  # the frame at time 0 is black...
    assert grey(picture).mean() > 40 and grey(picture).std() > 20  # ...the best one is not


def sharpness(im: np.ndarray) -> float:
    """The mean absolute difference between neighbours, which blur lowers."""
    return float(np.abs(np.diff(im, axis=0)).mean() + np.abs(np.diff(im, axis=1)).mean())


def test_best_thumbnail_prefers_a_sharp_frame(dragon_server, origin, tmp_path):
    path = tmp_path / "blurred-start.mp4"
    two_part_clip(path, "boxblur=8:2")
    url = origin.add(f"video/{uuid.uuid4().hex}.mp4", path.read_bytes())
    task = {"task_name": "video.thumb", "url": url, "format": "png"}
    measured = {}
    for name, extra in {"first": {}, "sharp": {"time": 1.5}, "best": {"pick": "best"}}.items():
        picture = download(dragon_server, ok(dragon_server.run_task({**task, **extra}))["output"])
        measured[name] = sharpness(grey(picture))
    assert measured["sharp"] > 1.5 * measured["first"], measured  # the blur is real
    assert measured["best"] > 0.8 * measured["sharp"], measured


def test_best_thumbnail_at_the_end_gives_the_last_frame(dragon_server, origin, tmp_path):
    path = tmp_path / "black-leader-end.mp4"
    two_part_clip(path, "drawbox=t=fill:c=black")
    url = origin.add(f"video/{uuid.uuid4().hex}.mp4", path.read_bytes())
    task = {"task_name": "video.thumb", "url": url, "time": 60, "pick": "best"}
    assert grey(download(dragon_server, ok(dragon_server.run_task(task))["output"])).mean() > 40


def test_pick_refuses_other_values(dragon_server, origin):
    task = {"task_name": "video.thumb", "url": serve(origin, logo()), "pick": "first"}
    bad_parameter(dragon_server, task, "pick")
