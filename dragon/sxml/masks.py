"""Mask filters: a picture inside the filter says how opaque its parent is, pixel by pixel,
during the filter's window.

- ``alphamask``: the picture's own transparency; ``alphainvmask``: its opposite.
- ``lumamask``: the picture's brightness (white opaque, black clear); ``lumainvmask``: its
  opposite.
- ``mask``: each pixel's colour between ``transparentColor`` (black by default: clear)
  and ``opaqueColor`` (white: opaque), projected on the line between the two.

The picture is stretched over the parent's box. A mask whose child is not a picture with
a file (a clip, an element, nothing) is ignored with a warning: masks from renders of
elements are not drawn. The mask's plane is worked out once on the still picture, then
held for the parent's frames, so even ``mask``'s per-pixel expression costs one frame.
"""

from __future__ import annotations

from collections.abc import Callable

from dragon.sxml.model import RGBA, DefinitionError, Node

MASKS = frozenset({"mask", "alphamask", "alphainvmask", "lumamask", "lumainvmask"})
OPAQUE, CLEAR = (255, 255, 255, 255), (0, 0, 0, 255)
ATTRS = frozenset({"opaqueColor", "transparentColor"})


def check(node: Node, warn: Callable[[str], None]) -> list[Node]:
    """The children ``node`` (a mask filter) keeps: its first picture with a file, or none
    (then it is ignored, with a warning). Colours that cannot be read are warned about and
    their defaults used."""
    for name in ATTRS:
        try:
            node.color(name)
        except DefinitionError as exc:
            warn(f"{exc}; the default is used")
            del node.attrs[name]
    pictures = [c for c in node.children if c.tag == "image" and c.attrs.get("filename")]
    if not pictures:
        warn(f"{node.where()}: a mask needs a picture with a file inside; it is ignored")
        return []
    if len(node.children) > 1:
        warn(f"{node.where()}: only its first picture is drawn as the mask")
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
