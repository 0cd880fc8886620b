"""Placement boxes in pixels (docs/sxml.md), shared by overlays and text zones.

``top``/``bottom``/``height`` are fractions of the frame height, ``left``/``right``/
``width`` fractions of its width, each a number or ``auto``. A missing size comes from the
media's aspect ratio when only the other size is given, else from the opposite margins;
a position comes from the near margin, else the far one, else the box is centred.
"""

from __future__ import annotations

from dragon.media.geometry import even

Box = tuple[int, int, int, int]  # x, y, w, h


MAX_BOX = 2  # largest placement box, in frames


def placement(attrs: dict[str, str]) -> dict[str, float]:
    """The numeric placement attributes of an element (``auto`` and absent are left out)."""
    out = {}
    for name in ("top", "bottom", "left", "right", "width", "height"):
        raw = attrs.get(name, "").strip().lower()
        if raw and raw != "auto":
            out[name] = float(raw)
    return out


def place(spec: dict[str, float], width: int, height: int, aspect: float | None = None) -> Box:
    """The box of ``spec`` (from ``placement``) in a ``width`` x ``height`` frame.

    ``aspect`` (w/h of the media) keeps the media's shape when only one size is given.
    """
    left, right = spec.get("left"), spec.get("right")
    top, bottom = spec.get("top"), spec.get("bottom")
    w = spec["width"] * width if "width" in spec else None
    h = spec["height"] * height if "height" in spec else None
    if w is None and h is not None and aspect:
        w = h * aspect
    if h is None and w is not None and aspect:
        h = w / aspect
    if w is None:
        w = width * (1 - (left or 0.0) - (right or 0.0))
    if h is None:
        h = height * (1 - (top or 0.0) - (bottom or 0.0))
    # At most twice the frame: a larger box shows nothing more, and at 10x a 1080p frame
    # one overlay was a 200-megapixel still that ffmpeg scaled on every frame.
    w, h = min(even(w), even(width * MAX_BOX)), min(even(h), even(height * MAX_BOX))
    x = _position(left, right, w, width)
    y = _position(top, bottom, h, height)
    return x, y, w, h


def _position(near: float | None, far: float | None, size: int, total: int) -> int:
    if near is not None:
        return round(near * total)
    if far is not None:
        return round(total - far * total - size)
    return round((total - size) / 2)


def fit(box: Box, aspect: float) -> Box:
    """The largest box of ``aspect`` centred inside ``box`` (letterboxing)."""
    x, y, w, h = box
    if w / h > aspect:
        fw, fh = even(h * aspect), h
    else:
        fw, fh = w, even(w / aspect)
    return x + (w - fw) // 2, y + (h - fh) // 2, fw, fh
