"""Pillow operations behind image.info, image.thumb, image.strip and image.gif.

These tasks use Pillow only, never ImageMagick: no coder of ours can be talked into running
MVG, MSL, SVG or PostScript (ImageTragick, docs/security.md), because no such decoder is
reachable. Every source goes through ``opened``, which is the whole safety story:

* the magic bytes (``dragon.net.sniff``, as ``Download.mime``) pick the decoder, and Pillow may
  use that one plugin only, so a ``.jpg`` holding SVG, MVG, MSL, PostScript or PDF ends
  ``unsupported_media``; bytes no sniffer recognises end ``invalid_media``;
* the header size is checked against ``max_pixels`` before a single pixel is decoded
  (``image_too_large``), for every GIF frame and strip image alike;
* decoder exceptions (truncated files, corrupt chunks) become ``invalid_media``.

Inputs: JPEG, PNG, GIF, WebP, TIFF, BMP, and AVIF where this Pillow build reads it. Only
the first frame of an animated or multi-page source is used.

The public functions are module-level and take plain picklable arguments so tasks can run
them with ``ctx.in_process``; their errors are ``TaskError``s (picklable, so they cross the pool).
JPEG sources are decoded at a reduced scale (libjpeg DCT scaling via ``Image.draft``) to at
least 1.5x the target size, then resized with Lanczos and ``reducing_gap``: most of the
decode is skipped, with no visible loss at the target size.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypedDict

import numpy as np
from PIL import Image, ImageDraw, features

from dragon import errors
from dragon.media import geometry, saliency
from dragon.media.context import Fetches
from dragon.net import sniff

# Sniffed type (dragon.net.sniff) -> the only Pillow plugin allowed to open it.
DECODERS = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/tiff": "TIFF",
    "image/bmp": "BMP",
    "image/avif": "AVIF",
}
MIME = {fmt: mime for mime, fmt in DECODERS.items()}

# Output formats: (Pillow format, content type, extension, save options).
# webp and avif go beyond the original service's choices and exist only where Pillow can write them.
OUTPUTS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "jpeg": ("JPEG", "image/jpeg", "jpg", {"quality": 85}),
    "png": ("PNG", "image/png", "png", {}),
    "gif": ("GIF", "image/gif", "gif", {"interlace": False}),
    "webp": ("WEBP", "image/webp", "webp", {"quality": 80}),
    "avif": ("AVIF", "image/avif", "avif", {"quality": 60, "speed": 8}),
}

# EXIF orientation -> the transpose that makes the image upright (as Pillow's exif_transpose).
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Counter-clockwise rotations asked for by image.thumb.
ROTATE = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}
# Clockwise degrees that show an image as shot (Android's ExifInterface convention);
# orientations that need a flip have none.
EXIF_ROTATION = {1: 0.0, 3: 180.0, 6: 90.0, 8: 270.0}

# What decoders raise on corrupt input (Pillow's own fuzz harness accepts the same list).
DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    NotImplementedError,
    OverflowError,
    MemoryError,
    IndexError,
)

EXIF_IFD = 0x8769
WHITE = (255, 255, 255)
FETCH_CONCURRENCY = 8
STRIP_CELL = (160, 120)
RESAMPLE = Image.Resampling.LANCZOS
REDUCING_GAP = 2.0
# libjpeg's 1/8 scale averages whole 8x8 blocks, so some reduction must be left for the
# Lanczos filter. 1.5x rather than libvips' 2x lets a 6000 px photo decode at 1/8 for a
# 400 px thumbnail: about 40 % faster, and still within 2.5 dB PSNR (50 dB against 52 dB) of
# a full decode + Lanczos (scripts/bench_thumb.py's source).
DRAFT_GAP = 1.5
GIF_COLORS = 255  # leaves one palette index free for the transparency of unchanged pixels
PALETTE_SAMPLE_PIXELS = 1_000_000


# ``crop``: False fits, True crops the centre, "smart" crops the most salient region.
Crop = bool | Literal["smart"]
# Drawn on a finished picture before it is encoded (a watermark); it must pickle, since it
# crosses to the process pool with the rest of the call.
Overlay = Callable[[Image.Image], Image.Image]


@dataclasses.dataclass(frozen=True)
class Source:
    """A downloaded file: ``name`` (its URL) is what error messages show."""

    path: str
    name: str
    mime: str | None = None


def can_write(fmt: str) -> bool:
    return fmt in ("jpeg", "png", "gif") or bool(features.check(fmt))


# -- reading -----------------------------------------------------------------------------


def decoder_for(src: Source) -> str:
    """The one Pillow plugin allowed to read ``src``, from its sniffed type."""
    mime = src.mime or sniff.sniff_file(src.path)
    fmt = DECODERS.get(mime or "")
    if fmt and (fmt != "AVIF" or features.check("avif")):
        return fmt
    if mime:
        raise errors.TaskError(
            errors.UNSUPPORTED_MEDIA,
            f"{src.name}: {mime} is not an image format we accept (JPEG, PNG, "
            "GIF, WebP, TIFF or BMP)",
        )
    if os.path.getsize(src.path) == 0:
        raise errors.TaskError(errors.INVALID_MEDIA, f"{src.name}: the file is empty")
    raise errors.TaskError(errors.INVALID_MEDIA, f"{src.name}: not a recognisable image")


@contextlib.contextmanager
def opened(src: Source, max_pixels: int) -> Iterator[Image.Image]:
    """Open ``src`` lazily, checked (see the module docstring); decode errors in the block
    become ``invalid_media``. Nothing is decoded until the caller loads pixels."""
    fmt = decoder_for(src)
    # Pillow's own bomb check agrees with ours while the file is open; the global is put
    # back afterwards so the limit of one call never leaks into other code in the process.
    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels
    try:
        with warnings.catch_warnings():  # the warning's range is refused just below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(src.path, formats=[fmt])
        with im:
            if im.format != fmt and not (fmt == "JPEG" and im.format == "MPO"):
                raise errors.TaskError(
                    errors.UNSUPPORTED_MEDIA, f"{src.name}: decoded as {im.format}, expected {fmt}"
                )
            width, height = im.size
            if width * height > max_pixels:
                raise errors.TaskError(errors.IMAGE_TOO_LARGE, _too_large(src, im.size, max_pixels))
            yield im
    except Image.DecompressionBombError:
        message = f"{src.name}: the image is over the limit of {max_pixels} pixels"
        raise errors.TaskError(errors.IMAGE_TOO_LARGE, message) from None
    except DECODE_ERRORS as e:
        raise errors.TaskError(
            errors.INVALID_MEDIA, f"{src.name}: cannot decode the {fmt} image ({e})"
        ) from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _too_large(src: Source, size: tuple[int, int], max_pixels: int) -> str:
    return f"{src.name}: {size[0]}x{size[1]} is over the limit of {max_pixels} pixels"


def _exif(im: Image.Image) -> Image.Exif:
    """The EXIF of an opened image, without decoding pixels (and empty if unreadable)."""
    if im.format == "PNG" and "exif" not in im.info:
        return Image.Exif()  # Pillow would decode the whole PNG to look after IDAT
    try:
        return im.getexif()
    except DECODE_ERRORS:
        return Image.Exif()


def _orientation(exif: Image.Exif) -> int | None:
    value = exif.get(0x0112)
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _decode(
    im: Image.Image, scaled: tuple[int, int], transposes: list[Image.Transpose]
) -> Image.Image:
    """Load ``im`` (already checked) as RGB or RGBA, upright, at a size fit for ``scaled``.

    ``scaled`` is the size the whole stored image will be resized to; a JPEG is decoded
    at the smallest DCT scale still ``DRAFT_GAP`` times that.
    """
    im.draft(
        None, (max(1, math.ceil(scaled[0] * DRAFT_GAP)), max(1, math.ceil(scaled[1] * DRAFT_GAP)))
    )
    im.load()
    out = _normalize(im)
    for method in transposes:
        out = out.transpose(method)
    return out


def _normalize(im: Image.Image) -> Image.Image:
    """RGB, or RGBA when the image has any transparency."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = im.point(lambda v: v / 257).convert("L")  # 16-bit samples would clip at 255
    alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    mode = "RGBA" if alpha else "RGB"
    return im if im.mode == mode else im.convert(mode)


def _swaps(transposes: list[Image.Transpose]) -> bool:
    swapping = {
        Image.Transpose.ROTATE_90,
        Image.Transpose.ROTATE_270,
        Image.Transpose.TRANSPOSE,
        Image.Transpose.TRANSVERSE,
    }
    return sum(t in swapping for t in transposes) % 2 == 1


def _upright(im: Image.Image, rotation: int = 0) -> tuple[list[Image.Transpose], tuple[int, int]]:
    """The transposes that make ``im`` upright then rotate it, and the size they give.

    Pillow's TIFF plugin already reports the upright size and turns the pixels on load.
    """
    orientation = None if im.format == "TIFF" else _orientation(_exif(im))
    transposes = [UPRIGHT[orientation]] if orientation in UPRIGHT else []
    if rotation:
        transposes.append(ROTATE[rotation])
    w, h = im.size
    return transposes, ((h, w) if _swaps(transposes) else (w, h))


def _stored(size: tuple[int, int], transposes: list[Image.Transpose]) -> tuple[int, int]:
    return (size[1], size[0]) if _swaps(transposes) else size


def _fitted(im: Image.Image, size: tuple[int, int], crop: Crop) -> Image.Image:
    """``im`` resized to ``size``, cropped to its aspect first when ``crop``: around the
    centre, or around the most salient region when ``crop`` is ``"smart"``."""
    if crop:
        box = saliency.interesting_box if crop == "smart" else _centre_box
        x, y, w, h = box(im, *size)
        return im.resize(size, RESAMPLE, box=(x, y, x + w, y + h), reducing_gap=REDUCING_GAP)
    return im if im.size == size else im.resize(size, RESAMPLE, reducing_gap=REDUCING_GAP)


def _centre_box(im: Image.Image, width: int, height: int) -> tuple[int, int, int, int]:
    return geometry.crop_box(im.width, im.height, width, height)


def _target(
    upright: tuple[int, int], width: int | None, height: int | None, crop: Crop
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The output size of an upright image fitted or cropped to ``width`` x ``height``, and
    the size the whole image is scaled to on the way (what decoding at reduced scale needs).
    """
    uw, uh = upright
    if not crop or width is None or height is None:  # cropping needs both sides
        size = geometry.output_size(uw, uh, width, height, False)
        return size, size
    _, _, cw, ch = geometry.crop_box(uw, uh, width, height)
    return (width, height), (max(1, round(uw * width / cw)), max(1, round(uh * height / ch)))


def _load_cell(src: Source, max_pixels: int, width: int, height: int, crop: bool) -> Image.Image:
    """``src`` upright and resized to fill (crop) or fit a ``width`` x ``height`` cell."""
    with opened(src, max_pixels) as im:
        transposes, upright = _upright(im)
        size, scaled = _target(upright, width, height, crop)
        return _fitted(_decode(im, _stored(scaled, transposes), transposes), size, crop)


def _upright_size(src: Source, max_pixels: int) -> tuple[int, int]:
    with opened(src, max_pixels) as im:
        return _upright(im)[1]


# -- writing -----------------------------------------------------------------------------


def _rgb_profile(im: Image.Image) -> bytes | None:
    """The source's ICC profile if it describes RGB (a CMYK or grey one would be wrong on
    the RGB output, so it is dropped)."""
    icc = im.info.get("icc_profile")
    return icc if isinstance(icc, bytes) and icc[16:20] == b"RGB " else None


def _flatten(im: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    if im.mode != "RGBA":
        return im
    base = Image.new("RGB", im.size, background)
    base.paste(im, mask=im.getchannel("A"))
    return base


def _palette(images: list[Image.Image]) -> Image.Image:
    """One adaptive palette for all ``images``, built from a sample of each of them."""
    per_image = max(4096, PALETTE_SAMPLE_PIXELS // len(images))
    samples = []
    for im in images:
        scale = min(1.0, math.sqrt(per_image / (im.width * im.height)))
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        samples.append(im if size == im.size else im.resize(size, Image.Resampling.BOX))
    mosaic = Image.new("RGB", (max(s.width for s in samples), sum(s.height for s in samples)))
    y = 0
    for s in samples:
        mosaic.paste(s, (0, y))
        y += s.height
    return mosaic.quantize(GIF_COLORS, method=Image.Quantize.MEDIANCUT)


def _dither(im: Image.Image, palette: Image.Image) -> Image.Image:
    """``im`` in ``palette``'s colours, Floyd-Steinberg dithered so gradients do not band."""
    return im.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)


def _save(im: Image.Image, dest: str, fmt: str, icc: bytes | None = None) -> None:
    pil_format, _, _, options = OUTPUTS[fmt]
    if fmt in ("jpeg", "gif"):
        im = _flatten(im)
    if fmt == "gif":
        im = _dither(im, _palette([im]))
    elif icc:
        options = {**options, "icc_profile": icc}
    im.save(dest, pil_format, **options)


def play_badge(im: Image.Image) -> Image.Image:
    """``im`` with a video "play" badge at its centre, sized to the image."""
    size = max(1, min(im.width, im.height, round(min(im.width, im.height) * 0.3)))
    ss = 4  # drawn at 4x and scaled down, for smooth edges
    big = size * ss
    badge = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(badge)
    draw.ellipse(
        (0, 0, big - 1, big - 1),
        fill=(0, 0, 0, 140),
        outline=(255, 255, 255, 230),
        width=max(1, big // 16),
    )
    r = big / 2
    draw.polygon(
        [(r - 0.3 * r, r - 0.45 * r), (r - 0.3 * r, r + 0.45 * r), (r + 0.5 * r, r)],
        fill=(255, 255, 255, 240),
    )
    badge = badge.resize((size, size), RESAMPLE)
    out = im.copy()
    out.paste(badge, ((im.width - size) // 2, (im.height - size) // 2), badge)
    return out


# -- the operations ----------------------------------------------------------------------


class ImageInfo(TypedDict):
    """What image.info reports (its whole result)."""

    content_type: str
    type: str
    width: int
    height: int
    alpha: bool
    exif_orientation: int | None
    rotation: float | None
    date_time: str | None
    flash: bool | None
    focal_length: float | None
    iso_speed: float | None
    exposure_time: float | None


class ThumbResult(TypedDict):
    width: int
    height: int
    original_width: int
    original_height: int


class StripResult(TypedDict):
    count: int
    width: int
    height: int
    content_type: str


class GifResult(TypedDict):
    width: int
    height: int
    count: int


def info(src: Source, max_pixels: int) -> ImageInfo:
    """image.info: header and EXIF facts, without decoding pixels."""
    with opened(src, max_pixels) as im:
        exif = _exif(im)
        try:
            sub = exif.get_ifd(EXIF_IFD)
        except DECODE_ERRORS:
            sub = {}
        alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
        orientation = _orientation(exif)
        flash = _number(sub.get(0x9209))
        width, height = im.size
        if im.format == "TIFF" and orientation in (5, 6, 7, 8):
            width, height = height, width  # Pillow reports TIFF sizes upright
        return ImageInfo(
            content_type=MIME[str(im.format) if im.format != "MPO" else "JPEG"],
            type="image",
            width=width,
            height=height,
            alpha=alpha,
            exif_orientation=orientation,
            rotation=EXIF_ROTATION.get(orientation) if orientation else None,
            date_time=_text(sub.get(0x9003) or exif.get(0x0132)),
            flash=None if flash is None else bool(int(flash) & 1),
            focal_length=_number(sub.get(0x920A)),
            iso_speed=_number(sub.get(0x8827)),
            exposure_time=_number(sub.get(0x829A)),
        )


def _number(value: Any) -> float | None:
    """An EXIF number (int, IFDRational, or a tuple of them) as a finite float."""
    if isinstance(value, tuple | list):
        value = value[0] if value else None
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    return value.strip("\x00 ") or None


def thumb(
    src: Source,
    dest: str,
    width: int | None,
    height: int | None,
    crop: Crop,
    rotation: int,
    poster: bool,
    fmt: str,
    max_pixels: int,
    overlay: Overlay | None = None,
) -> ThumbResult:
    """image.thumb: upright (EXIF), rotated counter-clockwise, then fitted or cropped, the
    play badge and then ``overlay`` drawn on it.

    ``width``/``height`` describe the output, after rotation; with neither the upright size
    is kept, and with one the other follows the aspect ratio. The original size reported is
    the upright one, before the rotation asked for.
    """
    crop = crop if width and height else False
    with opened(src, max_pixels) as im:
        transposes, (uw, uh) = _upright(im, rotation)
        size, scaled = _target((uw, uh), width, height, crop)
        if size[0] * size[1] > max_pixels:
            raise errors.TaskError(
                errors.IMAGE_TOO_LARGE,
                f"a {size[0]}x{size[1]} thumbnail is over the limit of {max_pixels} pixels",
            )
        icc = _rgb_profile(im)
        out = _fitted(_decode(im, _stored(scaled, transposes), transposes), size, crop)
    if poster:
        out = play_badge(out)
    if overlay:
        out = overlay(out)
    _save(out, dest, fmt, icc)
    original = (uh, uw) if rotation in (90, 270) else (uw, uh)
    return ThumbResult(
        width=size[0], height=size[1], original_width=original[0], original_height=original[1]
    )


def strip(
    sources: list[Source],
    dest: str,
    width: int | None,
    height: int | None,
    crop: bool,
    wrap: int | None,
    fmt: str,
    max_pixels: int,
    overlay: Overlay | None = None,
) -> StripResult:
    """image.strip: one cell per source, ``wrap`` per row, letterboxed (black, or
    transparent in PNG) unless cropping; ``overlay`` is drawn on the whole strip.

    One missing side of the cell follows the first image's aspect; with neither, the cell
    is the first image fitted into 160x120, never enlarged (as video.strip does).
    """
    if not (width and height):
        width, height = _cell_size(_upright_size(sources[0], max_pixels), width, height)
    cols, rows = geometry.grid(len(sources), wrap)
    total = (cols * width, rows * height)
    if total[0] * total[1] > max_pixels or max(total) > 65500:
        raise errors.TaskError(
            errors.IMAGE_TOO_LARGE, f"a {total[0]}x{total[1]} strip is over the size limit"
        )
    transparent = fmt == "png"
    canvas = Image.new(
        "RGBA" if transparent else "RGB", total, (0, 0, 0, 0) if transparent else (0, 0, 0)
    )
    for i, src in enumerate(sources):
        cell = _load_cell(src, max_pixels, width, height, crop)
        if not transparent:
            cell = _flatten(cell)
        x = (i % cols) * width + (width - cell.width) // 2
        y = (i // cols) * height + (height - cell.height) // 2
        canvas.paste(cell, (x, y), cell if cell.mode == "RGBA" else None)
    if overlay:
        canvas = overlay(canvas)
    canvas.save(dest, OUTPUTS[fmt][0], **OUTPUTS[fmt][3])
    return StripResult(
        count=len(sources), width=total[0], height=total[1], content_type=OUTPUTS[fmt][1]
    )


def _cell_size(first: tuple[int, int], width: int | None, height: int | None) -> tuple[int, int]:
    if width or height:
        return geometry.scale_to(*first, width, height)
    if first[0] <= STRIP_CELL[0] and first[1] <= STRIP_CELL[1]:
        return first
    return geometry.scale_to(*first, *STRIP_CELL)


def gif(
    sources: list[Source],
    dest: str,
    width: int | None,
    height: int | None,
    loop: int,
    frame_duration: float,
    max_pixels: int,
    fmt: str = "gif",
) -> GifResult:
    """image.gif: one frame per source, fitted (letterboxed on black) into the size of the
    first image unless ``width``/``height`` say otherwise; an animated GIF, or an animated
    WebP when ``fmt`` is ``"webp"`` (``animated_webp``).

    All frames share one palette built from a sample of every frame, and are
    Floyd-Steinberg dithered to it. Pillow then stores only the changed rectangle of each
    frame, with unchanged pixels transparent, and merges identical consecutive frames
    (adding their durations). ``loop`` -1 writes no NETSCAPE loop extension (play once).
    """
    if not (width and height):
        width, height = geometry.scale_to(*_upright_size(sources[0], max_pixels), width, height)
    if width * height * len(sources) > max_pixels:
        raise errors.TaskError(
            errors.IMAGE_TOO_LARGE,
            f"{len(sources)} frames of {width}x{height} are over the limit of {max_pixels} pixels",
        )
    frames = []
    for src in sources:
        cell = _flatten(_load_cell(src, max_pixels, width, height, False))
        frame = Image.new("RGB", (width, height))
        frame.paste(cell, ((width - cell.width) // 2, (height - cell.height) // 2))
        frames.append(frame)
    if fmt == "webp":
        animated_webp(frames, dest, frame_duration, loop)
        return {"width": width, "height": height, "count": len(frames)}
    palette = _palette(frames)
    frames = _stable(frames, [_dither(f, palette) for f in frames])
    options: dict[str, Any] = {
        "save_all": True,
        "append_images": frames[1:],
        "optimize": True,
        "duration": gif_duration_ms(frame_duration),
        "disposal": 1,
        "interlace": False,
        "palette": palette.getpalette(),
    }
    if loop >= 0:
        options["loop"] = loop
    frames[0].save(dest, "GIF", **options)
    return GifResult(width=width, height=height, count=len(frames))


def gif_duration_ms(seconds: float) -> int:
    """A frame's duration as a GIF stores it: whole hundredths of a second, in ms."""
    return round(seconds * 100) * 10


def animated_webp(frames: list[Image.Image], dest: str, frame_duration: float, loop: int) -> None:
    """``frames`` as an animated WebP (lossy, full colour) that plays as our GIF would.

    The same duration per frame, rounded as in the GIF, and identical consecutive frames
    merged into one showing for their total (libwebp's encoder does that by itself). WebP
    counts plays where a GIF's loop extension counts repeats after the first play, so
    ``loop`` (GIF's meaning: 0 forever, -1 once, n repeats) becomes ``n + 1`` plays.
    """
    plays = 0 if loop == 0 else min(65535, max(1, loop + 1))
    frames[0].save(
        dest,
        "WEBP",
        save_all=True,
        append_images=frames[1:],
        duration=gif_duration_ms(frame_duration),
        loop=plays,
        **OUTPUTS["webp"][3],
    )


def _stable(sources: list[Image.Image], frames: list[Image.Image]) -> list[Image.Image]:
    """Give pixels whose source colour did not change the previous frame's palette index.

    Error diffusion spreads any change down and right, so without this every frame would
    differ almost everywhere; with it, Pillow's delta encoding sees only the real change.
    """
    previous_src = previous = None
    out = []
    for src, frame in zip(sources, frames, strict=True):
        rgb, idx = np.asarray(src), np.array(frame)
        if previous is not None:
            same = (rgb == previous_src).all(axis=2)
            idx[same] = previous[same]
            frame = Image.fromarray(idx)
            frame.putpalette(frames[0].getpalette() or [])
        previous_src, previous = rgb, idx
        out.append(frame)
    return out


async def fetch_sources(
    ctx: Fetches, urls: list[str], limit: int = FETCH_CONCURRENCY
) -> list[Source]:
    """Download ``urls`` concurrently, at most ``limit`` at a time; a failure names its URL."""
    gate = asyncio.Semaphore(limit)

    async def one(url: str) -> Source:
        async with gate:
            try:
                download = await ctx.fetch(url)
            except errors.TaskError as e:
                message = e.message if url in e.message else f"{url}: {e.message}"
                raise errors.TaskError(e.code, message) from None
        return Source(str(download.path), url, download.mime)

    jobs = [asyncio.ensure_future(one(url)) for url in urls]
    try:
        return list(await asyncio.gather(*jobs))
    finally:
        for job in jobs:
            job.cancel()


def output_path(tmpdir: Path, fmt: str) -> Path:
    return Path(tmpdir) / f"output.{OUTPUTS[fmt][2]}"
