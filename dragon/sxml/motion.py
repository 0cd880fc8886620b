"""Animators (``<animator>``) as per-frame ffmpeg expressions: where a layer is, how large
and how turned, frame by frame.

An animator moves its parent (an overlay, a text or an effect) during its own time window,
which ``timing.py`` places like a filter's: the parent's whole duration unless margins or a
duration say otherwise. Before the window the parent holds the animator's first state,
after it the last one. Our reading of the types, which SXML names without drawing:

- ``slide-in``: enters from off-screen and stops at its place; ``direction`` is where it
  moves, so ``left`` enters from the right. ``slide-out``: leaves its place and goes
  off-screen along ``direction``. ``slide``: crosses the frame along ``direction``, from
  off-screen to off-screen, passing its place.
- ``rot-in``: turns from ``angle`` degrees (default 90; positive is counter-clockwise, as
  in OpenGL) back to upright; ``rot-out``: from upright to ``angle``.
- ``grow``: moves the node along the depth axis from z = ``growStart`` to z = ``growEnd``
  (OpenGL units; negative is further away), seen through the movie's camera
  (``camera.py``): the node shrinks or grows about its centre, and its centre moves towards
  or away from the frame's centre, as perspective draws it. Defaults: from twice the
  camera's distance (half size) to z = 0 (its placed size).
- ``custom``: ``<key time pos scale rot>`` keyframes, linearly interpolated. ``time`` is in
  seconds from the window's start; ``pos="x,y[,z]"`` moves the node in SXML's OpenGL units
  (half the frame height per unit, y upwards; z in depth, as ``grow``);
  ``scale="x[,y[,z]]"`` multiplies its width and height; ``rot="degrees[,ax,ay,az]"`` turns
  it about that axis through its centre (right-handed, OpenGL's: ``0,1,0`` is the vertical
  axis, and a positive turn about it takes the right edge away), seen through the
  movie's camera: a turn about the vertical axis draws a trapezoid, its near edge taller.
  The near side of a turned node is drawn at most ``MAX_TILT_SCALE`` times its size (the
  layer is padded by that much, per frame). A node's keys turn about one axis: keys that
  name another are drawn about the first one's, with a warning.

Several animators on one node add their offsets, depths and turns and multiply their scales.
An effect with ``depthEnable="false"`` is drawn flat: its animators' depths (``grow``, a
key's z) and turns in depth are left out, its slides and turns in the plane kept.
``mode="quadratic"`` eases an animator in and out (the progress ``u`` through each step
becomes ``2u^2`` for its first half and ``1 - 2(1-u)^2`` for its second: it starts and
stops gently); ``linear``, the default, keeps a constant speed.

Every value is a sum of clamped ramps, ``v0 + (v1 - v0) * clip((T - a) / (b - a), 0, 1)``,
over the absolute frame number ``T``: no branches, and it stays right when a movie is cut
into time windows (``segments.py``), since ``T`` counts from the movie's start.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable

from dragon.sxml import camera
from dragon.sxml.model import DefinitionError, Node

TYPES = frozenset({"slide", "slide-in", "slide-out", "rot-in", "rot-out", "grow", "custom"})
DEFAULT_ANGLE = 90.0
DEFAULT_GROW = (-camera.DISTANCE, 0.0)  # depths: half size, then as placed
DEPTH_LIMIT = 1e6  # any finite depth is read; past this a node is a dot anyway
MIN_SCALE = 0.02  # a layer of no pixels would stop the graph
MAX_KEYS = 100
MAX_TILT_SCALE = 1.5  # the nearest point of a turned node, times its size at most
Axis = tuple[float, float, float]

# first frame, last frame, start value, end value, eased (mode="quadratic")
Ramp = tuple[int, int, float, float, bool]
MODES = frozenset({"linear", "quadratic"})


@dataclasses.dataclass
class Tracks:
    """Ramps for each animated quantity; offsets in pixels, turns in radians."""

    dx: list[Ramp] = dataclasses.field(default_factory=list)
    dy: list[Ramp] = dataclasses.field(default_factory=list)
    depth: list[Ramp] = dataclasses.field(default_factory=list)  # z, in OpenGL units
    turn: list[Ramp] = dataclasses.field(default_factory=list)
    sx: list[list[Ramp]] = dataclasses.field(default_factory=list)  # one product factor each
    sy: list[list[Ramp]] = dataclasses.field(default_factory=list)
    tilt: list[Ramp] = dataclasses.field(default_factory=list)  # radians about ``tilt_axis``
    tilt_axis: Axis = (0.0, 1.0, 0.0)  # unit, right-handed, y up (OpenGL)

    @property
    def scales(self) -> bool:
        return bool(self.sx or self.sy or self.depth)


@dataclasses.dataclass(frozen=True)
class Motion:
    """A moving layer's overlay position: ``x``/``y`` expressions of the layer's own frame
    number, written for ``overlay``'s ``eval=frame`` (``overlay_w``/``overlay_h`` are the
    layer's current size, which rotation and scaling change). With depth, the centre's
    distance from the frame's centre (``focus``) is scaled as the layer is."""

    centre: tuple[float, float]
    first: int  # absolute frame of the layer's first frame
    dx: tuple[Ramp, ...]
    dy: tuple[Ramp, ...]
    depth: tuple[Ramp, ...] = ()
    focus: tuple[float, float] = (0.0, 0.0)

    def x(self, frame: str) -> str:
        return self._axis(0, self.dx, frame) + "-overlay_w/2"

    def y(self, frame: str) -> str:
        return self._axis(1, self.dy, frame) + "-overlay_h/2"

    def _axis(self, axis: int, offsets: tuple[Ramp, ...], frame: str) -> str:
        moved = _sum(offsets, self.first, frame)
        if not self.depth:
            return f"{self.centre[axis]:g}+{moved}"
        scale = camera.depth_scale_expr(_sum(self.depth, self.first, frame))
        focus = self.focus[axis]
        return f"{focus:g}+({self.centre[axis] - focus:g}+{moved})*{scale}"


# -- checking (parse.py) ----------------------------------------------------------------------


def check(node: Node) -> None:
    """Raise ``DefinitionError`` for an animator we cannot read."""
    kind = node.attrs.get("type", "")
    if kind not in TYPES:
        raise DefinitionError(
            node, f'type="{kind[:40]}" is not one of: ' + ", ".join(sorted(TYPES))
        )
    node.choice("direction", frozenset({"left", "right", "up", "down"}), "left")
    node.number("angle", DEFAULT_ANGLE, minimum=-3600, maximum=3600)
    node.number("growStart", minimum=-DEPTH_LIMIT, maximum=DEPTH_LIMIT)
    node.number("growEnd", minimum=-DEPTH_LIMIT, maximum=DEPTH_LIMIT)
    keys = node.kids({"key"})
    if kind == "custom" and not keys:
        raise DefinitionError(node, 'type="custom" needs <key> elements')
    if len(keys) > MAX_KEYS:
        raise DefinitionError(node, f"has more than {MAX_KEYS} <key> elements")
    for key in keys:
        key.number("time", 0.0)
        _vector(key, "pos", 3)
        _vector(key, "scale", 3)
        _vector(key, "rot", 4)


def approximations(node: Node) -> list[str]:
    """What of a (checked) animator is not drawn as written."""
    notes = []
    if node.attrs.get("type") == "grow":
        for name in ("growStart", "growEnd"):
            z = node.number(name, minimum=-DEPTH_LIMIT, maximum=DEPTH_LIMIT)
            if z is not None and z > camera.NEAREST:
                notes.append(_too_near(node, f"{name}={z:g}"))
    axes = []
    for key in node.kids({"key"}):
        pos = _vector(key, "pos", 3)
        if pos and len(pos) == 3 and pos[2] > camera.NEAREST:
            notes.append(_too_near(key, f"the depth {pos[2]:g} of pos"))
        axis = _axis(key)
        if axis is not None and axis not in axes:
            axes.append(axis)
            if len(axes) == 2:
                notes.append(f"{key.where()}: turns about another axis than the keys before")
    return notes


def _axis(key: Node) -> Axis | None:
    """The unit axis a key's ``rot`` turns about (None: no turn, or no axis given)."""
    rot = _vector(key, "rot", 4)
    if not rot or len(rot) < 4 or not rot[0]:
        return None
    length = math.sqrt(sum(v * v for v in rot[1:]))
    if length < 1e-9:
        return None
    return (rot[1] / length, rot[2] / length, rot[3] / length)


def _too_near(node: Node, what: str) -> str:
    return (
        f"{node.where()}: {what} is at or behind the camera (z = {camera.DISTANCE:.3g});"
        f" drawn at z = {camera.NEAREST:.3g}"
    )


def _vector(node: Node, name: str, size: int) -> list[float] | None:
    raw = node.attrs.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        values = [float(v) for v in raw.split(",")]
    except ValueError:
        raise DefinitionError(node, f'{name}="{raw[:40]}" is not a list of numbers') from None
    if not 1 <= len(values) <= size or not all(math.isfinite(v) and abs(v) <= 1e4 for v in values):
        raise DefinitionError(node, f'{name}="{raw[:40]}" needs 1 to {size} numbers')
    return values


# -- building (picture.py) --------------------------------------------------------------------


def tracks(
    node: Node,
    box: tuple[int, int, int, int],
    frame_size: tuple[int, int],
    frame_of: Callable[[float], int],
    rate: float,
) -> Tracks:
    """The ramps of every animator of ``node`` whose layer sits in ``box`` (pixels)."""
    out = Tracks()
    x, y, w, h = box
    width, height = frame_size
    for anim in node.kids({"animator"}):
        a, b = frame_of(anim.begin), frame_of(anim.end)
        if b <= a:
            b = a + 1  # a zero-length window: a jump at its frame
        kind = anim.attrs.get("type")
        direction = anim.attrs.get("direction", "left")
        eased = anim.attrs.get("mode") == "quadratic"
        if kind in ("slide", "slide-in", "slide-out"):
            enter, leave = _off_screen(direction, x, y, w, h, width, height)
            start = enter if kind != "slide-out" else (0.0, 0.0)
            end = leave if kind != "slide-in" else (0.0, 0.0)
            out.dx.append((a, b, start[0], end[0], eased))
            out.dy.append((a, b, start[1], end[1], eased))
        elif kind in ("rot-in", "rot-out"):
            angle = -math.radians(
                anim.number("angle", DEFAULT_ANGLE, minimum=-3600, maximum=3600)
            )  # rotate turns clockwise
            turn = (angle, 0.0) if kind == "rot-in" else (0.0, angle)
            out.turn.append((a, b, *turn, eased))
        elif kind == "grow":
            z0, z1 = (
                anim.number(name, default, minimum=-DEPTH_LIMIT, maximum=DEPTH_LIMIT)
                for name, default in zip(("growStart", "growEnd"), DEFAULT_GROW, strict=True)
            )
            out.depth.append((a, b, z0, z1, eased))
        elif kind == "custom":
            _custom(anim, a, rate, height, out, eased)
    if not node.flag("depthEnable", True):  # an effect drawn flat: no depth, no perspective
        out.depth, out.tilt = [], []
    return out


def _off_screen(
    direction: str, x: int, y: int, w: int, h: int, width: int, height: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Offsets (entering, leaving) that put the box just outside the frame."""
    if direction == "left":
        return (width - x, 0.0), (-(x + w), 0.0)
    if direction == "right":
        return (-(x + w), 0.0), (width - x, 0.0)
    if direction == "up":
        return (0.0, height - y), (0.0, -(y + h))
    return (0.0, -(y + h)), (0.0, height - y)


def _custom(anim: Node, first: int, rate: float, height: int, out: Tracks, eased: bool) -> None:
    keys = sorted(anim.kids({"key"}), key=lambda k: k.number("time", 0.0) or 0.0)
    unit = height / 2  # SXML's y runs from -1 to 1 across the frame height
    frames = [first + round((k.number("time", 0.0) or 0.0) * rate) for k in keys]

    def component(name: str, index: int, default: float) -> list[float]:
        values = []
        for key in keys:
            vector = _vector(key, name, 4) or []
            if name == "scale" and len(vector) == 1:
                vector = vector * 2  # one number scales both ways
            values.append(vector[index] if index < len(vector) else default)
        return values

    def relative(values: list[float]) -> list[Ramp]:
        """The first key's value, then one ramp per pair of keys adding the change."""
        return [(frames[0], frames[0] + 1, values[0], values[0], False)] + [
            (frames[i], max(frames[i + 1], frames[i] + 1), 0.0, values[i + 1] - values[i], eased)
            for i in range(len(keys) - 1)
        ]

    dx = [v * unit for v in component("pos", 0, 0.0)]
    dy = [-v * unit for v in component("pos", 1, 0.0)]
    depth = component("pos", 2, 0.0)
    turn = _turns(keys, [math.radians(v) for v in component("rot", 0, 0.0)], relative, out)
    if any(dx):
        out.dx.extend(relative(dx))
    if any(dy):
        out.dy.extend(relative(dy))
    if any(depth):
        out.depth.extend(relative(depth))
    if any(turn):
        out.turn.extend(relative(turn))
    sx = [max(MIN_SCALE, v) for v in component("scale", 0, 1.0)]
    sy = [max(MIN_SCALE, v) for v in component("scale", 1, 1.0)]
    if any(v != 1.0 for v in sx + sy):
        out.sx.append(relative(sx))
        out.sy.append(relative(sy))


def _turns(
    keys: list[Node],
    angles: list[float],
    relative: Callable[[list[float]], list[Ramp]],
    out: Tracks,
) -> list[float]:
    """The keys' turns: about an axis in depth, ``out.tilt`` (drawn in perspective by
    picture.py) and no turn returned; else the turns in the picture's plane, clockwise
    radians as ``rotate`` takes them."""
    axes = [a for a in (_axis(k) for k in keys) if a is not None]
    tilted = next((a for a in axes if abs(a[2]) < 1 - 1e-9), None)
    if tilted is None:
        return [-v for v in angles]
    out.tilt_axis = tilted
    out.tilt.extend(relative(angles))
    return []


def seen_from(camera: Tracks) -> Tracks:
    """How the picture moves when the camera moves by ``camera``: the other way. (The
    camera's scale keys have no counterpart here: they are not drawn, and parse.py says
    so.)"""

    def back(ramps: list[Ramp]) -> list[Ramp]:
        return [(a, b, -v0, -v1, eased) for a, b, v0, v1, eased in ramps]

    return Tracks(
        dx=back(camera.dx),
        dy=back(camera.dy),
        depth=back(camera.depth),
        turn=back(camera.turn),
        tilt=back(camera.tilt),
        tilt_axis=camera.tilt_axis,
    )


def _ramp(ramp: Ramp, first: int, frame: str) -> str:
    a, b, v0, v1, eased = ramp
    if v0 == v1:
        return f"{v0:.6g}"
    u = f"clip(({first}+{frame}-{a})/{b - a},0,1)"
    if eased:
        u = f"if(lt({u},0.5),2*{u}*{u},1-2*(1-{u})*(1-{u}))"
    return f"{v0:.6g}+({v1 - v0:.6g})*{u}"


def _sum(ramps: Iterable[Ramp], first: int, frame: str) -> str:
    terms = [_ramp(r, first, frame) for r in ramps if r[2] or r[3]]
    return "(" + "+".join(terms) + ")" if terms else "0"


def tilt_corners(
    tracks: Tracks, first: int, frame: str, size: tuple[int, int], height: int
) -> list[str]:
    """``perspective``'s ``x0 y0 ... x3 y3`` (destination corners, top left, top right,
    bottom left, bottom right) of a ``size`` layer centred in its padded canvas (``W`` by
    ``H``), turned by ``tracks.tilt`` about ``tracks.tilt_axis`` through its centre and
    seen by the movie's camera (``camera.DISTANCE`` half frame ``height``s away)."""
    angle = _sum(tracks.tilt, first, frame)
    c, s = f"cos({angle})", f"sin({angle})"
    v = f"(1-{c})"  # Rodrigues' rotation: R = c I + s [k]x + (1 - c) k k^T
    kx, ky, kz = tracks.tilt_axis
    rows = (
        (f"({c}+{kx * kx:.6g}*{v})", f"({kx * ky:.6g}*{v}-{kz:.6g}*{s})"),
        (f"({ky * kx:.6g}*{v}+{kz:.6g}*{s})", f"({c}+{ky * ky:.6g}*{v})"),
        (f"({kz * kx:.6g}*{v}-{ky:.6g}*{s})", f"({kz * ky:.6g}*{v}+{kx:.6g}*{s})"),
    )
    distance = camera.DISTANCE * height / 2
    corners = []
    for sy in (1, -1):  # y up: the top edge first
        for sx in (-1, 1):
            px, py = sx * size[0] / 2, sy * size[1] / 2
            x, y, z = (f"({px:g}*{a}+{py:g}*{b})" for a, b in rows)
            f = f"min({MAX_TILT_SCALE},{distance:.6g}/({distance:.6g}-{z}))"
            corners += [f"W/2+{x}*{f}", f"H/2-{y}*{f}"]
    return corners


def turn_expr(tracks: Tracks, first: int, frame: str) -> str:
    """``rotate``'s angle (radians, clockwise) at the layer's frame ``frame``."""
    return _sum(tracks.turn, first, frame)


def scale_expr(tracks: Tracks, factors: list[list[Ramp]], first: int, frame: str) -> str:
    """The product of the scale factors (and of the depth's, through the camera) at the
    layer's frame ``frame``."""
    terms = [f"max({MIN_SCALE},{_sum(f, first, frame)})" for f in factors]
    if tracks.depth:
        terms.append(camera.depth_scale_expr(_sum(tracks.depth, first, frame)))
    return "*".join(terms) or "1"
