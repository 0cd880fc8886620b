"""SXML transitions as ffmpeg ``xfade`` options: a built-in where one has the look, else
a ``custom`` expression of our own.

ffmpeg 5.1 (Debian 12) is the floor: it has no ``cover``/``reveal``, so ``over``,
``under``, ``dualmove``, ``strip`` and ``spiral`` are drawn by expressions evaluated per
pixel and plane. In them ``P`` is xfade's progress,
going from 1 (all outgoing, ``A``) to 0 (all incoming, ``B``), ``X``/``Y`` the pixel,
``W``/``H`` the frame, and ``a0(x, y)``... ``b3(x, y)`` read a plane of either side at
any (clipped) position. xfade works in 4:4:4, so every plane has the frame's size.
Variables (``st()``/``ld()``) are shared by the slice threads that evaluate one
expression at once (the picture tears), so an expression that needs them runs on one
thread; cheap ones write sub-expressions out and keep the threads. Measured at 240p for
1 s: a crossfade 0.1 s, over/under/spiral 1-2 s, dualmove/strip 4-10 s (at 720p, nine
times that: they suit short transitions).

``direction`` is where things move: ``left`` makes the incoming picture enter from the
right. Three are not xfades (``xfade`` answers ``DRAWN``, ``drawn`` reads it back), nor
are the turns between the pictures of ``rotator``, ``diving`` and ``square`` effects
(``between_items``):
- ``cube``: the two pictures are two faces of a cube turning by a quarter turn in
  perspective, each face a card warped by ffmpeg's ``perspective`` (``card_corners``
  gives the corners, ``Picture.cards`` draws them; ``rotator`` and ``diving`` are cards
  too, on a ring and falling);
- ``waterdrop``: ripples run out from the centre, bending both pictures, while the
  incoming one spreads from the centre under them;
- ``swirl``: both pictures twist about the centre, most at mid-transition, while they
  crossfade.
The last two move each pixel: ffmpeg's ``remap`` reads the pictures where maps of source
coordinates say, maps computed by ``geq`` at an eighth of the frame's size and scaled up
(``warp_maps``; the moves are smooth). A 1 s swirl at 720p took 84 s as a per-pixel xfade
expression, 3.4 s so. The SXML ``custom`` transition has no documented parameters and
crossfades (with a warning).
"""

from __future__ import annotations

from dragon.sxml.model import Node

BUILT_IN = {"crossfade": "fade", "circle": "circleopen", "radial": "radial"}
BUILT_IN_DIRECTIONAL = {"move": "slide", "scan": "wipe"}
SLICES = {"left": "hlslice", "right": "hrslice", "up": "vuslice", "down": "vdslice"}
STRIPS = 8  # bands of a ``strip`` transition
SPIRAL_TURNS = 2
DRAWN = "drawn:"  # what ``xfade`` answers for a transition it does not draw: + kind:direction
WARPS = frozenset({"waterdrop", "swirl"})
MAP_SCALE = 8  # ``warp_maps`` are computed at this fraction of the frame's size
SQUARES = (6, 4)  # ``square``: columns and rows of the incoming picture's squares
CUBE_DISTANCE = 2.5  # the camera's distance from the cube's centre, in face widths
CUBE_SHRINK = 0.18  # how much smaller the cube is drawn mid-turn, so it stays in frame
CAROUSEL_RADIUS = 1.2  # ``rotator``'s ring, in picture widths: neighbours 0.2 apart
CAROUSEL_STEP = "(PI/3)"  # the angle between neighbours on the ring
CAROUSEL_CAMERA = 2.0  # from the front picture, which it shows whole...
CAROUSEL_BACK = 0.35  # ...but mid-turn this much smaller
DIVING_CAMERA = 2.5


def xfade(transition: Node) -> tuple[str, str | None]:
    """The ``xfade`` options (``transition=...``, or ``DRAWN``...) for ``transition``, and
    a warning when it is drawn as a crossfade (an unknown type, or ``custom``)."""
    kind = transition.attrs.get("type", "crossfade")
    direction = transition.attrs.get("direction", "left")
    if kind in BUILT_IN:
        return f"transition={BUILT_IN[kind]}", None
    if kind in BUILT_IN_DIRECTIONAL:
        return f"transition={BUILT_IN_DIRECTIONAL[kind]}{direction}", None
    if kind == "scans":
        return f"transition={SLICES[direction]}", None
    if kind == "cube" or kind in WARPS:
        known = direction if direction in ("right", "up", "down") else "left"
        return f"{DRAWN}{kind}:{known}", None
    if kind in EXPRESSIONS:
        expr = EXPRESSIONS[kind](direction)
        # Variables (st/ld) are shared by xfade's slice threads: one thread then.
        threads = ":threads=1" if "ld(" in expr else ""
        return f"transition=custom:expr='{expr}'{threads}", None
    return "transition=fade", f'<transition type="{kind}"> is drawn as a crossfade'


# -- expressions -----------------------------------------------------------------------------


def _pixel(side: str, x: str, y: str) -> str:
    """The current plane of ``side`` (``a`` or ``b``) at (x, y)."""
    planes = [f"{side}{i}({x},{y})" for i in range(4)]
    return (
        f"if(eq(PLANE,0),{planes[0]},if(eq(PLANE,1),{planes[1]},"
        f"if(eq(PLANE,2),{planes[2]},{planes[3]})))"
    )


def _inside(x: str, y: str) -> str:
    return f"between({x},0,W-1)*between({y},0,H-1)"


def _step(direction: str) -> tuple[str, str]:
    """Offsets of a whole frame's move along ``direction``, scaled by a factor later."""
    return {"left": ("-W", "0"), "right": ("W", "0"), "up": ("0", "-H"), "down": ("0", "H")}[
        direction
    ]


def _over(direction: str) -> str:
    """The incoming picture slides in over the still outgoing one."""
    dx, dy = _step(direction)
    # At progress P the incoming one is still P frames back from its place.
    x, y = f"(X+({dx})*P)", f"(Y+({dy})*P)"
    return f"if({_inside(x, y)},{_pixel('b', x, y)},A)"


def _under(direction: str) -> str:
    """The outgoing picture slides away and uncovers the still incoming one."""
    dx, dy = _step(direction)
    x, y = f"(X-({dx})*(1-P))", f"(Y-({dy})*(1-P))"
    return f"if({_inside(x, y)},{_pixel('a', x, y)},B)"


def _push(dx: str, dy: str) -> str:
    """Both pictures move together by (dx, dy) frames' worth at the end (a slide)."""
    x, y = f"(X-({dx})*(1-P))", f"(Y-({dy})*(1-P))"
    return f"if({_inside(x, y)},{_pixel('a', x, y)},{_pixel('b', f'{x}+({dx})', f'{y}+({dy})')})"


def _dualmove(direction: str) -> str:
    """Two halves slide in opposite directions: along ``direction`` in the first half
    (top, or left for up/down) and the other way in the second."""
    dx, dy = _step(direction)
    half = "lt(Y,H/2)" if direction in ("left", "right") else "lt(X,W/2)"
    return f"if({half},{_push(dx, dy)},{_push(f'-({dx})', f'-({dy})')})"


def _strip(direction: str) -> str:
    """Bands that slide in alternately from either side, along ``direction``."""
    dx, dy = _step(direction)
    band = f"floor(Y*{STRIPS}/H)" if direction in ("left", "right") else f"floor(X*{STRIPS}/W)"
    side = f"(1-2*mod({band},2))"
    x, y = f"(X+{side}*({dx})*P)", f"(Y+{side}*({dy})*P)"
    return f"if({_inside(x, y)},{_pixel('b', x, y)},A)"


def _spiral(direction: str) -> str:
    """The incoming picture is uncovered along a spiral running out from the centre."""
    sign = "-1" if direction in ("right", "down") else "1"
    angle = f"(atan2({sign}*(Y-H/2),X-W/2)+PI)/(2*PI)"
    order = f"(hypot(X-W/2,Y-H/2)/hypot(W/2,H/2)*{SPIRAL_TURNS}+{angle})/{SPIRAL_TURNS + 1}"
    return f"if(lt({order},1-P),B,A)"


EXPRESSIONS = {
    "over": _over,
    "under": _under,
    "dualmove": _dualmove,
    "strip": _strip,
    "spiral": _spiral,
}


# -- cards turning in depth: the cube, and the carousels of the multi-media effects -------------


def _eased(count: int) -> str:
    """The progress of frame ``in`` of ``count``, eased in and out (0 to 1, exclusive)."""
    p = f"((in+1)/{count + 1})"
    return f"({p}*{p}*(3-2*{p}))"


def _card(
    centre: tuple[str, str], tangent: tuple[str, str], camera: float, focal: str
) -> list[tuple[str, str]]:
    """A picture as a card in depth, seen by the camera: its corners (top left, top right,
    bottom left, bottom right) as (along, across) fractions of the frame from its centre.

    "Along" is the direction the card turns in (across the screen for a turn about the
    vertical axis); units are the picture's length along it. The card's centre is at
    ``centre`` (along, depth: towards the camera positive), its length runs along
    ``tangent``; the camera is ``camera`` away from depth 0 and shows a card at depth 0
    ``focal / camera`` times its size."""
    points = []
    for across in (-0.5, 0.5):
        for end in (-0.5, 0.5):
            along = f"({centre[0]}+{end}*{tangent[0]})"
            depth = f"({centre[1]}+{end}*{tangent[1]})"
            k = f"({focal}/({camera}-{depth}))"
            points.append((f"({along}*{k})", f"({across}*{k})"))
    return points


def cube_cards(count: int) -> tuple[list[list[tuple[str, str]]], bool]:
    """The outgoing and incoming faces of a cube turning a quarter turn to the left (its
    edges one picture long, the nearer edge between them taller), drawn up to
    ``CUBE_SHRINK`` smaller mid-turn so it stays in frame; the nearer face is on top."""
    angle = f"(PI/2*{_eased(count)})"
    c, s = f"cos({angle})", f"sin({angle})"
    focal = f"({CUBE_DISTANCE - 0.5}*(1-{CUBE_SHRINK}*sin(2*{angle})))"
    return [
        _card((f"(-0.5*{s})", f"(0.5*{c}-0.5)"), (c, s), CUBE_DISTANCE - 0.5, focal),
        _card((f"(0.5*{c})", f"(0.5*{s}-0.5)"), (s, f"(-{c})"), CUBE_DISTANCE - 0.5, focal),
    ], True


def carousel_cards(count: int) -> tuple[list[list[tuple[str, str]]], bool]:
    """``rotator``: pictures on a ring, turning by one place (``CAROUSEL_STEP``) to the
    left; the camera draws back mid-turn, so both cards show with the gap between them."""
    e = _eased(count)
    focal = f"({CAROUSEL_CAMERA}*(1-{CAROUSEL_BACK}*sin(PI*{e})))"
    cards = []
    for angle in (f"(-{CAROUSEL_STEP}*{e})", f"({CAROUSEL_STEP}*(1-{e}))"):
        centre = (
            f"({CAROUSEL_RADIUS}*sin({angle}))",
            f"({CAROUSEL_RADIUS}*(cos({angle})-1))",
        )
        cards.append(_card(centre, (f"cos({angle})", f"(-sin({angle}))"), CAROUSEL_CAMERA, focal))
    return cards, True


def diving_cards(count: int) -> tuple[list[list[tuple[str, str]]], bool]:
    """``diving``: the outgoing picture tips forward over its bottom edge and drops out of
    the bottom of the frame, while the incoming one comes forward from the depth behind
    it (always beneath)."""
    e = _eased(count)
    tip = f"(PI/2*{e})"
    # Its bottom edge (along +0.5, depth 0) falls by 1.2 pictures; the top comes forward.
    centre = (f"(0.5-0.5*cos({tip})+1.2*{e})", f"(0.5*sin({tip}))")
    outgoing = _card(centre, (f"cos({tip})", f"(-sin({tip}))"), DIVING_CAMERA, str(DIVING_CAMERA))
    incoming = _card(("0", f"(-1.5*(1-{e}))"), ("1", "0"), DIVING_CAMERA, str(DIVING_CAMERA))
    return [outgoing, incoming], False


CARDS = {"cube": cube_cards, "rotator": carousel_cards, "diving": diving_cards}


def card_corners(
    kind: str, direction: str, count: int, size: tuple[int, int], margin: int
) -> tuple[list[list[str]], bool]:
    """``perspective``'s destination corners (``x0 y0 ... x3 y3``) of the outgoing and the
    incoming picture of a ``kind`` turn (``CARDS``) over ``count`` frames (``in``: the
    frame), each a ``size`` picture padded by ``margin`` pixels on every side; and whether
    the nearer one is drawn on top (else the outgoing one always is).

    The cards are worked out turning to the left; ``right`` mirrors them, ``up`` and
    ``down`` turn about the horizontal axis (``diving``'s drop is ``up``: down the
    screen, its top tipping towards the viewer)."""
    vertical = direction in ("up", "down")
    w, h = (size[1], size[0]) if vertical else size  # along the turn, and across it
    cards, swap = CARDS[kind](count)
    faces = []
    for card in cards:
        points = [
            (f"({margin}+{w}/2+{along}*{w})", f"({margin}+{h}/2+{across}*{h})")
            for along, across in card
        ]
        faces.append(_oriented(points, direction, w + 2 * margin))
    return faces, swap


def _oriented(points: list[tuple[str, str]], direction: str, length: int) -> list[str]:
    """Corners worked out for a turn to the left, for a turn to ``direction``: mirrored for
    ``right`` and ``down`` (a face's left corners become its right ones), and with the two
    axes swapped for ``up`` and ``down``. ``length`` is the padded size along the turn."""
    tl, tr, bl, br = points
    if direction in ("right", "down"):
        tl, tr, bl, br = ((f"({length}-{x})", y) for x, y in (tr, tl, br, bl))
    if direction in ("up", "down"):  # along is y, across is x; top right is (across, along)
        tl, tr, bl, br = ((y, x) for x, y in (tl, bl, tr, br))
    return [value for corner in (tl, tr, bl, br) for value in corner]


def between_items(effect: str) -> str:
    """The options (as ``xfade`` answers them) of the turn between two pictures of a
    multi-media effect: a slide for ``sliding``, cards for ``diving`` and ``rotator``,
    squares for ``square``."""
    return {
        "sliding": "transition=slideleft",
        "diving": f"{DRAWN}diving:up",
        "rotator": f"{DRAWN}rotator:left",
        "square": f"{DRAWN}square:left",
    }.get(effect, "transition=fade")


def drawn(options: str | None) -> tuple[str, str] | None:
    """``(kind, direction)`` of a transition ``xfade`` does not draw, from its answer."""
    if not options or not options.startswith(DRAWN):
        return None
    kind, _, direction = options[len(DRAWN) :].partition(":")
    return kind, direction


# -- waterdrop and swirl ----------------------------------------------------------------------


def warp_maps(kind: str, direction: str, count: int, size: tuple[int, int]) -> list[str]:
    """``geq`` expressions, on a map ``MAP_SCALE`` times smaller than the ``size`` frame
    (``remap`` reads the nearest pixel of the coordinates, rounded),
    for frame ``N`` of a ``count``-frame ``kind`` transition: the x and the y (in frame
    pixels) each pixel is read from, and for ``waterdrop`` the incoming picture's share
    (0 to 255); a swirl crossfades."""
    w, h = size
    q = f"((N+1)/{count + 1})"  # how far in, 0 to 1
    # The frame pixel a map pixel stands for once scaled up (``W``/``H``: the map's size),
    # from the frame's centre.
    cx, cy = (w - 1) / 2, (h - 1) / 2
    dx, dy = f"((X+0.5)*{w}/W-0.5-{cx:g})", f"((Y+0.5)*{h}/H-0.5-{cy:g})"
    radius = f"hypot({w / 2:g},{h / 2:g})"
    if kind == "swirl":
        sign = "-1" if direction in ("right", "down") else "1"
        angle = f"({sign}*2*PI*sin(PI*{q})*pow(max(0,1-hypot({dx},{dy})/{radius}),2))"
        x = f"{cx:g}+{dx}*cos({angle})-{dy}*sin({angle})"
        y = f"{cy:g}+{dx}*sin({angle})+{dy}*cos({angle})"
        return [f"clip({x},0,{w - 1})", f"clip({y},0,{h - 1})"]
    # A ripple: rings moving out, strongest mid-transition, still at the very centre.
    distance, wave = f"max(hypot({dx},{dy}),1)", h / 24
    bend = (
        f"(1+{h / 40:g}*sin(PI*{q})*sin({distance}/{wave:g}-{q}*20)"
        f"*min(1,{distance}/{wave:g})/{distance})"
    )
    share = f"255*clip(({q}*1.4-hypot({dx},{dy})/{radius})/0.4,0,1)"
    return [
        f"clip({cx:g}+{dx}*{bend},0,{w - 1})",
        f"clip({cy:g}+{dy}*{bend},0,{h - 1})",
        share,
    ]
