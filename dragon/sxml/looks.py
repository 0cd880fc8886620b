"""Filters that change how a layer looks, as ffmpeg filters.

The original drew SXML's filters with shaders whose code and descriptions are lost; each
one here is drawn in the spirit of its name, with attributes of our own (docs/sxml.md
lists them). A filter applies to its parent for the filter's window, like ``alpha``.
Attribute values out of range are warned about and replaced by the default: a definition
the original accepted is never refused for them.

- ``blur``, ``gaussianBlur`` (``radius``: a fraction of the frame's height, 0.01), and
  their horizontal (``hblur``, ``hgaussianBlur``) and vertical (``vblur``,
  ``vgaussianBlur``) forms: a gaussian blur of that standard deviation.
- ``frame`` (``width``: a fraction of the frame's height, 0.02; ``color``, white): a
  border of that colour inside the layer's edges.
- ``tint`` (``color``, sepia brown #C08040): the layer in shades of that colour.
- ``colormap`` (``colorStart`` black, ``colorEnd`` white): the layer's brightness mapped
  from the first colour to the second (a duotone).
- ``threshold`` (``value``, 0.5): white where the brightness is above it, black below.
- ``exposure`` (``value``: stops, 1): brightness times 2 to that power.
- ``bleach``: bleach bypass, colours washed out and contrast raised.
- ``noise`` (``amount``, 0.2): grain that changes every frame.
- ``flashback``: an old photograph: sepia and a vignette.
- ``tv``: an old television: scan lines and grain.
"""

from __future__ import annotations

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
# Each attribute a look reads: its kind (number or colour) and default.
NUMBERS: dict[str, dict[str, tuple[float, float, float]]] = {  # name: (default, min, max)
    **{kind: {"radius": (0.01, 0.0, 0.5)} for kind in BLURS},
    "frame": {"width": (0.02, 0.0, 0.5)},
    "threshold": {"value": (0.5, 0.0, 1.0)},
    "exposure": {"value": (1.0, -8.0, 8.0)},
    "noise": {"amount": (0.2, 0.0, 1.0)},
}
COLORS: dict[str, dict[str, RGBA]] = {
    "frame": {"color": (255, 255, 255, 255)},
    "tint": {"color": (0xC0, 0x80, 0x40, 255)},
    "colormap": {"colorStart": (0, 0, 0, 255), "colorEnd": (255, 255, 255, 255)},
}
ATTRS = frozenset(name for table in (NUMBERS, COLORS) for attrs in table.values() for name in attrs)


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


def steps(node: Node, height: int) -> list[str]:
    """The ffmpeg filters that draw the look of ``node`` (a filter) on a layer of a movie
    ``height`` pixels high; [] for a filter that is not a look."""
    kind = node.attrs.get("type", "")
    if kind in BLURS:
        sigma = round(max(0.1, _number(node, "radius") * height), 2)
        across, down = BLURS[kind]
        # (A sigma of 0 is not "no blur" to gblur: it garbles the picture; 0.01 is.)
        return [f"gblur=sigma={sigma if across else 0.01}:sigmaV={sigma if down else 0.01}"]
    if kind == "frame":
        width = max(1, round(_number(node, "width") * height))
        return [f"drawbox=x=0:y=0:w=iw:h=ih:t={width}:c={_hex(_color(node, 'color'))}"]
    if kind == "tint":
        r, g, b, _ = _color(node, "color")
        return ["hue=s=0", _mixer((r, g, b))]
    if kind == "colormap":
        return ["hue=s=0", _duotone(_color(node, "colorStart"), _color(node, "colorEnd"))]
    if kind == "threshold":
        cut = 16 + _number(node, "value") * 219  # video range luma
        return [f"lutyuv=y='if(gte(val,{cut:.1f}),235,16)':u=128:v=128"]
    if kind == "exposure":
        gain = 2 ** _number(node, "value")
        return [
            f"lutrgb=r='clip(val*{gain:.4f},0,255)':g='clip(val*{gain:.4f},0,255)'"
            f":b='clip(val*{gain:.4f},0,255)'"
        ]
    if kind == "bleach":
        return ["eq=saturation=0.35:contrast=1.35"]
    if kind == "noise":
        return [f"noise=alls={round(_number(node, 'amount') * 100)}:allf=t"]
    if kind == "flashback":
        # (Every step takes parameters: the window's ``:enable`` is added after them.)
        return [SEPIA, "vignette=angle=PI/5"]
    if kind == "tv":
        return ["drawgrid=w=iw:h=4:t=1:c=black@0.45", "noise=alls=18:allf=t"]
    return []


LOOKS = frozenset(
    {
        *BLURS,
        "frame",
        "tint",
        "colormap",
        "threshold",
        "exposure",
        "bleach",
        "noise",
        "flashback",
        "tv",
    }
)


# Looks that make parts of the layer transparent: the layer has an alpha plane after them.
CLEARING: frozenset[str] = frozenset()


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
