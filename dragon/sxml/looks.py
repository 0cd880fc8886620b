"""Filters that change how a layer looks, as ffmpeg filters.

The original drew SXML's filters with shaders whose code and descriptions are lost; each
one here is drawn in the spirit of its name, with attributes of our own (docs/sxml.md
lists them). A filter applies to its parent for the filter's window, like ``alpha``.
Attribute values out of range are warned about and replaced by the default: a definition
the original accepted is never refused for them. Sizes are fractions of the frame's height.

- ``blur``, ``gaussianBlur`` (``radius``: a fraction of the frame's height, 0.01), and
  their horizontal (``hblur``, ``hgaussianBlur``) and vertical (``vblur``,
  ``vgaussianBlur``) forms: a gaussian blur of that standard deviation.
- ``directionalBlur`` (``angle``: degrees, 0 is across, 90 down; ``radius``, 0.01): a
  blur along one direction only.
- ``bilateralBlur`` (``radius``, 0.01): an edge-preserving blur: flat parts smoothed,
  the edges between them kept.
- ``borderBlur`` (``width``, 0.1; ``radius``, 0.01): the layer blurred near its edges and
  sharp in its centre: fully blurred up to a fifth of ``width`` from each edge, half at
  three fifths, sharp from ``width`` in.
- ``glow`` (``radius``, 0.02; ``amount``: 0 to 1, 0.6): the bright parts bloom: the
  layer's brightness screened with a blurred copy of itself.
- ``frame`` (``width``: a fraction of the frame's height, 0.02; ``color``, white): a
  border of that colour inside the layer's edges.
- ``cornerCut`` (``size``, 0.1): the layer's four corners cut off diagonally, each side
  of a cut ``size`` long: transparent, what is beneath shows.
- ``tint`` (``color``, sepia brown #C08040): the layer in shades of that colour.
- ``colormap`` (``colorStart`` black, ``colorEnd`` white): the layer's brightness mapped
  from the first colour to the second (a duotone).
- ``threetint`` (``colorShadows`` #203050, ``colorMidtones`` #C08050,
  ``colorHighlights`` #FFF0D0): the layer's brightness mapped to three colours, black to
  the first, mid grey to the second, white to the third, linearly in between.
- ``threshold`` (``value``, 0.5): white where the brightness is above it, black below.
- ``exposure`` (``value``: stops, 1): brightness times 2 to that power.
- ``bleach``: bleach bypass, colours washed out and contrast raised.
- ``noise`` (``amount``, 0.2): grain that changes every frame.
- ``flick`` (``amount``: 0 to 1, 0.1): the brightness flickers from frame to frame like
  an old film's, by up to that much up or down.
- ``flashback``: an old photograph: sepia and a vignette.
- ``tv``: an old television: scan lines and grain.
- ``key`` (``color``, green #00FF00; ``similarity``: 0 to 1, 0.3) and
  ``makeTransparent`` (``color``, white; ``similarity``, 0.3): the pixels of about that
  colour (the larger ``similarity``, the farther from it) made transparent.
- ``gradient`` (``colorStart`` at the top, ``colorEnd`` at the bottom; by default
  transparent black to black at 60%, so darker towards the bottom) and
  ``radialGradient`` (``colorStart`` at the centre, ``colorEnd`` at the corners; the same
  defaults): a colour gradient laid over the layer (its transparency kept).
- ``identity``, ``antialias``: accepted, and draw nothing.

A look is a list of ffmpeg steps, joined with ``,`` into the layer's chain. A step may be
a small sub-graph with labels of its own (``split[..][..];...``): its last filter is the
one the window's ``:enable`` is given to, and its first input is the layer as it came, so
that outside the window the layer passes unchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from dragon.sxml.model import RGBA, DefinitionError, Node

SEPIA = "colorchannelmixer=.393:.769:.189:0:.349:.686:.168:0:.272:.534:.131"
BLURS = {
    "blur": (True, True),
    "gaussianBlur": (True, True),
    "hblur": (True, False),
    "hgaussianBlur": (True, False),
    "vblur": (False, True),
    "vgaussianBlur": (False, True),
}
BLACK, WHITE = (0, 0, 0, 255), (255, 255, 255, 255)
_RADIUS = {"radius": (0.01, 0.0, 0.5)}
_GRADIENT = {"colorStart": (0, 0, 0, 0), "colorEnd": (0, 0, 0, 153)}
# Each attribute a look reads: its kind (number or colour) and default.
NUMBERS: dict[str, dict[str, tuple[float, float, float]]] = {  # name: (default, min, max)
    **{kind: _RADIUS for kind in BLURS},
    "directionalBlur": {"angle": (0.0, -360.0, 360.0), **_RADIUS},
    "bilateralBlur": _RADIUS,
    "borderBlur": {"width": (0.1, 0.0, 0.5), **_RADIUS},
    "glow": {"radius": (0.02, 0.0, 0.5), "amount": (0.6, 0.0, 1.0)},
    "frame": {"width": (0.02, 0.0, 0.5)},
    "cornerCut": {"size": (0.1, 0.0, 0.5)},
    "threshold": {"value": (0.5, 0.0, 1.0)},
    "exposure": {"value": (1.0, -8.0, 8.0)},
    "noise": {"amount": (0.2, 0.0, 1.0)},
    "flick": {"amount": (0.1, 0.0, 1.0)},
    "key": {"similarity": (0.3, 0.0, 1.0)},
    "makeTransparent": {"similarity": (0.3, 0.0, 1.0)},
}
COLORS: dict[str, dict[str, RGBA]] = {
    "frame": {"color": WHITE},
    "tint": {"color": (0xC0, 0x80, 0x40, 255)},
    "colormap": {"colorStart": BLACK, "colorEnd": WHITE},
    "threetint": {
        "colorShadows": (0x20, 0x30, 0x50, 255),
        "colorMidtones": (0xC0, 0x80, 0x50, 255),
        "colorHighlights": (0xFF, 0xF0, 0xD0, 255),
    },
    "key": {"color": (0, 255, 0, 255)},
    "makeTransparent": {"color": WHITE},
    "gradient": _GRADIENT,
    "radialGradient": _GRADIENT,
}
ATTRS = frozenset(name for table in (NUMBERS, COLORS) for attrs in table.values() for name in attrs)

# Labels of the sub-graphs some looks draw with: unique within a process, hence within
# any one filtergraph (the graph's own labels are v1, a1...).
_LABELS = itertools.count()


def check(node: Node, warn: Callable[[str], None]) -> None:
    """Drop (with a warning) the attributes of a look filter that cannot be read, so their
    defaults apply."""
    kind = node.attrs.get("type", "")
    for name, (_, low, high) in NUMBERS.get(kind, {}).items():
        try:
            node.number(name, minimum=low, maximum=high)
        except DefinitionError as exc:
            warn(f"{exc}; the default is used")
            del node.attrs[name]
    for name in COLORS.get(kind, {}):
        try:
            node.color(name)
        except DefinitionError as exc:
            warn(f"{exc}; the default is used")
            del node.attrs[name]


def _number(node: Node, name: str) -> float:
    default, low, high = NUMBERS[node.attrs["type"]][name]
    return node.number(name, default, minimum=low, maximum=high)


def _color(node: Node, name: str) -> RGBA:
    return node.color(name, COLORS[node.attrs["type"]][name])


def _pixels(node: Node, name: str, height: int) -> float:
    """The attribute ``name`` (a fraction of the frame's height) in pixels."""
    return _number(node, name) * height


def _labels(count: int) -> list[str]:
    n = next(_LABELS)
    return [f"lk{n}{chr(ord('a') + i)}" for i in range(count)]


def steps(node: Node, height: int) -> list[str]:
    """The ffmpeg filters that draw the look of ``node`` (a filter) on a layer of a movie
    ``height`` pixels high; [] for a filter that is not a look, or draws nothing."""
    draw = DRAW.get(node.attrs.get("type", ""))
    return draw(node, height) if draw else []


# -- blurs -------------------------------------------------------------------------------


def _sigma(node: Node, height: int) -> float:
    return round(max(0.1, _pixels(node, "radius", height)), 2)


def _blur(node: Node, height: int) -> list[str]:
    sigma = _sigma(node, height)
    across, down = BLURS[node.attrs["type"]]
    # (A sigma of 0 is not "no blur" to gblur: it garbles the picture; 0.01 is.)
    return [f"gblur=sigma={sigma if across else 0.01}:sigmaV={sigma if down else 0.01}"]


def _directional_blur(node: Node, height: int) -> list[str]:
    angle = _number(node, "angle") % 360  # dblur: 0 blurs across, 90 down
    radius = round(min(8192.0, max(1.0, _pixels(node, "radius", height))), 2)
    return [f"dblur=angle={angle:g}:radius={radius}"]


def _bilateral_blur(node: Node, height: int) -> list[str]:
    sigma = min(512.0, _sigma(node, height))
    return [f"bilateral=sigmaS={sigma}:sigmaR=0.2:planes=7"]


def _border_blur(node: Node, height: int) -> list[str]:
    """The layer and a blurred copy mixed by a mask that is white at the edges and black
    inside: drawn (a box's border, softened) at a quarter of the layer's size, where it
    is cheap, then scaled up to it."""
    width = _pixels(node, "width", height)
    if width < 1:
        return []
    base, blurred, small, mask, sharp, soft = _labels(6)
    # In quarter pixels: a border 60% of the width, softened over 20% of it either side.
    border = max(1, round(0.15 * width))
    feather = max(0.5, round(0.05 * width, 2))
    binary = ":".join(f"c{i}='255*gt(val,0)'" for i in range(4))
    return [
        f"split=3[{base}][{blurred}][{small}];"
        f"[{blurred}]gblur=sigma={_sigma(node, height)}[{soft}];"
        f"[{small}]scale=w='max(2,trunc(iw/4))':h='max(2,trunc(ih/4))':flags=neighbor,"
        f"lut=c0=0:c1=0:c2=0:c3=0,drawbox=x=0:y=0:w=iw:h=ih:t={border}:c=white:replace=1,"
        f"lut={binary},gblur=sigma={feather}[{mask}];"
        f"[{mask}][{base}]scale2ref=w=iw:h=ih:flags=bilinear[{mask}2][{sharp}];"
        f"[{sharp}][{soft}][{mask}2]maskedmerge=planes=15"
    ]


def _glow(node: Node, height: int) -> list[str]:
    """The brightness screened with a blurred copy's, where that copy keeps only what is
    brighter than 30% (stretched to full range, so that black adds nothing) and is twice
    as bright once blurred; the colours and the transparency are the layer's."""
    base, blurred, soft = _labels(3)
    amount = _number(node, "amount")
    return [
        f"split[{base}][{blurred}];[{blurred}]lutyuv=y='clip((val-82)*255/153,0,255)',"
        f"gblur=sigma={_sigma(node, height)},lutyuv=y='min(val*2,255)'[{soft}];"
        f"[{base}][{soft}]blend=c0_mode=screen:c0_opacity={amount:.3f}"
    ]


# -- shapes ------------------------------------------------------------------------------


def _frame(node: Node, height: int) -> list[str]:
    width = max(1, round(_pixels(node, "width", height)))
    return [f"drawbox=x=0:y=0:w=iw:h=ih:t={width}:c={_hex(_color(node, 'color'))}"]


def _corner_cut(node: Node, height: int) -> list[str]:
    """A mask, transparent but for a triangle in its top-left corner, and its mirror
    images across and down (``lighten``: the larger opacity); the mask's opacity is then
    taken from the layer's. (Mirrored, the triangles meet the right and bottom sides
    exactly, whatever the layer's size: yuva420p overlays only at even places.)"""
    size = round(_pixels(node, "size", height))
    if size < 1:
        return ["format=yuva420p"]
    base, clear, small, cut, both, across, top, down, mask = _labels(9)
    return [
        "format=yuva420p",
        f"split=3[{base}][{clear}][{small}];"
        f"[{small}]crop=2:2:0:0,scale={size}:{size},"
        f"geq=lum=0:cb=128:cr=128:a='255*clip({size}-X-Y-0.5,0,1)'[{cut}];"
        f"[{clear}]lut=c3=0[{clear}2];[{clear}2][{cut}]overlay=x=0:y=0,split[{both}][{across}];"
        f"[{across}]hflip[{across}2];[{both}][{across}2]blend=c3_mode=lighten,split[{top}][{down}];"
        f"[{down}]vflip[{down}2];[{top}][{down}2]blend=c3_mode=lighten[{mask}];"
        f"[{base}][{mask}]blend=c3_mode=subtract",
    ]


def _gradient(node: Node, height: int) -> list[str]:
    """The gradient's colours and its opacity drawn (``geq``) on pictures an eighth of
    the layer's size, scaled up to it and mixed with the layer, plane by plane; the mask
    leaves the layer's own transparency (plane 3) as it was."""
    start, end = _color(node, "colorStart"), _color(node, "colorEnd")
    if start[3] == end[3] == 0:
        return []
    if node.attrs["type"] == "radialGradient":
        at = "min(1,hypot((X+0.5)/SW-W/2,(Y+0.5)/SH-H/2)/hypot(W/2,H/2))"
    else:
        at = "(Y+0.5)/SH/H"
    # A transparent end has no colour of its own: the gradient fades the other's out.
    start_rgb = end[:3] if start[3] == 0 else start[:3]
    end_rgb = start[:3] if end[3] == 0 else end[:3]
    colours = ":".join(
        f"{c}='{_lerp(a, b, at)}'" for c, a, b in zip("rgb", start_rgb, end_rgb, strict=True)
    )
    weight = _lerp(start[3], end[3], at)
    source, colour, mask, layer, big = _labels(5)
    small = "scale=w='max(2,trunc(iw/8))':h='max(2,trunc(ih/8))':flags=neighbor"
    return [
        f"split=3[{source}][{colour}][{mask}];"
        f"[{colour}]{small},format=gbrp,geq={colours}[{colour}2];"
        f"[{mask}]{small},geq=lum='{weight}':cb='{weight}':cr='{weight}':a=0[{mask}2];"
        f"[{colour}2][{source}]scale2ref=w=iw:h=ih:flags=bilinear[{big}][{layer}];"
        f"[{mask}2][{layer}]scale2ref=w=iw:h=ih:flags=bilinear[{mask}3][{layer}2];"
        f"[{layer}2][{big}][{mask}3]maskedmerge=planes=15"
    ]


def _lerp(a: int, b: int, at: str) -> str:
    """An expression from ``a`` to ``b`` as ``at`` goes from 0 to 1."""
    return str(a) if a == b else f"{a}+({b - a})*{at}"


# -- colours -----------------------------------------------------------------------------


def _tint(node: Node, height: int) -> list[str]:
    r, g, b, _ = _color(node, "color")
    return ["hue=s=0", _mixer((r, g, b))]


def _colormap(node: Node, height: int) -> list[str]:
    return ["hue=s=0", _duotone(_color(node, "colorStart"), _color(node, "colorEnd"))]


def _threetint(node: Node, height: int) -> list[str]:
    shadows, mid, highlights = (
        _color(node, name) for name in ("colorShadows", "colorMidtones", "colorHighlights")
    )
    parts = []
    for i, channel in enumerate("rgb"):
        low, middle, high = shadows[i], mid[i], highlights[i]
        parts.append(
            f"{channel}='if(lt(val,128),{low}+({middle}-{low})*val/128,"
            f"{middle}+({high}-{middle})*(val-128)/127)'"
        )
    return ["hue=s=0", "lutrgb=" + ":".join(parts)]


def _threshold(node: Node, height: int) -> list[str]:
    cut = 16 + _number(node, "value") * 219  # video range luma
    return [f"lutyuv=y='if(gte(val,{cut:.1f}),235,16)':u=128:v=128"]


def _exposure(node: Node, height: int) -> list[str]:
    gain = f"clip(val*{2 ** _number(node, 'value'):.4f},0,255)"
    return [f"lutrgb=r='{gain}':g='{gain}':b='{gain}'"]


def _key(node: Node, height: int) -> list[str]:
    """The colour made transparent (colorkey works on RGB: the layer is converted to it
    and back, with an alpha plane)."""
    similarity = max(0.01, _number(node, "similarity"))
    colour = _hex(_color(node, "color"))[:8]
    return [
        "format=rgba",
        f"colorkey=color={colour}:similarity={similarity:.3f}:blend=0.05",
        "format=yuva420p",
    ]


# -- texture -----------------------------------------------------------------------------


def _noise(node: Node, height: int) -> list[str]:
    return [f"noise=alls={round(_number(node, 'amount') * 100)}:allf=t"]


def _flick(node: Node, height: int) -> list[str]:
    amount = _number(node, "amount")
    return [f"eq=brightness='{amount:.3f}*(2*random(0)-1)':eval=frame"]


def _fixed(*chain: str) -> Callable[[Node, int], list[str]]:
    return lambda node, height: list(chain)


DRAW: dict[str, Callable[[Node, int], list[str]]] = {
    **{kind: _blur for kind in BLURS},
    "directionalBlur": _directional_blur,
    "bilateralBlur": _bilateral_blur,
    "borderBlur": _border_blur,
    "glow": _glow,
    "frame": _frame,
    "cornerCut": _corner_cut,
    "tint": _tint,
    "colormap": _colormap,
    "threetint": _threetint,
    "threshold": _threshold,
    "exposure": _exposure,
    "key": _key,
    "makeTransparent": _key,
    "gradient": _gradient,
    "radialGradient": _gradient,
    "bleach": _fixed("eq=saturation=0.35:contrast=1.35"),
    "noise": _noise,
    "flick": _flick,
    # (Every step takes parameters: the window's ``:enable`` is added after them.)
    "flashback": _fixed(SEPIA, "vignette=angle=PI/5"),
    "tv": _fixed("drawgrid=w=iw:h=4:t=1:c=black@0.45", "noise=alls=18:allf=t"),
    "identity": _fixed(),
    "antialias": _fixed(),
}
LOOKS = frozenset(DRAW)


# Looks that make parts of the layer transparent: the layer has an alpha plane after them.
CLEARING = frozenset({"cornerCut", "key", "makeTransparent"})


def timed(step: str) -> bool:
    """Whether ``step`` is drawn only in the filter's window (it takes ``enable``); a
    format conversion is not (ffmpeg's ``format`` has no timeline), it converts throughout."""
    return not step.startswith("format=")


def _hex(color: RGBA) -> str:
    r, g, b, a = color
    return f"0x{r:02X}{g:02X}{b:02X}@{a / 255:.3f}"


def _mixer(color: tuple[int, int, int]) -> str:
    """A grey picture in shades of ``color``: each channel times the colour's."""
    r, g, b = (c / 255 for c in color)
    return f"colorchannelmixer=rr={r:.4f}:rg=0:rb=0:gr=0:gg={g:.4f}:gb=0:br=0:bg=0:bb={b:.4f}"


def _duotone(start: RGBA, end: RGBA) -> str:
    """Each channel of a grey picture mapped linearly from ``start`` to ``end``."""
    parts = []
    for channel, a, b in zip("rgb", start[:3], end[:3], strict=True):
        parts.append(f"{channel}='{a}+({b}-{a})*val/255'")
    return "lutrgb=" + ":".join(parts)
