"""Pictures of a definition, decoded by Pillow into files that only we write.

ffmpeg never reads a user's image: Pillow decodes it under ``dragon.media.image.opened``
(magic-byte sniffing, one decoder, the pixel limit checked before decoding), applies the
EXIF orientation and resizes it for its use, and ffmpeg then reads our own file: a PNG
when the picture has transparency, else a quality-95 JPEG. Not PNG for everything:
ffmpeg decodes its inputs on one thread, and a 2560x1440 PNG cost it 0.4 s against
0.05 s for the JPEG (measured), a third of a 720p slideshow's render. Resizing here
rather than in the filtergraph means a still is decoded and scaled once, not per frame,
and Lanczos gives better pictures than swscale's default.

Uses: ``fill`` (crop to the box, the default adapters), ``fit`` (keep the whole picture:
the box shrinks to the picture's shape and the renderer letterboxes it) and ``stretch``
(``adapter="none"``, and overlays, which SXML stretches). Kenburns sources are rendered at
up to ``scale`` times the frame (never beyond the source's own resolution), so that
zoompan's whole-pixel crops move in sub-pixel steps.

Functions here run in the process pool (``ctx.in_process``): arguments are picklable and
errors are ``TaskError``s (picklable).
"""

from __future__ import annotations

import dataclasses
import math

from PIL import Image, ImageOps

from dragon.media import geometry
from dragon.media.geometry import even
from dragon.media.image import Source, opened
from dragon.sxml import layout

RESAMPLE = Image.Resampling.LANCZOS
REDUCING_GAP = 2.0
JPEG_QUALITY = 95


@dataclasses.dataclass(frozen=True)
class Raster:
    """A PNG we wrote, and where it goes in the frame (at scale 1)."""

    path: str
    x: int
    y: int
    w: int
    h: int
    alpha: bool
    pixels: int  # of the file (a kenburns source is larger than its box)


@dataclasses.dataclass(frozen=True)
class StillJob:
    source: str  # the downloaded file
    name: str  # its URL, for messages
    mime: str | None
    out: str  # without extension: .jpg for opaque pictures, .png with transparency
    frame: tuple[int, int]
    spec: dict[str, float] | None  # placement (overlays); None: the whole frame
    mode: str  # fill | fit | stretch | pan (fill without the crop: panned across later)
    scale: int  # at most this many source pixels per frame pixel (kenburns: 2)
    max_pixels: int


def render_still(job: StillJob) -> Raster:
    width, height = job.frame
    with opened(Source(job.source, job.name, job.mime), job.max_pixels) as im:
        swapped = _orientation(im) in (5, 6, 7, 8)
        upright = (im.height, im.width) if swapped else im.size
        x, y, w, h = _box(job, upright[0] / upright[1])
        cover = max(w / upright[0], h / upright[1])
        factor = min(job.scale, max(1.0, 1 / cover))  # never upscale past the source
        size = (max(2, even(w * factor)), max(2, even(h * factor)))
        if job.mode == "pan":  # as much wider (or taller) than the box as the picture is
            ratio = max(size[0] / upright[0], size[1] / upright[1])
            size = (max(2, even(upright[0] * ratio)), max(2, even(upright[1] * ratio)))
        if job.mode == "fill":
            ratio = max(size[0] / upright[0], size[1] / upright[1])
            need = (upright[0] * ratio, upright[1] * ratio)
        else:
            need = size
        # JPEG: decode at the smallest DCT scale still covering what we need.
        need_w, need_h = (need[1], need[0]) if swapped else need
        im.draft(None, (math.ceil(need_w), math.ceil(need_h)))
        picture = _normalized(ImageOps.exif_transpose(im))  # decode errors: see opened()
    if job.mode == "fill":
        crop = geometry.crop_box(picture.width, picture.height, *size)
        cx, cy, cw, ch = crop
        picture = picture.resize(
            size, RESAMPLE, box=(cx, cy, cx + cw, cy + ch), reducing_gap=REDUCING_GAP
        )
    elif picture.size != size:
        picture = picture.resize(size, RESAMPLE, reducing_gap=REDUCING_GAP)
    alpha = picture.mode == "RGBA"
    path = job.out + (".png" if alpha else ".jpg")
    if alpha:
        picture.save(path, "PNG", compress_level=1)
    else:
        picture.save(path, "JPEG", quality=JPEG_QUALITY, subsampling="4:2:0")
    return Raster(path, x, y, w, h, alpha, size[0] * size[1])


def _box(job: StillJob, aspect: float) -> layout.Box:
    width, height = job.frame
    box = (
        (0, 0, width, height) if job.spec is None else layout.place(job.spec, width, height, aspect)
    )
    return layout.fit(box, aspect) if job.mode == "fit" else box


def _orientation(im: Image.Image) -> int | None:
    if im.format != "JPEG":
        return None  # other formats would decode everything to read their EXIF
    value = im.getexif().get(0x0112)
    return value if isinstance(value, int) else None


def _normalized(im: Image.Image) -> Image.Image:
    """RGB, or RGBA when the picture has transparency."""
    alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = im.point(lambda v: v / 257).convert("L")
    mode = "RGBA" if alpha else "RGB"
    return im if im.mode == mode else im.convert(mode)
