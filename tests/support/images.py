"""Small test images made with Pillow, and a tolerant pixel comparison."""

from __future__ import annotations

import io

from PIL import Image

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def halves(top=RED, bottom=BLUE, size=(60, 60)) -> Image.Image:
    """``top`` colour above, ``bottom`` below: orientation and crops show at a glance."""
    im = Image.new("RGB", size, top)
    im.paste(bottom, (0, size[1] // 2, size[0], size[1]))
    return im


def close(pixel, color, tol=40) -> bool:
    """Is ``pixel`` ``color`` within ``tol`` per channel (JPEG and scaling move colours)?"""
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel[:3], color, strict=True))


def truncated_jpeg() -> bytes:
    """The first half of a valid JPEG."""
    data = io.BytesIO()
    halves(size=(400, 300)).save(data, "JPEG")
    return data.getvalue()[: len(data.getvalue()) // 2]
