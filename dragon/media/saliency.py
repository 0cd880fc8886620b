"""Where the interesting part of a picture is: the crop window behind ``crop: "smart"``.

In the spirit of libvips' ``interesting=attention``: a saliency map is computed on a small
copy of the picture (a few thousand pixels, so it costs little next to the decode and the
resize), as the sum of three cues that each mark what draws the eye on a photo:

* edges: the luminance gradient, high on detail and outlines, zero on flat background;
* saturation: the chroma (max - min of R, G, B), high on vivid colour;
* contrast with the mean: how far a pixel's colour is from the picture's average colour,
  so a small subject on a plain background stands out even when it is grey or white.

The cues are summed in their natural 0-255 units, not normalised per picture, so a picture
with no subject gives a flat, weak map instead of an amplified noise pattern. A crop of
the output's aspect spans the whole picture along one axis, so only its offset along the
other one is free: the map is summed across the fixed axis into a profile, whose running
total (a one-dimensional integral image) gives every window's total saliency at once.
Windows within ``TIE`` of the best one are equally good: of those, the one nearest the
centre wins, so a picture without a clear subject is cropped as ``crop: true`` would.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from dragon.media import geometry

# The longer side of the copy the map is computed on: enough to place a 400 px crop within a
# few pixels, small enough that the map costs about a millisecond.
MAP_SIDE = 192
# Windows whose saliency is within this fraction of the best are taken as ties.
TIE = 0.01
WHITE = (255, 255, 255)


def saliency_map(picture: Image.Image) -> np.ndarray:
    """The saliency (edges + saturation + contrast with the mean) of ``picture``, as a
    float32 array of the picture's shape; transparent areas count as white, the colour
    an opaque output gives them."""
    if picture.mode == "RGBA":
        base = Image.new("RGB", picture.size, WHITE)
        base.paste(picture, mask=picture.getchannel("A"))
        picture = base
    rgb = np.asarray(picture.convert("RGB"), dtype=np.float32)
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    edges = np.zeros_like(luma)
    edges[:, 1:] += np.abs(np.diff(luma, axis=1))
    edges[1:, :] += np.abs(np.diff(luma, axis=0))
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    contrast = np.sqrt(((rgb - rgb.mean(axis=(0, 1))) ** 2).sum(axis=2))
    total: np.ndarray = edges + saturation + contrast
    return total


def _small(picture: Image.Image) -> Image.Image:
    """A copy of ``picture`` whose longer side is about ``MAP_SIDE`` (box-averaged)."""
    factor = max(1, max(picture.size) // MAP_SIDE)
    return picture.reduce(factor) if factor > 1 else picture


def best_offset(profile: np.ndarray, length: float, window: int, free: int) -> int:
    """The offset in ``0..free`` of the ``window``-long span, on an axis ``length`` long,
    that holds the most of ``profile`` (saliency per cell of ``len(profile)`` equal cells
    covering that axis); ties go to the offset nearest the centre.

    The running total is interpolated linearly inside a cell, so offsets are exact to the
    pixel of the full axis even though the profile is coarse.
    """
    total = np.concatenate(([0.0], np.cumsum(profile, dtype=np.float64)))
    cells = np.linspace(0.0, length, len(total))
    offsets = np.arange(free + 1, dtype=np.float64)
    scores = np.interp(offsets + window, cells, total) - np.interp(offsets, cells, total)
    best = scores.max()
    ties = np.flatnonzero(scores >= best - TIE * abs(best))
    return int(ties[np.argmin(np.abs(ties - free / 2))])


def interesting_box(picture: Image.Image, width: int, height: int) -> tuple[int, int, int, int]:
    """The ``(x, y, w, h)`` region of ``picture`` with the aspect ``width:height`` (the size
    ``geometry.crop_box`` gives) that holds the most saliency."""
    x, y, cw, ch = geometry.crop_box(picture.width, picture.height, width, height)
    if cw == picture.width and ch == picture.height:
        return x, y, cw, ch
    salient = saliency_map(_small(picture))
    if cw < picture.width:  # a wider picture: slide along x
        x = best_offset(salient.sum(axis=0), picture.width, cw, picture.width - cw)
    else:
        y = best_offset(salient.sum(axis=1), picture.height, ch, picture.height - ch)
    return x, y, cw, ch
