"""video.create's newer look filters end to end: a real server renders movies of short
parts over pictures made here (numpy, Pillow), and each part's frames are compared with
an unfiltered part's: each look changes the frame as its name says.

Three renders at 240p, parts of 0.4 s; every frame decoded once per movie.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.support.movies import H, W, frames
from tests.support.movies import render as render_movie

PART = 10  # frames of a part (0.4 s at 25 fps)


def png(picture: np.ndarray) -> bytes:
    """A PNG of a grey (H, W) or RGB (H, W, 3) array."""
    buf = io.BytesIO()
    image = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8))
    image.convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def render(server, origin, tmp_path, name: str, parts: list[str]) -> np.ndarray:
    """A movie of ``parts`` (stacks' contents), 0.4 s each, with nothing warned about;
    its frames."""
    body = "".join(f'<stack duration="{PART / 25}">{part}</stack>' for part in parts)
    shots = frames(render_movie(server, body, tmp_path, name))
    assert len(shots) == PART * len(parts)
    return shots


def still(url: str, look: str = "") -> str:
    """A full-frame picture, with a look filter on its stack."""
    return f'<effect type="none"><image filename="{url}"/></effect>{look}'


def over_red(url: str, look: str = "") -> str:
    """A picture in an overlay, the look filter on the overlay, over a red background."""
    return (
        '<effect type="none"><image color="#FF0000"/></effect>'
        f'<overlay left="0.25" top="0.25" width="0.5" height="0.5">'
        f'<image filename="{url}"/>{look}</overlay>'
    )


def energy(picture: np.ndarray, rows: slice, columns: slice, axis: int) -> float:
    """Mean difference between neighbours along ``axis``: high frequencies."""
    return float(np.abs(np.diff(picture[rows, columns].mean(axis=2), axis=axis)).mean())


def test_blurs_and_glow(dragon_server, origin, tmp_path):
    """borderBlur blurs the edges and not the centre; glow brightens around a bright
    shape; directionalBlur at 0 degrees blurs across, not down; bilateralBlur smooths
    grain but keeps an edge; identity and antialias change nothing."""
    y, x = np.indices((H, W))
    checker = origin.add("sxml/looks-more/checker.png", png((x // 6 + y // 6) % 2 * 255))
    spot = np.zeros((H, W))
    spot[H // 2 - 20 : H // 2 + 20, W // 2 - 20 : W // 2 + 20] = 255
    spot_url = origin.add("sxml/looks-more/spot.png", png(spot))
    stripes = origin.add(
        "sxml/looks-more/stripes.png", png(np.where(x < W // 2, x // 8, y // 8) % 2 * 255)
    )
    grain = np.where(x < W // 2, 60, 190) + np.random.default_rng(1).normal(0, 20, (H, W))
    grainy = origin.add("sxml/looks-more/grainy.png", png(grain))
    parts = [
        still(checker),
        still(checker, '<filter type="borderBlur"/>'),
        still(spot_url),
        still(spot_url, '<filter type="glow"/>'),
        still(stripes),
        still(stripes, '<filter type="directionalBlur" angle="0" radius="0.02"/>'),
        still(grainy),
        still(grainy, '<filter type="bilateralBlur" radius="0.01"/>'),
        still(checker, '<filter type="identity"/><filter type="antialias"/>'),
    ]
    shots = render(dragon_server, origin, tmp_path, "blurs", parts)
    plain, bordered, dark, glowing, striped, dblurred, grainy_, smoothed, same = (
        shots[PART * i + PART // 2] for i in range(len(parts))
    )
    everywhere = slice(None)
    top, bottom, centre = slice(2, 10), slice(H - 10, H - 2), slice(H // 3, 2 * H // 3)
    left, right, middle = slice(2, 10), slice(W - 10, W - 2), slice(W // 3, 2 * W // 3)
    for rows, columns in ((top, middle), (bottom, middle), (centre, left), (centre, right)):
        assert energy(bordered, rows, columns, 1) < 0.6 * energy(plain, rows, columns, 1)
    assert energy(bordered, centre, middle, 1) > 0.9 * energy(plain, centre, middle, 1)
    # glow: light spills around the white square; the far corners stay dark
    ring = (slice(H // 2 - 26, H // 2 + 26), slice(W // 2 + 22, W // 2 + 28))
    assert glowing[ring].mean() > dark[ring].mean() + 20
    assert glowing[:20, :20].mean() < dark[:20, :20].mean() + 3
    assert glowing[H // 2, W // 2].min() > 240  # the square itself still white
    # directionalBlur at 0 degrees: stripes across (left half) blurred, stripes down kept
    across, down = slice(W // 8, 3 * W // 8), slice(5 * W // 8, 7 * W // 8)
    assert energy(dblurred, centre, across, 1) < 0.6 * energy(striped, centre, across, 1)
    assert energy(dblurred, centre, down, 0) > 0.9 * energy(striped, centre, down, 0)
    # bilateralBlur: less grain on either side, the edge between them as steep
    for side in (slice(W // 8, 3 * W // 8), slice(5 * W // 8, 7 * W // 8)):
        assert smoothed[centre, side].std() < 0.8 * grainy_[centre, side].std()
    edge = (centre, slice(W // 2 - 2, W // 2 + 2))

    def step(picture):
        return float(np.abs(np.diff(picture[edge].mean(axis=2), axis=1)).max(axis=1).mean())

    assert step(smoothed) > 0.8 * step(grainy_)
    # identity and antialias: the checkerboard as it was
    assert np.abs(same - plain)[everywhere].mean() < 3


def test_colours_light_and_gradients(dragon_server, origin, tmp_path):
    """threetint maps black, grey and white to its three colours; flick changes a flat
    grey's brightness from frame to frame; gradient darkens towards the bottom,
    radialGradient towards the corners."""
    bands = np.zeros((H, W))
    bands[:, W // 3 : 2 * W // 3] = 128
    bands[:, 2 * W // 3 :] = 255
    bands_url = origin.add("sxml/looks-more/bands.png", png(bands))
    grey = origin.add("sxml/looks-more/grey.png", png(np.full((H, W), 128)))
    three = 'colorShadows="#FF0000" colorMidtones="#00FF00" colorHighlights="#0000FF"'
    parts = [
        still(bands_url, f'<filter type="threetint" {three}/>'),
        still(grey),
        still(grey, '<filter type="flick" amount="0.15"/>'),
        still(grey, '<filter type="gradient"/>'),
        still(grey, '<filter type="radialGradient"/>'),
    ]
    shots = render(dragon_server, origin, tmp_path, "colours", parts)
    tinted, flat, *_ = (shots[PART * i + PART // 2] for i in range(len(parts)))
    rows = slice(H // 4, 3 * H // 4)
    for third, colour in enumerate(((255, 0, 0), (0, 255, 0), (0, 0, 255))):
        columns = slice(third * W // 3 + 20, (third + 1) * W // 3 - 20)
        found = tinted[rows, columns].reshape(-1, 3).mean(axis=0)
        assert found.tolist() == pytest.approx(colour, abs=40), (third, found)
    # flick: consecutive frames of the flat grey differ in brightness, the plain ones not
    means = shots[:, rows, W // 4 : 3 * W // 4].mean(axis=(1, 2, 3))
    flicking, steady = means[2 * PART + 1 : 3 * PART - 1], means[PART + 1 : 2 * PART - 1]
    assert np.abs(np.diff(flicking)).max() > 8 and np.abs(np.diff(steady)).max() < 2
    assert np.abs(flicking - flat.mean()).mean() > 3
    # gradient: from the grey at the top to 60% darker at the bottom
    gradient, radial = shots[3 * PART + PART // 2], shots[4 * PART + PART // 2]
    profile = gradient.mean(axis=(1, 2))
    assert profile[:10].mean() > flat.mean() - 15
    assert profile[-10:].mean() < 0.55 * flat.mean()
    assert profile[H // 2] < profile[H // 4] - 10  # darker all the way down
    # radialGradient: the centre as it was, the corners darker
    centre = radial[H // 2 - 10 : H // 2 + 10, W // 2 - 10 : W // 2 + 10].mean()
    assert centre > flat.mean() - 15
    for corner in (radial[:15, :15], radial[:15, -15:], radial[-15:, :15], radial[-15:, -15:]):
        assert corner.mean() < 0.6 * centre


def red(picture: np.ndarray) -> np.ndarray:
    return (picture[..., 0] > 180) & (picture[..., 1] < 80) & (picture[..., 2] < 80)


def blue(picture: np.ndarray) -> np.ndarray:
    return (picture[..., 2] > 180) & (picture[..., 0] < 80) & (picture[..., 1] < 80)


def test_transparency_looks_show_what_is_beneath(dragon_server, origin, tmp_path):
    """cornerCut: the red background shows in the corners of a blue overlay; key and
    makeTransparent: the keyed colour's half of an overlay shows the red, the blue half
    stays."""
    square = origin.add("sxml/looks-more/blue.png", png(np.full((120, 120, 3), (0, 0, 255))))
    halves = np.zeros((120, 160, 3))
    halves[:, 80:] = (0, 0, 255)
    halves[:, :80] = (0, 255, 0)
    green_blue = origin.add("sxml/looks-more/green-blue.png", png(halves))
    halves[:, :80] = (255, 255, 255)
    white_blue = origin.add("sxml/looks-more/white-blue.png", png(halves))
    parts = [
        over_red(square),
        over_red(square, '<filter type="cornerCut" size="0.1"/>'),
        over_red(green_blue),
        over_red(green_blue, '<filter type="key"/>'),
        over_red(white_blue),
        over_red(white_blue, '<filter type="makeTransparent"/>'),
    ]
    shots = render(dragon_server, origin, tmp_path, "clearing", parts)
    whole, cut, green_half, keyed, white_half, cleared = (
        shots[PART * i + PART // 2] for i in range(len(parts))
    )
    rows, columns = np.nonzero(blue(whole))
    x0, x1, y0, y1 = columns.min(), columns.max(), rows.min(), rows.max()
    assert x1 - x0 > 60 and y1 - y0 > 60
    size = round(0.1 * H)  # each corner's cut, along the overlay's sides
    for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)):
        near = (slice(y - 2 if y > y0 else y, y + 3 if y == y0 else y + 1),)
        near += (slice(x - 2 if x > x0 else x, x + 3 if x == x0 else x + 1),)
        assert red(cut[near]).all(), (x, y)  # the corner's pixels: the background
        assert not red(whole[near]).any()
    middle_of = ((y0 + y1) // 2, (x0 + x1) // 2)
    assert blue(cut[middle_of[0], x0 + 3 : x1 - 2]).all()  # the sides' middles kept
    assert blue(cut[y0 + 3 : y1 - 2, middle_of[1]]).all()
    assert blue(cut[y0 + size : y1 - size + 1, x0 + size : x1 - size + 1]).all()
    # key: the green half now red, the blue half as it was
    for before, after, colour in ((green_half, keyed, 1), (white_half, cleared, None)):
        blues = blue(before).sum()
        assert blues > 2000 and abs(int(blue(after).sum()) - int(blues)) < 0.05 * blues
        gained = red(after).sum() - red(before).sum()
        assert gained > 0.9 * blues  # the keyed half as large as the blue one
        if colour is not None:
            assert (after[..., colour] > 180).sum() < 50  # no green left
        else:
            assert (after.min(axis=2) > 200).sum() < 50  # no white left
