"""``<text>`` drawn by Pillow with the bundled DejaVu fonts into a transparent PNG.

Why Pillow rather than ffmpeg's ``drawtext``: a zone's font size is *fitted* to its box,
which needs real measurements of wrapped lines; Pillow measures and draws with the same
FreeType code, so what we measure is what is drawn. The text is drawn once (not once per
frame), there is no filter-string escaping to get wrong, and the PNG is cropped to the text
block so the overlay only touches those pixels. ``antialias`` supersamples the glyph mask.

Layout (our reading of SXML, docs/sxml.md):
- ``legend``: a caption centred at the bottom (text ending at 92 % of the height), font
  6 % of the height, on a half-transparent black band, unless placed explicitly;
- ``zone``/``advanced``: text in the placement box (default: the frame less 5 % on each
  side), the largest font (at most 20 % of the height) whose wrapped lines fit, aligned by
  ``align`` ("left,bottom", "center", ...; default centred);
- ``fontsize`` is in pixels at 360 lines and scales with the frame height;
- ``fontname`` maps the old service's font names to DejaVu faces; others use DejaVu Sans.
"""

from __future__ import annotations

import dataclasses
import os
import re

from PIL import Image, ImageDraw, ImageFont

from dragon import errors
from dragon.sxml import layout
from dragon.sxml.stills import Raster

FONT_DIR = "/usr/share/fonts/truetype/dejavu"
DEFAULT_FONT = "DejaVuSans.ttf"
FONTS = {
    "arial": "DejaVuSans.ttf",
    "verdana": "DejaVuSans.ttf",
    "comicsansms": "DejaVuSans.ttf",
    "arialbold": "DejaVuSans-Bold.ttf",
    "arialroundedmtbold": "DejaVuSans-Bold.ttf",
    "landspeedrecord": "DejaVuSans-Bold.ttf",
    "couriernew": "DejaVuSansMono.ttf",
    "timesnewroman": "DejaVuSerif.ttf",
    "saddlebag": "DejaVuSerif-Bold.ttf",
}
LEGEND_FONT = 0.06  # of the frame height
LEGEND_BASE = 0.92  # where a legend's last line ends, as a fraction of the height
LEGEND_BAND = (0, 0, 0, 128)
ZONE_INSET = 0.05
ZONE_MAX_FONT = 0.20
LINE_SPACING = 1.2
PADDING = 0.3  # of the font size, around a background band
MIN_FONT = 6
RESAMPLE = Image.Resampling.LANCZOS


@dataclasses.dataclass(frozen=True)
class TextJob:
    text: str
    kind: str  # legend | zone | advanced
    frame: tuple[int, int]
    spec: dict[str, float] | None  # placement, None when the element has none
    fontsize: float | None
    fontname: str | None
    color: tuple[int, int, int, int]
    background: tuple[int, int, int, int] | None
    align: str
    scale: int
    out: str


def clean(text: str) -> str:
    """Strip the text, collapse runs of spaces inside lines, keep explicit line breaks."""
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.strip().split("\n")]
    return "\n".join(lines)


def font_path(name: str | None) -> str:
    path = os.path.join(FONT_DIR, FONTS.get((name or "").lower().replace(" ", ""), DEFAULT_FONT))
    if not os.path.exists(path):
        raise errors.TaskError(
            errors.INTERNAL_ERROR,
            f"the font {path} is not installed (fonts-dejavu-core; run make install)",
        )
    return path


def render_text(job: TextJob) -> Raster | None:
    """Draw ``job`` into ``job.out``; None when there is no text to draw."""
    text = clean(job.text)
    if not text:
        return None
    s = job.scale
    width, height = job.frame
    box = _box(job)
    bx, by, bw, bh = (v * s for v in box)
    h_align, v_align = _alignment(job.align, job.kind)
    path = font_path(job.fontname)
    if job.fontsize:
        size = job.fontsize * height / 360
    elif job.kind == "legend":
        size = LEGEND_FONT * height
    else:
        size = _fitted_size(text, path, box[2], box[3], ZONE_MAX_FONT * height)
    # Never larger than the box: a huge fontsize must not allocate a huge canvas.
    size = min(size, box[3])
    font = ImageFont.truetype(path, max(MIN_FONT, round(size * s)))
    lines = _wrap(text, font, bw)
    ascent, descent = font.getmetrics()
    line_h = round((ascent + descent) * LINE_SPACING)
    lines = lines[: max(1, bh // max(1, line_h) + 1)]  # only what can show in the box
    block_w = max(1, max(round(font.getlength(line)) for line in lines))
    block_h = line_h * (len(lines) - 1) + ascent + descent
    background = job.background or (LEGEND_BAND if job.kind == "legend" else None)
    pad = round(PADDING * font.size) if background else 0
    cw, ch = min(block_w + 2 * pad, bw), min(block_h + 2 * pad, bh)
    cx = bx + {"left": 0, "right": bw - cw}.get(h_align, (bw - cw) // 2)
    if job.kind == "legend" and job.spec is None:
        cy = round(LEGEND_BASE * height * s) - ch
    else:
        cy = by + {"top": 0, "bottom": bh - ch}.get(v_align, (bh - ch) // 2)

    mask = Image.new("L", (cw, ch), 0)
    draw = ImageDraw.Draw(mask)
    for i, line in enumerate(lines):
        lw = font.getlength(line)
        lx = pad + {"left": 0, "right": block_w - lw}.get(h_align, (block_w - lw) / 2)
        draw.text((lx, pad + i * line_h), line, font=font, fill=255, anchor="la")

    # Back to frame pixels: positions and the glyph mask scaled down by the supersampling.
    x, y = round(cx / s), round(cy / s)
    w, h = max(1, round(cw / s)), max(1, round(ch / s))
    if s != 1:
        mask = mask.resize((w, h), RESAMPLE)
    r, g, b, a = job.color
    ink = Image.new("RGBA", (w, h), (r, g, b, 0))
    ink.putalpha(mask.point(lambda v: v * a // 255))
    canvas = Image.new("RGBA", (w, h), background or (r, g, b, 0))
    canvas = Image.alpha_composite(canvas, ink)
    x, y, inside = _clip(x, y, canvas, width, height)
    if inside is None:
        return None
    inside.save(job.out, "PNG", compress_level=1)
    return Raster(job.out, x, y, inside.width, inside.height, True, inside.width * inside.height)


def _box(job: TextJob) -> layout.Box:
    width, height = job.frame
    if job.spec:
        return layout.place(job.spec, width, height)
    inset_x, inset_y = round(ZONE_INSET * width), round(ZONE_INSET * height)
    return inset_x, inset_y, width - 2 * inset_x, height - 2 * inset_y


def _alignment(align: str, kind: str) -> tuple[str, str]:
    h, v = "center", "bottom" if kind == "legend" else "center"
    for word in (w.strip().lower() for w in align.split(",")):
        if word in ("left", "right"):
            h = word
        elif word in ("top", "bottom"):
            v = word
        elif word == "justify":
            h = "left"
    return h, v


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """Greedy word wrap to ``width`` pixels; words longer than a line are cut."""
    out: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= width or not line:
                line = candidate
            else:
                out.append(line)
                line = word
            while font.getlength(line) > width and len(line) > 1:
                # The longest prefix that fits, by bisection: cutting one character at a
                # time made a long word cost minutes of a pool worker.
                lo, hi = 1, len(line) - 1
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    if font.getlength(line[:mid]) <= width:
                        lo = mid
                    else:
                        hi = mid - 1
                out.append(line[:lo])
                line = line[lo:]
        out.append(line)
    return out


def _fitted_size(text: str, path: str, width: int, height: int, largest: float) -> float:
    """The largest font size whose wrapped text fits ``width`` x ``height`` (bisection)."""
    low, high = MIN_FONT, max(MIN_FONT, int(min(largest, height)))
    while low < high:
        mid = (low + high + 1) // 2
        font = ImageFont.truetype(path, mid)
        lines = _wrap(text, font, width)
        ascent, descent = font.getmetrics()
        fits_height = (ascent + descent) * (LINE_SPACING * (len(lines) - 1) + 1) <= height
        fits_width = max(font.getlength(line) for line in lines) <= width
        if fits_height and fits_width:
            low = mid
        else:
            high = mid - 1
    return low


def _clip(
    x: int, y: int, canvas: Image.Image, width: int, height: int
) -> tuple[int, int, Image.Image | None]:
    """Crop what falls outside the frame (ffmpeg's overlay wants the layer inside it)."""
    left, top = max(0, -x), max(0, -y)
    right = min(canvas.width, width - x)
    bottom = min(canvas.height, height - y)
    if right <= left or bottom <= top:
        return x, y, None
    if (left, top, right, bottom) != (0, 0, canvas.width, canvas.height):
        canvas = canvas.crop((left, top, right, bottom))
    return x + left, y + top, canvas
