"""Sizes and crop boxes, shared by image and video tasks so both agree to the pixel.

Conventions: ``width``/``height`` requested by a user may be None. One alone keeps the
aspect ratio. With both, ``crop`` fills the box and centre-crops the overflow; without it
the source fits inside the box (the result may be smaller on one side).
"""

from __future__ import annotations


def scale_to(sw: int, sh: int, width: int | None, height: int | None) -> tuple[int, int]:
    """The size of the source scaled to fit inside ``width`` x ``height`` (either may be None)."""
    if not width and not height:
        return sw, sh
    ratio = min(side / source for side, source in ((width, sw), (height, sh)) if side)
    return max(1, round(sw * ratio)), max(1, round(sh * ratio))


def crop_box(sw: int, sh: int, width: int, height: int) -> tuple[int, int, int, int]:
    """The centred ``(x, y, w, h)`` region of the source with the aspect of ``width:height``."""
    target = width / height
    if sw / sh > target:
        cw, ch = max(1, round(sh * target)), sh
    else:
        cw, ch = sw, max(1, round(sw / target))
    return (sw - cw) // 2, (sh - ch) // 2, cw, ch


def output_size(
    sw: int, sh: int, width: int | None, height: int | None, crop: bool
) -> tuple[int, int]:
    """Final size of a thumbnail: the box itself when cropping with both sides given."""
    if crop and width and height:
        return width, height
    return scale_to(sw, sh, width, height)


def letterbox(sw: int, sh: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Where a fitted source lands inside a ``width`` x ``height`` cell: ``(x, y, w, h)``."""
    w, h = scale_to(sw, sh, width, height)
    return (width - w) // 2, (height - h) // 2, w, h


def even(n: float) -> int:
    """Round to the nearest even integer >= 2 (H.264 with 4:2:0 needs even sizes)."""
    return max(2, int(round(n / 2.0)) * 2)


def grid(count: int, wrap: int | None) -> tuple[int, int]:
    """Columns and rows for ``count`` cells, ``wrap`` per row (None: one row)."""
    cols = min(count, wrap) if wrap else count
    cols = max(cols, 1)
    return cols, max(1, -(-count // cols))
