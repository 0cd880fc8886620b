"""Every look filter (dragon.sxml.looks) is a filter chain ffmpeg runs, with its window."""

from __future__ import annotations

import functools
import re
import subprocess

import numpy as np
import pytest

from dragon.sxml import looks
from dragon.sxml.model import Node

W, H = 64, 48
FRAMES = 5  # at 25 fps: the window (0 to 0.1 s) holds the first three
EMPTY = {"identity", "antialias"}


def look(kind: str, **attrs: str) -> Node:
    return Node(tag="filter", line=1, column=1, attrs={"type": kind, **attrs})


def chain(*nodes: Node, height: int = 240) -> str:
    """The steps as picture.py writes them: each timed step given the filter's window."""
    enable = "enable='between(t,0,0.1)'"
    return ",".join(
        f"{step}:{enable}" if looks.timed(step) else step
        for node in nodes
        for step in looks.steps(node, height)
    )


def ffmpeg(source: str, fmt: str, graph: str, *output: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "info", "-f", "lavfi", "-i", source]
        + ["-vf", f"format={fmt},{graph}" if graph else f"format={fmt}", *output],
        capture_output=True,
        timeout=60,
    )


@functools.cache
def rgba(source: str, fmt: str, graph: str, size: tuple[int, int] = (W, H)) -> np.ndarray:
    """The frames out of ``graph`` as RGBA arrays (not to be changed: cached)."""
    run = ffmpeg(source, fmt, graph, "-f", "rawvideo", "-pix_fmt", "rgba", "-")
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    return np.frombuffer(run.stdout, np.uint8).reshape(-1, size[1], size[0], 4).astype(int)


TEST_SOURCE = f"testsrc2=s={W}x{H}:d={FRAMES / 25}"


@pytest.mark.parametrize("fmt", ["yuv420p", "yuva420p"])
@pytest.mark.parametrize("kind", sorted(looks.LOOKS - EMPTY))
def test_each_look_runs_in_ffmpeg_with_its_window(kind, fmt):
    """On a layer with or without transparency; twice in one graph (the labels of the
    looks drawn as sub-graphs stay unique); the frames after the window as they came."""
    steps = looks.steps(look(kind), 240) + looks.steps(look(kind), 240)
    assert steps
    # (A step without parameters would take ":enable" into its name.)
    graph = chain(look(kind), look(kind))
    run = ffmpeg(TEST_SOURCE, fmt, f"{graph},showinfo", "-f", "null", "-")
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    formats = set(re.findall(r" fmt:(\w+)", run.stderr.decode()))
    if kind in looks.CLEARING:
        assert formats == {"yuva420p"}
    elif not any("lutrgb" in step or "colorchannelmixer" in step for step in steps):
        assert formats == {fmt}  # the layer's own format, its transparency kept
    after = rgba(TEST_SOURCE, fmt, graph)[-1]
    # (Format conversions apply throughout: outside the window, only they.)
    plain = rgba(TEST_SOURCE, fmt, ",".join(s for s in steps if not looks.timed(s)))[-1]
    assert np.abs(after - plain).mean() < 1


@pytest.mark.parametrize("fmt", ["yuv420p", "yuva420p"])
def test_every_look_at_once_on_a_layer_of_odd_sides(fmt):
    """All the looks in one chain (their labels unique across looks too), on a layer
    whose sides are odd, as a fitted picture's may be."""
    graph = chain(*(look(kind) for kind in sorted(looks.LOOKS)))
    run = ffmpeg(
        "testsrc2=s=66x50:d=0.2", fmt, f"crop=65:49:exact=1,{graph},showinfo", "-f", "null", "-"
    )
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    assert set(re.findall(r" s:(\d+x\d+)", run.stderr.decode())) == {"65x49"}


@pytest.mark.parametrize("kind", sorted(EMPTY))
def test_identity_and_antialias_draw_nothing(kind):
    assert kind in looks.LOOKS and looks.steps(look(kind), 240) == []


@functools.cache
def timeline_filters() -> frozenset[str]:
    """The filters this ffmpeg can enable for a window (a T in -filters' first column)."""
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-filters"], capture_output=True, text=True, check=True
    ).stdout
    return frozenset(
        m.group(2) for m in re.finditer(r"^ (\S)\S\S (\S+) ", out, re.M) if m[1] == "T"
    )


def last_filter(step: str) -> str:
    """The last filter of a step (of its last chain, after its input labels), unquoted."""
    text = re.sub(r"'[^']*'", "''", step).split(";")[-1]
    return re.sub(r"^(\[[^\]]*\])*", "", text.split(",")[-1])


@pytest.mark.parametrize("kind", sorted(looks.LOOKS - EMPTY))
def test_each_timed_step_ends_with_a_filter_that_has_a_timeline(kind):
    for step in looks.steps(look(kind), 720):
        if looks.timed(step):
            name, _, params = last_filter(step).partition("=")
            assert name in timeline_filters(), step
            assert params, step  # ":enable" goes to its parameters, not its name
        else:
            assert step.startswith("format=")


def test_key_and_make_transparent_clear_their_colour_only():
    half = f"s={W // 2}x{H}:d=0.1"
    source = f"color=c=0x00FF00:{half}[g];color=c=white:{half}[w];[g][w]hstack"
    keyed = rgba(source, "yuv420p", chain(look("key")))[0]
    assert keyed[:, : W // 2 - 2, 3].max() < 20  # the green: clear
    assert keyed[:, W // 2 + 2 :, 3].min() > 240  # the white: kept
    cleared = rgba(source, "yuv420p", chain(look("makeTransparent")))[0]
    assert cleared[:, W // 2 + 2 :, 3].max() < 20
    assert cleared[:, : W // 2 - 2, 3].min() > 240
    red = rgba(source, "yuv420p", chain(look("key", color="#FF0000")))[0]
    assert red[..., 3].min() > 240  # no red: nothing cleared


@pytest.mark.parametrize("w, h", [(W, H), (W + 1, H + 1)])
def test_corner_cut_clears_the_corners_diagonally(w, h):
    size = 0.1 * H  # of the frame's height: 4.8 pixels, cut as 5
    graph = f"crop={w}:{h}:exact=1," + chain(look("cornerCut"), height=H)
    alpha = rgba(f"color=c=white:s={W + 2}x{H + 2}:d=0.1", "yuv420p", graph, (w, h))[0, ..., 3]
    for corner in (alpha, alpha[:, ::-1], alpha[::-1], alpha[::-1, ::-1]):
        assert corner[0, 0] == corner[1, 1] == 0 and corner[0, 2] < 128
        assert corner[0, round(size) + 1] == 255 and corner[round(size) + 1, 0] == 255
        assert corner[3, 3] == 255  # past the diagonal
    assert alpha[h // 2].min() == 255 and alpha[:, w // 2].min() == 255


def test_corner_cut_keeps_a_transparency_the_layer_had():
    graph = "lut=a=100," + chain(look("cornerCut"), height=H)
    alpha = rgba(f"color=c=white:s={W}x{H}:d=0.1", "yuva420p", graph)[0, ..., 3]
    assert alpha[0, 0] == 0 and abs(alpha[H // 2, W // 2] - 100) <= 1


@pytest.mark.parametrize("kind", ["gradient", "radialGradient", "glow", "borderBlur"])
def test_looks_laid_over_keep_the_layers_transparency(kind):
    graph = "lut=a=100," + chain(look(kind))
    alpha = rgba(TEST_SOURCE, "yuva420p", graph)[0, ..., 3]
    assert np.abs(alpha - 100).max() <= 1


def test_gradients_darken_towards_the_bottom_and_the_edges():
    grey = f"color=c=0x808080:s={W}x{H}:d=0.1"
    linear = rgba(grey, "yuv420p", chain(look("gradient")))[0, ..., :3].mean(axis=(1, 2))
    assert linear[0] > 110 and linear[-1] < 0.5 * linear[0]  # 60% black at the bottom
    assert np.all(np.diff(linear) <= 1)
    radial = rgba(grey, "yuv420p", chain(look("radialGradient")))[0, ..., :3].mean(axis=2)
    assert radial[H // 2, W // 2] > 110 and radial[0, 0] < 0.6 * radial[H // 2, W // 2]
    coloured = rgba(
        grey, "yuv420p", chain(look("gradient", colorStart="#FF0000", colorEnd="#0000FF"))
    )[0]
    assert coloured[1, W // 2, 0] > 200 and coloured[1, W // 2, 2] < 60  # opaque red on top
    assert coloured[-2, W // 2, 2] > 200 and coloured[-2, W // 2, 0] < 60  # blue below


def test_threetint_maps_black_grey_and_white_to_its_three_colours():
    source = (
        f"color=c=black:s={W // 4}x{H}:d=0.1[a];color=c=0x808080:s={W // 2}x{H}:d=0.1[b];"
        f"color=c=white:s={W // 4}x{H}:d=0.1[c];[a][b][c]hstack=3"
    )
    colours = {"colorShadows": "#FF0000", "colorMidtones": "#00FF00", "colorHighlights": "#0000FF"}
    tinted = rgba(source, "yuv420p", chain(look("threetint", **colours)))[0, H // 2, :, :3]
    assert tinted[2].tolist() == pytest.approx([255, 0, 0], abs=30)
    assert tinted[W // 2].tolist() == pytest.approx([0, 255, 0], abs=30)
    assert tinted[-3].tolist() == pytest.approx([0, 0, 255], abs=30)


def test_directional_blur_blurs_along_its_angle_only():
    stripes = f"testsrc2=s={W}x{H}:d=0.1,geq=lum='255*mod(trunc(X/4),2)':cb=128:cr=128"
    across = rgba(stripes, "yuv420p", chain(look("directionalBlur")))[0, ..., 0]
    down = rgba(stripes, "yuv420p", chain(look("directionalBlur", angle="90")))[0, ..., 0]
    plain = rgba(stripes, "yuv420p", "")[0, ..., 0]
    energy = [np.abs(np.diff(p, axis=1)).mean() for p in (plain, across, down)]
    assert energy[1] < 0.5 * energy[0] and energy[2] > 0.9 * energy[0]


def test_flick_changes_the_brightness_from_frame_to_frame():
    grey = f"color=c=0x808080:s={W}x{H}:d=0.12"
    frames = rgba(grey, "yuv420p", chain(look("flick", amount="0.2")))[:3, ..., :3]
    means = frames.mean(axis=(1, 2, 3))
    assert np.abs(np.diff(means)).max() > 5


def test_unreadable_attributes_of_the_new_looks_fall_back_to_their_defaults():
    warnings: list[str] = []
    node = look("glow", amount="2", radius="x")
    looks.check(node, warnings.append)
    assert len(warnings) == 2 and "amount" not in node.attrs and "radius" not in node.attrs
    assert "c0_opacity=0.600" in looks.steps(node, 240)[0]
    node = look("threetint", colorShadows="red")
    looks.check(node, warnings.append)
    assert "colorShadows" in warnings[-1] and "colorShadows" not in node.attrs
