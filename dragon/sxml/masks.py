"""Filters that read a picture inside them, pixel by pixel, during the filter's window.

Masks say how opaque their parent is:
- ``alphamask``: the picture's own transparency; ``alphainvmask``: its opposite.
- ``lumamask``: the picture's brightness (white opaque, black clear); ``lumainvmask``: its
  opposite.
- ``mask``: each pixel's colour between ``transparentColor`` (black by default: clear)
  and ``opaqueColor`` (white: opaque), projected on the line between the two.

Two more use it otherwise:
- ``maskedBlur`` (``radius``: a fraction of the frame's height, 0.01): the parent blurred
  where the picture is light, sharp where it is dark (its brightness mixes the two).
- ``displacement`` (``amount``: a fraction of the frame's height, 0.05): each pixel of the
  parent is read from further right by the picture's red (128 still, 255 ``amount``
  further, 0 as far the other way) and further down by its green.

The picture is stretched over the parent's box. A mask whose child is not a picture with
a file (a clip, an element, nothing) is ignored with a warning: masks from renders of
elements are not drawn. The mask's plane is worked out once on the still picture, then
held for the parent's frames, so even ``mask``'s per-pixel expression costs one frame.
"""

from __future__ import annotations

from collections.abc import Callable

from dragon.sxml.model import RGBA, DefinitionError, Node

MASKS = frozenset({"mask", "alphamask", "alphainvmask", "lumamask", "lumainvmask"})
PICTURED = MASKS | {"maskedBlur", "displacement"}
OPAQUE, CLEAR = (255, 255, 255, 255), (0, 0, 0, 255)
# The numbers of ``maskedBlur`` and ``displacement``: (default, least, most).
NUMBERS = {"radius": (0.01, 0.0, 0.5), "amount": (0.05, 0.0, 0.5)}
ATTRS = frozenset({"opaqueColor", "transparentColor", *NUMBERS})


def check(node: Node, warn: Callable[[str], None]) -> list[Node]:
    """The children ``node`` (a filter of ``PICTURED``) keeps: its first picture with a
    file, or none (then it is ignored, with a warning). Values that cannot be read are
    warned about and their defaults used."""
    for name in ATTRS:
        try:
            if name in NUMBERS:
                _, low, high = NUMBERS[name]
                node.number(name, minimum=low, maximum=high)
            else:
                node.color(name)
        except DefinitionError as exc:
            warn(f"{exc}; the default is used")
            del node.attrs[name]
    pictures = [c for c in node.children if c.tag == "image" and c.attrs.get("filename")]
    if not pictures:
        warn(f"{node.where()}: it needs a picture with a file inside; it is ignored")
        return []
    if len(node.children) > 1:
        warn(f"{node.where()}: only its first picture is read")
    return pictures[:1]


def plane_steps(node: Node) -> list[str]:
    """The ffmpeg steps that turn the mask's picture (already the parent's size) into one
    grey plane: white where the parent shows, black where it is clear."""
    kind = node.attrs["type"]
    if kind.startswith("alpha"):
        steps = ["format=yuva420p", "alphaextract"]
    elif kind == "mask":
        steps = ["format=rgb24", _projection(node), "format=gray"]
    else:
        steps = ["format=gray"]
    if kind.endswith("invmask"):
        steps.append("negate")
    return steps


def _projection(node: Node) -> str:
    """``geq``: each pixel's place between the clear colour (0) and the opaque one (255)."""
    opaque: RGBA = node.color("opaqueColor", OPAQUE)
    clear: RGBA = node.color("transparentColor", CLEAR)
    d = [o - c for o, c in zip(opaque[:3], clear[:3], strict=True)]
    length = sum(v * v for v in d) or 1
    dot = "+".join(
        f"({channel}(X,Y)-{c})*{v}"
        for channel, c, v in zip(("r", "g", "b"), clear[:3], d, strict=True)
    )
    value = f"255*clip(({dot})/{length},0,1)"
    return f"geq=r='{value}':g='{value}':b='{value}'"


def number(node: Node, name: str) -> float:
    default, low, high = NUMBERS[name]
    return node.number(name, default, minimum=low, maximum=high)


def displacement_maps(node: Node, height: int) -> tuple[str, str]:
    """``geq`` steps that turn the picture (the parent's size, RGBA) into ``displace``'s x
    and y maps (every plane alike, 128 still): its red and its green, scaled so that 255
    moves ``amount`` of the frame's ``height`` (at most 127 pixels, what a map can say)."""
    gain = min(127.0, number(node, "amount") * height) / 127.5

    def plane(channel: str) -> str:
        value = f"128+({channel}(X,Y)-127.5)*{gain:.4f}"
        return f"geq=r='{value}':g='{value}':b='{value}':a='{value}'"

    return plane("r"), plane("g")
