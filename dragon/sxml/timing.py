"""When every element plays: SXML's two-pass duration resolution (docs/sxml.md).

SXML has no timeline: durations flow up from the content and back down from containers.

Pass 1, bottom-up, computes each node's *natural* duration (None = flexible): a number in
``duration``, a media file's length after ``skip`` and ``speed``, the longest child of a
stack (children with ``duration=".."`` and flexible ones do not count), the sum of a
sequence's items (5 s for a flexible item, the effect default) minus its transitions.

Pass 2, top-down, assigns absolute ``begin``/``duration``: a stack gives each child its
explicit duration placed by its margins, or else its own duration minus the margins; a
sequence plays its items back to back, each overlapping the previous one by the
transition between them; a multi-media effect shares its time among its media. ``end`` is
the visible end, clipped by every ancestor ("an item with a fixed duration truncates
children that would run longer").

Choices where SXML leaves room: a transition is also clamped so that the two
transitions touching one item never overlap (not only to its neighbours' lengths); a
``duration=".."`` item inside a sequence, where it means nothing, gets the 5 s default;
a multi-media effect's media are shown in equal slots that overlap by its internal
crossfade (``EFFECT_CROSSFADE``), so the effect still lasts exactly its duration; with
more media than that leaves room for (under ``MIN_EFFECT_CROSSFADE`` each), the slots are
cut back to back, and with more media than frames some media get no frame at all.
"""

from __future__ import annotations

from collections.abc import Callable

from dragon.sxml.model import MULTI_EFFECTS, DefinitionError, Node

DEFAULT_ITEM = 5.0
DEFAULT_TRANSITION = 1.0
EFFECT_CROSSFADE = 0.5
# The turn between the media of the effects that draw one in depth, in seconds.
EFFECT_TURNS = {"diving": 1.0, "rotator": 1.0, "square": 1.0}
MIN_EFFECT_CROSSFADE = 0.2

MediaLength = Callable[[Node], float | None]


def resolve(body: Node, media_length: MediaLength, *, max_duration: float) -> list[str]:
    """Fill the timing fields of every node under ``body``; return warnings.

    ``media_length(node)`` is the probed length of a ``video``/``audio`` node's file in
    seconds (None when unknown). Raises ``DefinitionError`` for an empty or too long movie.
    """
    warnings: list[str] = []
    total = _natural(body, media_length, warnings)
    if total is None or total <= 0:
        raise DefinitionError(body, "lasts 0 seconds: there is nothing to render")
    if total > max_duration:
        raise DefinitionError(
            None, f"the movie would last {total:.1f} s, longer than the {max_duration:g} s allowed"
        )
    _assign(body, 0.0, total, total)
    return warnings


# -- pass 1: natural durations, bottom-up ------------------------------------------------


def _natural(node: Node, media_length: MediaLength, warnings: list[str]) -> float | None:
    for child in node.children:
        _natural(child, media_length, warnings)
    node.natural = _own_natural(node, media_length, warnings)
    return node.natural


def _own_natural(node: Node, media_length: MediaLength, warnings: list[str]) -> float | None:
    """``node``'s natural duration, its children's being known: an explicit number first
    (a sequence sums its items otherwise; a bound element is flexible), else what its
    content gives."""
    tag = node.tag
    if tag == "transition":
        return None  # its length is its sequence's business (see _sequence_length)
    explicit = node.explicit
    if tag in ("body", "sequence"):
        return explicit if explicit is not None else _sequence_length(node, warnings)
    if explicit is not None or node.bound:
        return explicit
    if tag in ("audio", "video"):
        return _media_natural(node, media_length)
    if tag == "effect":
        return _effect_natural(node)
    if tag in ("text", "overlay"):
        return next((c.natural for c in node.content if c.natural is not None), None)
    if tag == "stack":
        return _stack_natural(node)
    return None  # image, filter, decoration


def _stack_natural(node: Node) -> float | None:
    """The longest child with its margins; bound and flexible children do not count."""
    lengths = [_extent(c) for c in node.content if not c.bound and c.natural is not None]
    return max(lengths) if lengths else None


def _media_natural(node: Node, media_length: MediaLength) -> float | None:
    if node.tag == "audio" and node.flag("loop", False):
        return None  # a looped track fills its parent
    length = media_length(node)
    if length is None:
        return None
    skip = node.number("skip", 0.0) or 0.0
    return max(0.0, length - skip) / (node.number("speed", 1.0) or 1.0)


def _effect_natural(node: Node) -> float | None:
    known = [c.natural for c in node.content if c.natural is not None]
    if not known:
        return None
    if node.attrs.get("type") in MULTI_EFFECTS:
        return sum(known)
    return node.content[0].natural


def _extent(node: Node) -> float:
    """A stack child's natural duration plus its margins."""
    start, end = node.margins
    return (node.natural or 0.0) + (start or 0.0) + (end or 0.0)


def _sequence_length(node: Node, warnings: list[str]) -> float:
    total = 0.0
    previous_length = None
    previous_overlap = 0.0
    pending: Node | None = None
    for child in node.children:
        if child.tag == "transition":
            pending = child
            continue
        if child.is_content:
            length = _item_length(child, warnings)
            overlap = 0.0
            if pending is not None and previous_length is not None:
                overlap = _clamp_transition(
                    pending, previous_length - previous_overlap, length, warnings
                )
            total += length - overlap
            previous_length, previous_overlap, pending = length, overlap, None
    return total


def _item_length(node: Node, warnings: list[str]) -> float:
    if node.bound:
        warnings.append(
            f'{node.where()}: duration=".." means nothing inside a sequence; '
            f"it lasts {DEFAULT_ITEM:g} s"
        )
        return DEFAULT_ITEM
    return node.natural if node.natural is not None else DEFAULT_ITEM


def _clamp_transition(node: Node, before: float, after: float, warnings: list[str]) -> float:
    wanted = node.number("duration", DEFAULT_TRANSITION) or 0.0
    value = max(0.0, min(wanted, before, after))
    if value < wanted and not node.implicit:
        warnings.append(
            f"{node.where()}: shortened from {wanted:g} s to {value:.3g} s to fit "
            f"between its neighbours"
        )
    node.natural = value
    return value


# -- pass 2: assignment, top-down --------------------------------------------------------


def _assign(node: Node, begin: float, duration: float, limit: float) -> None:
    node.begin = begin
    node.duration = duration
    node.end = max(begin, min(begin + duration, limit))
    tag = node.tag
    if tag in ("body", "sequence"):
        _assign_sequence(node)
    elif tag == "effect" and node.attrs.get("type") in MULTI_EFFECTS:
        _assign_slots(node)
    elif tag in ("effect", "text", "overlay"):
        for child in node.content:
            _assign(child, begin, duration, node.end)
    elif tag == "stack":
        for child in node.content:
            _assign_placed(node, child)
        for camera in node.kids({"camera"}):  # it films the whole stack
            camera.begin, camera.end, camera.duration = node.begin, node.end, duration
            for animator in camera.kids({"animator"}):
                _assign_placed(camera, animator)
    elif tag == "filter":  # a mask's picture: the filter's time
        for child in node.content:
            _assign(child, begin, duration, node.end)
    for child in node.kids({"filter", "animator"}):
        _assign_placed(node, child)


def _assign_placed(parent: Node, child: Node) -> None:
    """A child placed inside ``parent`` by its margins and duration (stack rules)."""
    start, end = child.margins
    explicit = child.explicit
    if explicit is not None:
        if start is not None:
            offset = start
        elif end is not None:
            offset = max(0.0, parent.duration - end - explicit)
        else:
            offset = 0.0
        _assign(child, parent.begin + offset, explicit, parent.end)
        return
    offset, tail = start or 0.0, end or 0.0
    _assign(child, parent.begin + offset, max(0.0, parent.duration - offset - tail), parent.end)


def _assign_sequence(node: Node) -> None:
    cursor = node.begin
    overlap = 0.0
    for child in node.children:
        if child.tag == "transition":
            overlap = child.natural or 0.0
            child.begin, child.duration = cursor - overlap, overlap
            child.end = max(child.begin, min(cursor, node.end))
            continue
        if child.is_content:
            length = (
                DEFAULT_ITEM
                if child.bound
                else (child.natural if child.natural is not None else DEFAULT_ITEM)
            )
            start = cursor - overlap
            _assign(child, start, length, node.end)
            cursor, overlap = start + length, 0.0


def _assign_slots(node: Node) -> None:
    """Media of a multi-media effect: equal slots overlapping by a short crossfade (or by
    its turn, ``EFFECT_TURNS``)."""
    media = node.content
    count = len(media)
    turn = EFFECT_TURNS.get(node.attrs.get("type", ""), EFFECT_CROSSFADE)
    overlap = min(turn, node.duration / (2 * count)) if count > 1 else 0.0
    if overlap < MIN_EFFECT_CROSSFADE:
        # Slots of a few frames (or less than one) are cut, not crossfaded: ffmpeg's xfade
        # needs whole frames, and an image shown for two frames has nothing to fade.
        overlap = 0.0
    slot = (node.duration + (count - 1) * overlap) / count
    for i, child in enumerate(media):
        _assign(child, node.begin + i * (slot - overlap), slot, node.end)
