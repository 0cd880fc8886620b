"""Watermarks: where a logo goes on an output, how large, and how opaque.

One definition for every task that takes ``watermark`` (``video.convert``, ``image.thumb``,
``image.strip``), so a logo sits at the same place on a video and on its thumbnail. Sizes
are fractions of the output's width, so one request fits every output size: ``size`` is the
logo's width (its height follows its aspect), ``margin`` the gap to the edges it is placed
against. The logo itself is read with the same guarded Pillow decoder as any source image,
resized and given its opacity here (in the process pool), and handed to ffmpeg as a PNG
this server wrote, never as the downloaded file.
"""

from __future__ import annotations

import dataclasses

from PIL import Image

from dragon.media import image

POSITIONS = (
    *("top-left", "top", "top-right"),
    *("left", "center", "right"),
    *("bottom-left", "bottom", "bottom-right"),
)


@dataclasses.dataclass(frozen=True)
class Watermark:
    """A validated ``watermark`` parameter (``dragon.tasks.schema.Watermark``)."""

    url: str
    position: str = "bottom-right"
    size: float = 0.15  # of the output's width
    opacity: float = 1.0
    margin: float = 0.02  # of the output's width


def box(
    spec: Watermark, output: tuple[int, int], logo: tuple[int, int]
) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of the logo on an ``output``-sized picture, in pixels."""
    ow, oh = output
    w = max(1, round(spec.size * ow))
    h = max(1, round(w * logo[1] / logo[0]))
    if h > oh:  # a tall logo on a wide output: fit its height instead
        h, w = oh, max(1, round(oh * logo[0] / logo[1]))
    margin = round(spec.margin * ow)
    vertical, _, horizontal = _sides(spec.position)
    x = {"left": margin, "center": (ow - w) // 2, "right": ow - w - margin}[horizontal]
    y = {"top": margin, "center": (oh - h) // 2, "bottom": oh - h - margin}[vertical]
    return x, y, w, h


def _sides(position: str) -> tuple[str, str, str]:
    """``("top" | "center" | "bottom", "-", "left" | "center" | "right")``."""
    if position == "center":
        return "center", "-", "center"
    if position in ("top", "bottom"):
        return position, "-", "center"
    if position in ("left", "right"):
        return "center", "-", position
    vertical, _, horizontal = position.partition("-")
    return vertical, "-", horizontal


def prepare(
    src: image.Source, spec: Watermark, output: tuple[int, int], max_pixels: int
) -> tuple[Image.Image, tuple[int, int]]:
    """The logo resized for ``output``, with its opacity, as RGBA; and where it goes."""
    with image.opened(src, max_pixels) as im:
        logo = im.convert("RGBA")
    x, y, w, h = box(spec, output, logo.size)
    logo = logo.resize((w, h), image.RESAMPLE)
    if spec.opacity < 1.0:
        alpha = logo.getchannel("A").point(lambda a: round(a * spec.opacity))
        logo.putalpha(alpha)
    return logo, (x, y)


def write(
    src: image.Source, spec: Watermark, output: tuple[int, int], dest: str, max_pixels: int
) -> tuple[int, int]:
    """``prepare`` saved as a PNG at ``dest`` (for ffmpeg); returns where it goes."""
    logo, place = prepare(src, spec, output, max_pixels)
    logo.save(dest, "PNG")
    return place


def apply(picture: Image.Image, src: image.Source, spec: Watermark, max_pixels: int) -> Image.Image:
    """``picture`` with the logo drawn on it (alpha-composited, same mode back)."""
    logo, place = prepare(src, spec, picture.size, max_pixels)
    mode = picture.mode
    canvas = picture.convert("RGBA")
    canvas.alpha_composite(logo, place)
    return canvas if mode == "RGBA" else canvas.convert(mode)
