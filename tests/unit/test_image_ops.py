"""Unit tests of dragon.media.image: real Pillow on images generated here, pixels checked.

No server: the operations are called directly on files in tmp_path. Colours are checked
with a tolerance because JPEG is lossy.
"""

from __future__ import annotations

import concurrent.futures
import os

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin, features

from dragon import errors
from dragon.media import image
from tests.support.images import (
    BLACK,
    BLUE,
    GREEN,
    RED,
    WHITE,
    close,
    halves,
    truncated_jpeg,
)
from tests.support.media import png_header

YELLOW = (255, 255, 0)
MP = 100_000_000

# How a camera stores an upright scene for each EXIF orientation (from the EXIF spec's
# "0th row / 0th column" table), written independently of the module's own table.
STORED_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def write(path, im: Image.Image, fmt: str, **options) -> image.Source:
    im.save(path, fmt, **options)
    return image.Source(str(path), path.name)


def raw(path, data: bytes, mime: str | None = None) -> image.Source:
    path.write_bytes(data)
    return image.Source(str(path), path.name, mime)


def quadrants(width=80, height=60) -> Image.Image:
    """Top-left red, top-right green, bottom-left blue, bottom-right yellow."""
    im = Image.new("RGB", (width, height), RED)
    im.paste(GREEN, (width // 2, 0, width, height // 2))
    im.paste(BLUE, (0, height // 2, width // 2, height))
    im.paste(YELLOW, (width // 2, height // 2, width, height))
    return im


def bands(colors, width=300, height=100) -> Image.Image:
    """Vertical bands of ``colors``, left to right."""
    im = Image.new("RGB", (width, height))
    step = width // len(colors)
    for i, c in enumerate(colors):
        im.paste(c, (i * step, 0, (i + 1) * step, height))
    return im


def exif_with(orientation: int | None = None, **sub) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "dragon-test"  # Make: Pillow's PNG writer skips an EXIF with no IFD0 tag
    if orientation:
        exif[0x0112] = orientation
    ifd = exif.get_ifd(image.EXIF_IFD)
    tags = {"date": 0x9003, "flash": 0x9209, "focal": 0x920A, "iso": 0x8827, "exposure": 0x829A}
    for name, value in sub.items():
        ifd[tags[name]] = value
    return exif


def open_out(path) -> Image.Image:
    im = Image.open(path)
    im.load()
    return im


# -- sniffing and refusals --------------------------------------------------------------

FORMATS = ["JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"] + (
    ["AVIF"] if features.check("avif") else []
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_sniff_and_info_for_every_input_format(tmp_path, fmt):
    src = write(tmp_path / f"a.{fmt.lower()}", Image.new("RGB", (33, 21), RED), fmt)
    result = image.info(src, MP)
    assert result["content_type"] == image.MIME[fmt]
    assert (result["type"], result["width"], result["height"]) == ("image", 33, 21)
    assert result["alpha"] is False
    assert result["exif_orientation"] is None and result["rotation"] is None
    assert all(
        result[k] is None
        for k in ("date_time", "flash", "focal_length", "iso_speed", "exposure_time")
    )


@pytest.mark.parametrize(
    "name, data",
    [
        (
            "svg",
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" '
            b'xmlns:xlink="http://www.w3.org/1999/xlink"><image xlink:href="text:/etc/passwd"'
            b' width="100" height="100"/></svg>',
        ),
        (
            "mvg",
            b"push graphic-context\nviewbox 0 0 640 480\n"
            b"fill 'url(https://example.com/x.jpg\";touch \"/tmp/pwned)'\npop graphic-context\n",
        ),
        (
            "msl",
            b'<?xml version="1.0" encoding="UTF-8"?>\n<image>\n<read filename="/etc/passwd"/>'
            b'\n<write filename="/tmp/pwned"/>\n</image>',
        ),
        ("ps", b"%!PS-Adobe-3.0\n/Helvetica findfont 12 scalefont setfont\nshowpage\n"),
        ("pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"),
        ("html", b"<!DOCTYPE html><html><body><img src=x></body></html>"),
    ],
)
def test_script_like_payloads_are_unsupported(tmp_path, name, data):
    src = raw(tmp_path / "evil.jpg", data)
    with pytest.raises(errors.TaskError) as info:
        image.info(src, MP)
    assert info.value.code == errors.UNSUPPORTED_MEDIA
    assert "evil.jpg" in info.value.message
    assert not os.path.exists("/tmp/pwned")


def test_sniffed_non_image_type_is_unsupported(tmp_path):
    src = raw(tmp_path / "a.jpg", b"\x00\x00\x00\x18ftypmp42" + os.urandom(200), "video/mp4")
    with pytest.raises(errors.TaskError) as info:
        image.thumb(src, str(tmp_path / "o.jpg"), 10, 10, False, 0, False, "jpeg", MP)
    assert info.value.code == errors.UNSUPPORTED_MEDIA and "video/mp4" in info.value.message


@pytest.mark.parametrize(
    "data",
    [
        b"",
        np.random.default_rng(2).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        truncated_jpeg(),
        b"\xff\xd8\xff\xe0" + np.random.default_rng(3).integers(0, 256, 3000, np.uint8).tobytes(),
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
        b"GIF89a\x10\x00",
        b"hello, plain text that no decoder or sniffer knows",
    ],
    ids=[
        "empty",
        "random",
        "truncated-jpeg",
        "jpeg-magic-garbage",
        "png-garbage",
        "gif-stub",
        "text",
    ],
)
def test_broken_files_are_invalid_media(tmp_path, data):
    src = raw(tmp_path / "bad.jpg", data)
    for op in (
        lambda: image.thumb(src, str(tmp_path / "o.jpg"), 32, 32, False, 0, False, "jpeg", MP),
        lambda: image.strip([src], str(tmp_path / "s.jpg"), 8, 8, False, None, "jpeg", MP),
    ):
        with pytest.raises(errors.TaskError) as info:
            op()
        assert info.value.code == errors.INVALID_MEDIA, info.value.message
    assert not (tmp_path / "o.jpg").exists()


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    # The file has no pixel data at all: decoding would fail with invalid_media, so
    # image_too_large proves the header size was checked first.
    src = raw(tmp_path / "bomb.png", png_header(20000, 20000))
    for op in (
        lambda: image.info(src, 1_000_000),
        lambda: image.thumb(
            src, str(tmp_path / "o.jpg"), 100, 100, False, 0, False, "jpeg", 1_000_000
        ),
        lambda: image.gif([src], str(tmp_path / "o.gif"), 10, 10, 0, 0.1, 1_000_000),
    ):
        with pytest.raises(errors.TaskError) as info:
            op()
        assert info.value.code == errors.IMAGE_TOO_LARGE
        assert "bomb.png" in info.value.message and "1000000 pixels" in info.value.message
    # Between max_pixels and Pillow's error (2x): Pillow only warns, and we refuse.
    with pytest.raises(errors.TaskError) as info:
        image.info(raw(tmp_path / "big.png", png_header(1500, 1000)), 1_000_000)
    assert info.value.code == errors.IMAGE_TOO_LARGE and "1500x1000" in info.value.message
    # The call's limit does not leak into the rest of the process (other code uses Pillow).
    assert Image.MAX_IMAGE_PIXELS != 1_000_000
    # Above Pillow's own bomb limit (2x max_pixels) too, and under the default setting.
    with pytest.raises(errors.TaskError) as info:
        image.info(raw(tmp_path / "huge.png", png_header(30000, 30000)), MP)
    assert info.value.code == errors.IMAGE_TOO_LARGE


def test_every_strip_image_is_checked(tmp_path):
    ok = write(tmp_path / "ok.png", Image.new("RGB", (10, 10), RED), "PNG")
    bomb = raw(tmp_path / "bomb.png", png_header(5000, 5000))
    with pytest.raises(errors.TaskError) as info:
        image.strip([ok, bomb], str(tmp_path / "s.png"), 10, 10, False, None, "png", 1_000_000)
    assert info.value.code == errors.IMAGE_TOO_LARGE and "bomb.png" in info.value.message


def test_errors_survive_the_process_pool(tmp_path):
    """ctx.in_process runs these in a process pool: the error must pickle back intact."""
    src = raw(tmp_path / "bad.jpg", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>')
    with concurrent.futures.ProcessPoolExecutor(1) as pool:
        future = pool.submit(image.info, src, MP)
        with pytest.raises(errors.TaskError) as info:
            future.result(timeout=30)
    assert info.value.code == errors.UNSUPPORTED_MEDIA


# -- image.info ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "orientation, rotation",
    [(1, 0.0), (2, None), (3, 180.0), (4, None), (5, None), (6, 90.0), (7, None), (8, 270.0)],
)
def test_info_exif_orientation(tmp_path, orientation, rotation):
    src = write(
        tmp_path / "a.jpg", Image.new("RGB", (40, 30), RED), "JPEG", exif=exif_with(orientation)
    )
    result = image.info(src, MP)
    assert result["exif_orientation"] == orientation
    assert result["rotation"] == rotation
    assert (result["width"], result["height"]) == (40, 30)  # stored pixels


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_info_camera_fields(tmp_path, fmt):
    exif = exif_with(
        6,
        date="2021:07:14 10:20:30",
        flash=0x19,
        focal=TiffImagePlugin.IFDRational(35, 2),
        iso=(800,),
        exposure=TiffImagePlugin.IFDRational(1, 125),
    )
    src = write(tmp_path / f"a.{fmt}", Image.new("RGB", (40, 30), RED), fmt, exif=exif)
    result = image.info(src, MP)
    assert result["date_time"] == "2021:07:14 10:20:30"
    assert result["flash"] is True
    assert result["focal_length"] == 17.5
    assert result["iso_speed"] == 800.0
    assert result["exposure_time"] == pytest.approx(0.008)
    no_flash = write(
        tmp_path / f"b.{fmt}", Image.new("RGB", (4, 4)), fmt, exif=exif_with(flash=0x10)
    )
    assert image.info(no_flash, MP)["flash"] is False


def test_info_tiff_reports_stored_size(tmp_path):
    src = write(tmp_path / "a.tif", Image.new("RGB", (40, 30), RED), "TIFF", exif=exif_with(6))
    result = image.info(src, MP)
    assert (result["width"], result["height"], result["exif_orientation"]) == (40, 30, 6)


@pytest.mark.parametrize(
    "make, fmt",
    [
        (lambda: Image.new("RGBA", (8, 8), (255, 0, 0, 128)), "PNG"),
        (lambda: Image.new("LA", (8, 8), (10, 20)), "PNG"),
        (lambda: Image.new("RGBA", (8, 8), (255, 0, 0, 0)), "WEBP"),
        (lambda: Image.new("P", (8, 8), 0), "GIF"),
    ],
)
def test_info_alpha(tmp_path, make, fmt):
    options = {"transparency": 0} if fmt == "GIF" else {}
    src = write(tmp_path / f"a.{fmt}", make(), fmt, **options)
    assert image.info(src, MP)["alpha"] is True


# -- image.thumb --------------------------------------------------------------------------


def thumb(src, tmp_path, width=None, height=None, crop=False, rotation=0, poster=False, fmt="png"):
    dest = tmp_path / f"out.{image.OUTPUTS[fmt][2]}"
    result = image.thumb(src, str(dest), width, height, crop, rotation, poster, fmt, MP)
    return result, open_out(dest)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_thumb_makes_every_exif_orientation_upright(tmp_path, orientation):
    upright = quadrants(80, 60)
    stored = (
        upright if STORED_AS[orientation] is None else upright.transpose(STORED_AS[orientation])
    )
    src = write(tmp_path / "a.jpg", stored, "JPEG", quality=95, exif=exif_with(orientation))
    result, out = thumb(src, tmp_path)
    assert out.size == (80, 60)
    assert result == {"width": 80, "height": 60, "original_width": 80, "original_height": 60}
    for (x, y), color in {(10, 10): RED, (70, 10): GREEN, (10, 50): BLUE, (70, 50): YELLOW}.items():
        assert close(out.getpixel((x, y)), color), (orientation, (x, y), out.getpixel((x, y)))


def test_thumb_tiff_orientation_is_applied_once(tmp_path):
    src = write(
        tmp_path / "a.tif",
        quadrants(80, 60).transpose(Image.Transpose.ROTATE_90),
        "TIFF",
        exif=exif_with(6),
    )
    result, out = thumb(src, tmp_path, width=40)
    assert out.size == (40, 30) and result["original_width"] == 80
    assert close(out.getpixel((5, 5)), RED) and close(out.getpixel((35, 25)), YELLOW)


def test_thumb_crop_really_centres(tmp_path):
    # red | a white stripe at the exact centre | blue
    src_im = bands([RED, BLUE], 300, 100)
    src_im.paste(WHITE, (140, 0, 160, 100))
    src = write(tmp_path / "a.png", src_im, "PNG")
    result, out = thumb(src, tmp_path, 50, 50, crop=True)
    assert out.size == (50, 50) and (result["width"], result["height"]) == (50, 50)
    # the centre 100x100 (x 100..200) is kept: the stripe lands on x 20..30 of 50
    assert close(out.getpixel((25, 25)), WHITE, 10)
    assert close(out.getpixel((2, 2)), RED, 10) and close(out.getpixel((47, 47)), BLUE, 10)
    row = np.asarray(out.convert("L"))[25]
    white = np.flatnonzero(row > 200)
    assert white.min() + white.max() in (48, 49, 50)  # symmetric about the centre


def test_thumb_fit_keeps_the_whole_image(tmp_path):
    src = write(tmp_path / "a.png", bands([RED, GREEN, BLUE], 300, 100), "PNG")
    result, out = thumb(src, tmp_path, 60, 60)
    assert out.size == (60, 20)
    assert result == {"width": 60, "height": 20, "original_width": 300, "original_height": 100}
    assert close(out.getpixel((2, 10)), RED, 10) and close(out.getpixel((57, 10)), BLUE, 10)


@pytest.mark.parametrize(
    "width, height, size",
    [
        (150, None, (150, 50)),
        (None, 20, (60, 20)),
        (None, None, (300, 100)),
        (600, None, (600, 200)),
    ],
)
def test_thumb_one_side_keeps_aspect(tmp_path, width, height, size):
    src = write(tmp_path / "a.png", bands([RED, GREEN, BLUE], 300, 100), "PNG")
    assert thumb(src, tmp_path, width, height)[1].size == size
    # crop needs both sides; with one it is a plain fit
    assert thumb(src, tmp_path, width, height, crop=True)[1].size == size


@pytest.mark.parametrize("rotation, left, right", [(90, RED, BLUE), (270, BLUE, RED)])
def test_thumb_rotation_is_counter_clockwise(tmp_path, rotation, left, right):
    src = write(tmp_path / "a.png", halves(RED, BLUE, (80, 40)), "PNG")
    result, out = thumb(src, tmp_path, rotation=rotation)
    assert out.size == (40, 80)
    assert (result["original_width"], result["original_height"]) == (80, 40)
    assert close(out.getpixel((5, 40)), left, 5) and close(out.getpixel((35, 40)), right, 5)


def test_thumb_rotation_180_and_size_after_rotation(tmp_path):
    src = write(tmp_path / "a.png", halves(RED, BLUE, (80, 40)), "PNG")
    out = thumb(src, tmp_path, rotation=180)[1]
    assert close(out.getpixel((40, 5)), BLUE, 5) and close(out.getpixel((40, 35)), RED, 5)
    # width/height describe the rotated output
    result, out = thumb(src, tmp_path, 20, 40, rotation=90)
    assert out.size == (20, 40) and (result["width"], result["height"]) == (20, 40)


def test_thumb_rotation_composes_with_exif(tmp_path):
    stored = halves(RED, BLUE, (80, 40)).transpose(Image.Transpose.ROTATE_90)
    src = write(tmp_path / "a.jpg", stored, "JPEG", quality=95, exif=exif_with(6))
    out = thumb(src, tmp_path, rotation=90)[1]
    assert out.size == (40, 80)
    assert close(out.getpixel((5, 40)), RED) and close(out.getpixel((35, 40)), BLUE)


def test_thumb_poster_changes_the_centre_not_the_corners(tmp_path):
    src = write(tmp_path / "a.png", Image.new("RGB", (200, 100), RED), "PNG")
    plain = thumb(src, tmp_path, 100, 50)[1].copy()
    result, badged = thumb(src, tmp_path, 100, 50, poster=True)
    assert badged.size == (100, 50) and result["width"] == 100
    assert close(plain.getpixel((50, 25)), RED, 5)
    assert not close(badged.getpixel((50, 25)), RED, 60)
    for xy in ((0, 0), (99, 0), (0, 49), (99, 49), (20, 25), (80, 25)):
        assert badged.getpixel(xy) == plain.getpixel(xy), xy


def test_thumb_flattens_alpha_on_white_for_jpeg_and_keeps_it_for_png(tmp_path):
    im = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    im.paste((0, 0, 255, 255), (0, 0, 50, 100))
    src = write(tmp_path / "a.png", im, "PNG")
    jpeg = thumb(src, tmp_path, 50, 50, fmt="jpeg")[1]
    assert jpeg.mode == "RGB"
    assert close(jpeg.getpixel((45, 25)), WHITE, 10) and close(jpeg.getpixel((5, 25)), BLUE)
    png = thumb(src, tmp_path, 50, 50, fmt="png")[1]
    assert png.mode == "RGBA" and png.getpixel((45, 25))[3] == 0
    assert png.getpixel((5, 25)) == (0, 0, 255, 255)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "gif", "webp", "avif"])
def test_thumb_output_formats(tmp_path, fmt):
    if not image.can_write(fmt):
        pytest.skip(f"this Pillow cannot write {fmt}")
    src = write(tmp_path / "a.png", bands([RED, GREEN, BLUE], 300, 100), "PNG")
    out = thumb(src, tmp_path, 90, 30, fmt=fmt)[1]
    assert out.format == image.OUTPUTS[fmt][0] and out.size == (90, 30)
    rgb = out.convert("RGB")
    assert close(rgb.getpixel((10, 15)), RED) and close(rgb.getpixel((80, 15)), BLUE)


def test_thumb_decodes_large_jpeg_at_reduced_scale(tmp_path):
    src = write(tmp_path / "a.jpg", bands([RED, GREEN, BLUE], 1600, 1200), "JPEG")
    with image.opened(src, MP) as im:
        decoded = image._decode(im, (100, 75), [])
    assert decoded.size == (200, 150)  # libjpeg's 1/8 scale, still 2x the target
    _, out = thumb(src, tmp_path, 100, 100, fmt="jpeg")
    assert out.size == (100, 75) and close(out.getpixel((50, 37)), GREEN)


def test_thumb_keeps_only_rgb_colour_profiles(tmp_path):
    from PIL import ImageCms

    def profile(name):
        return ImageCms.ImageCmsProfile(ImageCms.createProfile(name)).tobytes()

    srgb_profile = profile("sRGB")  # once: a profile's bytes hold the second it was made
    srgb = write(tmp_path / "a.jpg", halves(), "JPEG", icc_profile=srgb_profile)
    assert thumb(srgb, tmp_path, 10, fmt="jpeg")[1].info["icc_profile"] == srgb_profile
    lab = write(tmp_path / "b.jpg", halves(), "JPEG", icc_profile=profile("LAB"))
    assert "icc_profile" not in thumb(lab, tmp_path, 10, fmt="jpeg")[1].info


@pytest.mark.parametrize(
    "make, fmt, expected",
    [
        (lambda: Image.fromarray(np.full((20, 20), 40000, dtype=np.uint16)), "PNG", (155,) * 3),
        (lambda: Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "JPEG", RED),
        (lambda: Image.new("L", (20, 20), 128), "PNG", (128,) * 3),
        (lambda: Image.new("RGB", (20, 20), (204, 102, 51)).convert("P"), "GIF", (204, 102, 51)),
        (lambda: Image.new("1", (20, 20), 1), "BMP", WHITE),
    ],
    ids=["I;16", "CMYK", "L", "P", "1"],
)
def test_thumb_normalises_modes(tmp_path, make, fmt, expected):
    src = write(tmp_path / f"a.{fmt}", make(), fmt)
    pixel = thumb(src, tmp_path, 10, 10)[1].convert("RGB").getpixel((5, 5))
    assert close(pixel, expected, 8), pixel


# -- image.strip --------------------------------------------------------------------------


def colored(tmp_path, name, color, size=(40, 20), fmt="PNG") -> image.Source:
    return write(tmp_path / name, Image.new("RGB", size, color), fmt)


def test_strip_cells_in_place_with_letterboxing(tmp_path):
    srcs = [colored(tmp_path, f"{i}.png", c) for i, c in enumerate((RED, GREEN, BLUE))]
    dest = tmp_path / "s.jpg"
    result = image.strip(srcs, str(dest), 20, 20, False, 2, "jpeg", MP)
    assert result == {"count": 3, "width": 40, "height": 40, "content_type": "image/jpeg"}
    out = open_out(dest)
    assert out.size == (40, 40)
    # each 40x20 source fits a 20x20 cell as 20x10, centred: rows 5..14 coloured
    for (cx, cy), color in {(0, 0): RED, (20, 0): GREEN, (0, 20): BLUE}.items():
        assert close(out.getpixel((cx + 10, cy + 10)), color), (cx, cy)
        assert close(out.getpixel((cx + 10, cy + 1)), BLACK, 20)
        assert close(out.getpixel((cx + 10, cy + 18)), BLACK, 20)
    assert close(out.getpixel((30, 30)), BLACK, 20)  # the unused fourth cell


def test_strip_png_letterbox_is_transparent_and_crop_fills(tmp_path):
    srcs = [colored(tmp_path, f"{i}.png", c) for i, c in enumerate((RED, GREEN))]
    dest = tmp_path / "s.png"
    image.strip(srcs, str(dest), 20, 20, False, None, "png", MP)
    out = open_out(dest)
    assert out.size == (40, 20) and out.mode == "RGBA"
    assert out.getpixel((10, 1))[3] == 0 and out.getpixel((10, 10)) == (*RED, 255)
    image.strip(srcs, str(dest), 20, 20, True, None, "png", MP)
    out = open_out(dest)
    assert out.getpixel((10, 1)) == (*RED, 255) and out.getpixel((30, 18)) == (*GREEN, 255)


def test_strip_cell_size_defaults_to_first_image(tmp_path):
    srcs = [colored(tmp_path, "a.png", RED, (30, 10)), colored(tmp_path, "b.png", BLUE, (60, 60))]
    result = image.strip(srcs, str(tmp_path / "s.png"), None, None, False, None, "png", MP)
    assert (result["width"], result["height"]) == (60, 10)
    result = image.strip(srcs, str(tmp_path / "s.png"), 15, None, False, None, "png", MP)
    assert (result["width"], result["height"]) == (30, 5)
    big = [colored(tmp_path, "c.png", RED, (800, 400)), srcs[1]]
    result = image.strip(big, str(tmp_path / "s.png"), None, None, False, None, "png", MP)
    assert (result["width"], result["height"]) == (320, 80)  # 160x80 cells


def test_strip_output_size_is_bounded(tmp_path):
    srcs = [colored(tmp_path, "a.png", RED)] * 3
    with pytest.raises(errors.TaskError) as info:
        image.strip(srcs, str(tmp_path / "s.png"), 1000, 1000, False, None, "png", 2_000_000)
    assert info.value.code == errors.IMAGE_TOO_LARGE


def test_strip_uses_exif_orientation(tmp_path):
    stored = halves(RED, BLUE, (40, 20)).transpose(Image.Transpose.ROTATE_90)
    src = write(tmp_path / "a.jpg", stored, "JPEG", quality=95, exif=exif_with(6))
    dest = tmp_path / "s.png"
    image.strip([src], str(dest), 40, 20, False, None, "png", MP)
    out = open_out(dest)
    assert close(out.getpixel((20, 3)), RED) and close(out.getpixel((20, 17)), BLUE)


# -- image.gif ----------------------------------------------------------------------------


def gradient(width=160, height=90, box_x=None) -> Image.Image:
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    a = np.concatenate(
        [
            np.broadcast_to(x, (height, width, 1)),
            np.broadcast_to(y, (height, width, 1)),
            np.broadcast_to(255 - x, (height, width, 1)),
        ],
        axis=2,
    )
    im = Image.fromarray(a.astype(np.uint8))
    if box_x is not None:
        im.paste((255, 255, 255), (box_x, 10, box_x + 20, 30))
    return im


def frames_of(path) -> list[tuple[Image.Image, dict]]:
    out = []
    with Image.open(path) as im:
        for i in range(im.n_frames):
            im.seek(i)
            out.append((im.convert("RGB"), dict(im.info)))
    return out


def blurred(im: Image.Image, k=5) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    return uniform_filter(np.asarray(im, dtype=float), (k, k, 1))[k:-k, k:-k]


def test_gif_frames_durations_and_loop(tmp_path):
    srcs = [write(tmp_path / f"{i}.png", gradient(box_x=10 + 30 * i), "PNG") for i in range(4)]
    dest = tmp_path / "o.gif"
    image.gif(srcs, str(dest), None, None, 0, 0.123, MP)
    frames = frames_of(dest)
    assert len(frames) == 4
    assert [info["duration"] for _, info in frames] == [120] * 4
    assert frames[0][1]["loop"] == 0
    for i, (frame, _) in enumerate(frames):
        assert frame.size == (160, 90)
        assert close(frame.getpixel((20 + 30 * i, 20)), WHITE, 30), i  # the box moved
        if i:
            assert not close(frame.getpixel((20 + 30 * (i - 1), 20)), WHITE, 30)


@pytest.mark.parametrize("loop", [-1, 3])
def test_gif_loop_flag(tmp_path, loop):
    srcs = [colored(tmp_path, f"{i}.png", c) for i, c in enumerate((RED, BLUE))]
    dest = tmp_path / "o.gif"
    image.gif(srcs, str(dest), None, None, loop, 0.5, MP)
    with Image.open(dest) as im:
        assert im.n_frames == 2 and im.info["duration"] == 500
        if loop == -1:
            assert "loop" not in im.info
            assert b"NETSCAPE2.0" not in dest.read_bytes()
        else:
            assert im.info["loop"] == 3


def test_gif_shared_palette_has_no_banding(tmp_path):
    srcs = [write(tmp_path / f"{i}.png", gradient(box_x=10 + 30 * i), "PNG") for i in range(3)]
    dest = tmp_path / "o.gif"
    image.gif(srcs, str(dest), None, None, 0, 0.1, MP)
    data = dest.read_bytes()
    assert data[10] & 0x80  # one global colour table
    for i, (frame, _) in enumerate(frames_of(dest)):
        with Image.open(srcs[i].path) as original:
            diff = np.abs(blurred(frame) - blurred(original.convert("RGB")))
        # dithering keeps local averages on the smooth gradient: no visible steps
        assert diff.mean() < 1.5 and diff.max() < 12, (i, diff.mean(), diff.max())


def test_gif_frames_are_optimised(tmp_path):
    srcs = [write(tmp_path / f"{i}.png", gradient(box_x=10 + 30 * i), "PNG") for i in range(4)]
    dest = tmp_path / "o.gif"
    image.gif(srcs, str(dest), None, None, 0, 0.1, MP)
    with Image.open(dest) as im:
        im.seek(2)
        x0, y0, x1, y1 = im.tile[0][1]
        # only the rectangle where the white box moved is stored
        assert (x0, y0, x1, y1) == (40, 10, 90, 30)
    single = tmp_path / "one.gif"
    image.gif(srcs[:1], str(single), None, None, 0, 0.1, MP)
    assert dest.stat().st_size < 1.5 * single.stat().st_size


def test_gif_size_and_fitting(tmp_path):
    srcs = [colored(tmp_path, "a.png", RED, (40, 40)), colored(tmp_path, "b.png", BLUE, (80, 20))]
    dest = tmp_path / "o.gif"
    image.gif(srcs, str(dest), None, None, 0, 0.1, MP)
    frames = frames_of(dest)
    assert [f.size for f, _ in frames] == [(40, 40), (40, 40)]
    second = frames[1][0]
    assert close(second.getpixel((20, 20)), BLUE) and close(second.getpixel((20, 2)), BLACK)
    image.gif(srcs, str(dest), 20, None, 0, 0.1, MP)
    assert frames_of(dest)[0][0].size == (20, 20)
    image.gif(srcs, str(dest), 60, 30, 0, 0.1, MP)
    first = frames_of(dest)[0][0]
    assert first.size == (60, 30)
    assert close(first.getpixel((30, 15)), RED) and close(first.getpixel((5, 15)), BLACK)


def test_gif_uses_first_frame_of_animated_sources(tmp_path):
    anim = tmp_path / "anim.gif"
    Image.new("RGB", (20, 20), RED).save(
        anim, save_all=True, append_images=[Image.new("RGB", (20, 20), BLUE)]
    )
    dest = tmp_path / "o.gif"
    image.gif([image.Source(str(anim), "anim.gif")], str(dest), None, None, 0, 0.1, MP)
    frames = frames_of(dest)
    assert len(frames) == 1 and close(frames[0][0].getpixel((10, 10)), RED)


def test_gif_total_pixels_are_bounded(tmp_path):
    srcs = [colored(tmp_path, "a.png", RED, (100, 100))] * 20
    with pytest.raises(errors.TaskError) as info:
        image.gif(srcs, str(tmp_path / "o.gif"), None, None, 0, 0.1, 100_000)
    assert info.value.code == errors.IMAGE_TOO_LARGE
