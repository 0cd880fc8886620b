"""The ``director.theme.*`` widget dialect (docs/sxml.md), rewritten into core SXML.

Real third-party clients (the backstories Python client, several snippets) only ever send
this dialect, so it must render. No documentation of the themes survives; each theme name
gets a look of ours (``themes.py``: its transitions, photo motion, font and colours):

    <widget type="director.theme.X">              <stack>
      <track type="video"> items </track>   ->       <sequence> items, the theme's
                                                       transitions between them </sequence>
      <track type="audio"><audio/></track>           <audio duration=".." fadeout="2"/>
    </widget>                                      </stack>

Items: an ``image`` is a still in the theme's effect (``duration``, default 3 s) with its
``<track type="caption"><text>`` as a legend; a ``text`` is a title card in the theme's
colours (default 3 s); a ``video`` plays its own length; a map image (``type="map"``) is
drawn from the tile server (``maps.py``; a grey card without one). A ``<transition>``
between two items replaces the theme's.
"""

from __future__ import annotations

from dragon.sxml import maps, themes
from dragon.sxml.ducking import ATTRS as DUCKING
from dragon.sxml.model import DefinitionError, Node

PREFIX = "director.theme."
ITEM_DURATION = 3.0
MUSIC_FADEOUT = 2.0
MAP_CARD = "#{:02X}{:02X}{:02X}".format(*maps.CARD_COLOR)  # as a colour attribute

VIDEO_ATTRS = ("filename", "skip", "duration", "audio", "volume", "speed", *DUCKING)
# ``voice`` is copied so that a widget's spoken track is read as in core SXML.
AUDIO_ATTRS = (
    "filename",
    "skip",
    "volume",
    "fadein",
    "fadeout",
    "loop",
    "speed",
    "voice",
    *DUCKING,
)


def expand(widget: Node, warnings: list[str]) -> Node:
    """The core-SXML ``stack`` equivalent to ``widget`` (a director theme)."""
    kind = widget.attrs.get("type", "")
    if not kind.startswith(PREFIX):
        raise DefinitionError(
            widget, f'type="{kind[:60]}" is not supported (only the {PREFIX}* themes are)'
        )
    theme = themes.pick(kind[len(PREFIX) :])
    sequence = _node("sequence", widget)
    if widget.attrs.get("sync"):  # cuts on the beat (beatsync.py), checked as a sequence's
        sequence.attrs["sync"] = widget.attrs["sync"]
    music: list[Node] = []
    for track in widget.children:
        if track.tag != "track":
            warnings.append(f"<{track.tag}> inside <widget> is ignored ({track.position})")
            continue
        kind = track.attrs.get("type", "video")
        if kind == "video":
            _video_track(track, sequence, warnings, theme)
        elif kind == "audio":
            music.extend(_music(a) for a in track.children if a.tag == "audio")
        else:
            warnings.append(f'<track type="{kind[:40]}"> is ignored ({track.position})')
    _add_transitions(sequence, theme)
    stack = _node("stack", widget)
    stack.children = [sequence, *music]
    return stack


def _video_track(track: Node, sequence: Node, warnings: list[str], theme: themes.Theme) -> None:
    for item in track.children:
        if item.tag == "transition":
            sequence.children.append(item)
        elif item.tag == "image" and item.attrs.get("type") == "map":
            sequence.children.append(_map(item, warnings))
        elif item.tag == "image":
            sequence.children.append(_still(item, warnings, theme))
        elif item.tag == "text":
            sequence.children.append(_title(item, theme))
        elif item.tag == "video":
            clip = _node("effect", item, type="none")
            clip.children = [_node("video", item, **_copy(item, VIDEO_ATTRS))]
            sequence.children.append(clip)
        else:
            warnings.append(f"<{item.tag}> in a widget track is ignored ({item.position})")


def _map(item: Node, warnings: list[str]) -> Node:
    """A map drawn from the tile server (a grey card without one, at render); a grey card
    now if the map cannot be read (no center, say), as before maps were drawn."""
    card = _node("effect", item, type="none", duration=_duration(item))
    try:
        maps.check(item)
    except DefinitionError as exc:
        warnings.append(f'<image type="map"> is shown as a grey card: {exc.message}')
        card.children = [_node("image", item, color=MAP_CARD)]
        return card
    kept = {name: item.attrs[name] for name in maps.ATTRS if name in item.attrs}
    card.children = [_node("image", item, type="map", **kept, **{maps.CARD: "1"})]
    return card


def _title(item: Node, theme: themes.Theme) -> Node:
    """A title card: the text in the theme's font and colour on its background."""
    card = _node("stack", item, duration=_duration(item))
    ground = _node("effect", item, type="none")
    ground.children = [_node("image", item, color=theme.title_background)]
    text = _node("text", item, type="zone", fontcolor=theme.title_color, fontname=theme.font)
    text.text = item.text
    card.children = [ground, text]
    return card


def _still(item: Node, warnings: list[str], theme: themes.Theme) -> Node:
    image = _node("image", item, filename=item.attrs.get("filename", ""))
    looks = [_node("filter", item, type=theme.look)] if theme.look else []
    captions = [
        t
        for track in item.children
        if track.tag == "track" and track.attrs.get("type") == "caption"
        for t in track.children
        if t.tag == "text"
    ]
    for other in item.children:
        if other.tag != "track":
            warnings.append(f"<{other.tag}> inside a widget image is ignored ({other.position})")
    if not captions:
        still = _node("effect", item, type=theme.still, duration=_duration(item))
        still.children = [image, *looks]
        return still
    still = _node("effect", item, type=theme.still)
    still.children = [image, *looks]
    stack = _node("stack", item, duration=_duration(item))
    stack.children = [still]
    for caption in captions:
        legend = _node(
            "text", caption, type="legend", fontcolor=theme.caption_color, fontname=theme.font
        )
        legend.text = caption.text
        stack.children.append(legend)
    return stack


def _music(audio: Node) -> Node:
    music = _node("audio", audio, **_copy(audio, AUDIO_ATTRS))
    music.attrs["duration"] = ".."
    music.attrs.setdefault("fadeout", f"{MUSIC_FADEOUT:g}")
    music.text = audio.text  # text in <audio> is text-to-speech: refused by the parser
    return music


def _add_transitions(sequence: Node, theme: themes.Theme) -> None:
    """The theme's transitions, in turn, between neighbours that have no explicit one."""
    out: list[Node] = []
    turn = 0
    for child in sequence.children:
        if out and child.tag != "transition" and out[-1].tag != "transition":
            kind, direction = theme.transitions[turn % len(theme.transitions)]
            turn += 1
            seconds = f"{theme.transition_seconds:g}"
            out.append(_node("transition", child, type=kind, direction=direction, duration=seconds))
        out.append(child)
    sequence.children = out


def _duration(item: Node) -> str:
    raw = item.attrs.get("duration", "").strip()
    return raw if raw and raw != ".." else f"{ITEM_DURATION:g}"


def _copy(item: Node, names: tuple[str, ...]) -> dict[str, str]:
    return {k: item.attrs[k] for k in names if k in item.attrs}


def _node(tag: str, origin: Node, **attrs: str) -> Node:
    return Node(tag=tag, line=origin.line, column=origin.column, attrs=dict(attrs), implicit=True)
