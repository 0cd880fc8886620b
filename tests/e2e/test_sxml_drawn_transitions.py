"""The transitions drawn with geometry rather than as xfades, checked on the frames of real
renders through the HTTP API: ``cube`` (two faces of a cube turning in perspective),
``swirl`` (a twist about the centre) and ``waterdrop`` (ripples, and the incoming picture
spreading from the centre)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from tests.support import media
from tests.support.movies import H, W, frame
from tests.support.movies import render as render_movie


def stripes() -> bytes:
    """Vertical black and white stripes, 20 pixels wide."""
    picture = np.zeros((240, 320, 3), np.uint8)
    picture[:, (np.arange(320) // 20) % 2 == 1] = 255
    out = io.BytesIO()
    Image.fromarray(picture).save(out, "PNG")
    return out.getvalue()


def colours(origin) -> tuple[str, str]:
    return (
        origin.add("drawn/red.png", media.image_bytes(320, 240, (255, 0, 0), "PNG"), "image/png"),
        origin.add("drawn/blue.png", media.image_bytes(320, 240, (0, 0, 255), "PNG"), "image/png"),
    )


def render(
    server, origin, kind: str, direction: str, tmp_path: Path, pictures: tuple[str, str] = ()
) -> Path:
    """Red for 2 s, then blue (or ``pictures``), through a 1 s ``kind`` transition (frames
    25 to 49): a 3 s movie."""
    first, second = pictures or colours(origin)
    body = (
        f'<effect type="none" duration="2"><image filename="{first}"/></effect>'
        f'<transition type="{kind}" direction="{direction}" duration="1"/>'
        f'<effect type="none" duration="2"><image filename="{second}"/></effect>'
    )
    return render_movie(server, body, tmp_path, f"{kind}-{direction}")


def red(picture: np.ndarray) -> np.ndarray:
    return (picture[:, :, 0] > 150) & (picture[:, :, 2] < 100)


def blue(picture: np.ndarray) -> np.ndarray:
    return (picture[:, :, 2] > 150) & (picture[:, :, 0] < 100)


def test_a_cube_turns_left_in_perspective(dragon_server, origin, tmp_path):
    path = render(dragon_server, origin, "cube", "left", tmp_path)
    assert red(frame(path, 20)).mean() > 0.95  # before the turn: the red face, whole
    assert blue(frame(path, 55)).mean() > 0.95  # after it: the blue one
    middle = frame(path, 37)
    r, b = red(middle), blue(middle)
    columns_r, columns_b = np.nonzero(r.any(axis=0))[0], np.nonzero(b.any(axis=0))[0]
    # Red (outgoing) on the left, blue (incoming) on the right, meeting at one edge.
    assert columns_r.size and columns_b.size
    assert columns_r.max() < columns_b.min() + 3
    assert 0.3 * W < columns_b.min() < 0.7 * W
    # Perspective: the shared edge is nearest, so taller than either far edge; above and
    # below the far edges, black.
    seam = columns_b.min()
    height = lambda mask, x: int(mask[:, x].sum())  # noqa: E731
    near = max(height(r, seam - 3), height(b, seam + 3))
    assert near > height(r, columns_r.min() + 2) + 10
    assert near > height(b, columns_b.max() - 2) + 10
    assert middle[:8, columns_r.min() + 2].max() < 40  # black above the far left edge
    # The turn moves on: a quarter in, red is the wider face; three quarters in, blue is.
    early, late = frame(path, 29), frame(path, 45)
    assert red(early).sum() > 2 * blue(early).sum()
    assert blue(late).sum() > 2 * red(late).sum()


def test_a_cube_turns_up_about_the_horizontal_axis(dragon_server, origin, tmp_path):
    path = render(dragon_server, origin, "cube", "up", tmp_path)
    middle = frame(path, 37)
    r, b = red(middle), blue(middle)
    rows_r, rows_b = np.nonzero(r.any(axis=1))[0], np.nonzero(b.any(axis=1))[0]
    assert rows_r.size and rows_b.size
    assert rows_r.max() < rows_b.min() + 3  # red above, blue below
    seam = rows_b.min()
    width = lambda mask, y: int(mask[y, :].sum())  # noqa: E731
    near = max(width(r, seam - 3), width(b, seam + 3))
    assert near > width(r, rows_r.min() + 2) + 10
    assert near > width(b, rows_b.max() - 2) + 10


def test_a_swirl_twists_the_pictures_about_the_centre(dragon_server, origin, tmp_path):
    """Stripes into the same stripes: what moves is the twist alone. Mid-way the stripes
    are bent in a ring around the centre; the centre and the corners stay."""
    striped = origin.add("drawn/stripes.png", stripes(), "image/png")
    path = render(dragon_server, origin, "swirl", "left", tmp_path, (striped, striped))
    still, middle = frame(path, 10), frame(path, 37)
    changed = np.abs(middle - still).mean(axis=2) > 60
    ring = changed[H // 2 - 60 : H // 2 + 60, W // 2 - 80 : W // 2 + 80]
    assert ring.mean() > 0.2  # stripes bent across the middle of the frame
    # The centre stays (but for the column on a stripe's edge there, read to the nearest).
    assert changed[H // 2 - 4 : H // 2 + 5, W // 2 - 4 : W // 2 + 5].mean() < 0.2
    assert changed[:10, :10].mean() < 0.05 and changed[-10:, -10:].mean() < 0.05  # corners


def test_a_waterdrop_ripples_and_spreads_from_the_centre(dragon_server, origin, tmp_path):
    path = render(dragon_server, origin, "waterdrop", "left", tmp_path)
    early = frame(path, 33)  # a third in: the incoming blue has spread from the centre
    assert blue(early)[H // 2 - 10 : H // 2 + 10, W // 2 - 10 : W // 2 + 10].all()
    assert red(early)[:20, :20].all() and red(early)[-20:, -20:].all()
    assert blue(frame(path, 55)).mean() > 0.95
    striped = origin.add("drawn/stripes.png", stripes(), "image/png")
    path = render(dragon_server, origin, "waterdrop", "left", tmp_path, (striped, striped))
    still, middle = frame(path, 10), frame(path, 37)
    changed = np.abs(middle - still).mean(axis=2) > 60
    assert changed.mean() > 0.05  # the ripples bend the stripes
    assert changed[H // 2 - 4 : H // 2 + 5, W // 2 - 4 : W // 2 + 5].mean() < 0.2  # the centre


def effect(server, origin, kind: str, tmp_path: Path) -> Path:
    """A 6 s ``kind`` effect of a red then a blue picture: the turn between them is frames
    62 to 87 (two 3.5 s slots overlapping by 1 s)."""
    red_url, blue_url = colours(origin)
    body = (
        f'<effect type="{kind}" duration="6"><image filename="{red_url}"/>'
        f'<image filename="{blue_url}"/></effect>'
    )
    return render_movie(server, body, tmp_path, kind)


def test_a_rotator_turns_its_pictures_on_a_ring(dragon_server, origin, tmp_path):
    path = effect(dragon_server, origin, "rotator", tmp_path)
    assert red(frame(path, 50)).mean() > 0.95 and blue(frame(path, 100)).mean() > 0.95
    middle = frame(path, 75)
    r, b = red(middle), blue(middle)
    columns_r, columns_b = np.nonzero(r.any(axis=0))[0], np.nonzero(b.any(axis=0))[0]
    # Both cards, red going left, blue coming from the right, a gap of black between.
    assert columns_r.size and columns_b.size
    gap = middle[H // 2, columns_r.max() + 3 : columns_b.min() - 3]
    assert columns_r.max() < columns_b.min() and gap.size and gap.max() < 40
    # Drawn back from the camera: black above and below both, each a trapezoid whose
    # inner edge (nearer the viewer on the ring's front) is the taller.
    assert not (r | b)[:4].any() and not (r | b)[-4:].any()
    tall = lambda mask, x: int(mask[:, x].sum())  # noqa: E731
    assert tall(r, columns_r.max() - 2) > tall(r, columns_r.min() + 2)
    assert tall(b, columns_b.min() + 2) > tall(b, columns_b.max() - 2)


def test_diving_drops_the_picture_as_the_next_comes_forward(dragon_server, origin, tmp_path):
    path = effect(dragon_server, origin, "diving", tmp_path)
    start, early, late = frame(path, 66), frame(path, 71), frame(path, 80)
    # The red tips towards the viewer and drops: lower in the frame, then gone.
    rows = lambda mask: np.nonzero(mask.any(axis=1))[0]  # noqa: E731
    assert rows(red(early)).min() > rows(red(start)).min() + 30
    assert not red(late).any()
    # The incoming blue comes forward from the depth behind: smaller than the frame (black
    # all round), growing.
    assert 0 < blue(early).sum() < blue(late).sum() < 0.95 * W * H
    assert not blue(late)[:2].any() and not blue(late)[:, :2].any()
    assert blue(frame(path, 100)).mean() > 0.95


def test_square_brings_the_next_picture_square_by_square(dragon_server, origin, tmp_path):
    path = effect(dragon_server, origin, "square", tmp_path)
    middle = frame(path, 75)
    cols, rows = 6, 4
    cells = []
    for j in range(rows):
        for i in range(cols):
            cell = middle[
                j * H // rows + 3 : (j + 1) * H // rows - 3,
                i * W // cols + 3 : (i + 1) * W // cols - 3,
            ]
            cells.append(
                "red" if red(cell).mean() > 0.9 else "blue" if blue(cell).mean() > 0.9 else "?"
            )
    assert "?" not in cells  # every square whole, one picture or the other
    assert 6 <= cells.count("blue") <= 18  # mid-turn: some of each
    assert blue(frame(path, 90)).mean() > 0.95


def test_a_flower_opens_from_the_centre_in_petals(dragon_server, origin, tmp_path):
    red_url, _ = colours(origin)
    body = f'<effect type="flower" duration="3"><image filename="{red_url}"/></effect>'
    path = render_movie(dragon_server, body, tmp_path, "flower")
    early, later, whole = frame(path, 8), frame(path, 14), frame(path, 40)
    shown = red(early)
    # A third of a second in: red in the middle, black at the corners, and petals: along
    # a circle round the centre, red and black alternate (six lobes).
    assert shown[H // 2 - 5 : H // 2 + 5, W // 2 - 5 : W // 2 + 5].all()
    assert not shown[:20, :20].any() and not shown[-20:, -20:].any()
    ring = [
        shown[int(H / 2 + 45 * np.sin(a)), int(W / 2 + 45 * np.cos(a))]
        for a in np.linspace(0, 2 * np.pi, 72, endpoint=False)
    ]
    flips = sum(ring[i] != ring[i - 1] for i in range(len(ring)))
    assert 8 <= flips <= 16  # six petals: about twelve edges
    assert red(later).sum() > shown.sum()  # opening
    assert red(whole).mean() > 0.95  # then the whole picture
