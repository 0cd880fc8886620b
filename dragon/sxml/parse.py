"""Parse an SXML definition safely and check it is something we can render.

Safety first (docs/security.md): the XML goes through ``defusedxml``'s SAX
parser, which refuses any DTD (so no entity expansion, no billion laughs, no external
entity or network access), and our handler stops at the first element past the depth or
element-count limit, so hostile input costs a few milliseconds and bounded memory. SAX
rather than ElementTree because it gives line numbers for every element, which every
error message names, and because the tree is never built past a limit.

Then the tree is checked (docs/sxml.md): strict on structure, lenient on decoration.
Elements we cannot render (``sphere``, unknown widgets, unknown elements) and bad values
are errors naming the element and its line; decoration we do not draw (some filters,
animators we cannot read) is accepted and listed in ``warnings``. Every media URL passes
the syntax gate of ``dragon.net.url_policy``.

Normalisations, so later stages see only core SXML: ``director.theme.*`` widgets are
rewritten (``widgets.py``), and a bare ``image``/``video`` in a sequence or stack is
wrapped in ``<effect type="none">``, which is what the original renderer required anyway.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
import xml.sax
import xml.sax.handler
from collections.abc import Callable
from xml.sax.xmlreader import AttributesImpl, Locator

import defusedxml
import defusedxml.sax

from dragon.net.url_policy import source_problem
from dragon.sxml import beatsync, ducking, looks, maps, masks, motion, speech, widgets
from dragon.sxml.model import (
    ADAPTERS,
    ATOMS,
    DIRECTIONS,
    EFFECTS,
    KENBURNS_LIKE,
    MEDIA,
    MULTI_EFFECTS,
    PLACEMENT,
    SINGLE_EFFECTS,
    TIME_ATTRS,
    TRANSITIONS,
    DefinitionError,
    Node,
)

MAX_CHARS = 512 * 1024
MAX_DEPTH = 64
MAX_ELEMENTS = 10_000
MAX_TEXT_CHARS = 20_000
MAX_MEDIA = 300
MAX_EFFECT_MEDIA = 100
MAX_ERRORS = 10
MAX_WARNINGS = 50
SERVICE = "craftsman-1.0"

SEQUENCE_KIDS = ATOMS | MEDIA | {"transition", "filter", "animator", "widget"}
ALLOWED_KIDS: dict[str, frozenset[str]] = {
    "movie": frozenset({"head", "body"}),
    "body": frozenset(SEQUENCE_KIDS),
    "sequence": frozenset(SEQUENCE_KIDS),
    "stack": frozenset(ATOMS | MEDIA | {"filter", "animator", "camera", "widget"}),
    "effect": frozenset(ATOMS | MEDIA | {"filter", "animator"}),
    "overlay": frozenset(ATOMS | MEDIA | {"filter", "animator"}),
    "text": frozenset({"filter", "animator"}),
    "image": frozenset({"filter"}),
    "video": frozenset({"filter"}),
    "audio": frozenset(),
    "transition": frozenset(),
    "filter": frozenset(ATOMS | MEDIA | {"filter", "animator"}),
    "animator": frozenset({"key"}),
    "camera": frozenset({"animator"}),
    "key": frozenset(),
}
UNSUPPORTED = {"sphere": "3D spheres cannot be rendered"}

TIME = frozenset(TIME_ATTRS)
PLACE = frozenset(PLACEMENT)
IMPLEMENTED: dict[str, frozenset[str]] = {
    "movie": frozenset({"service"}),
    "body": TIME | {"sync"},
    "sequence": TIME | {"sync"},
    "stack": TIME,
    "effect": TIME | {"type", "adapter", "direction", "depthEnable"},
    "image": frozenset(
        {"filename", "color", "duration", "type", "center", "zoom", "size", "markers", "card"}
    ),
    "video": TIME | {"filename", "skip", "audio", "volume", "speed", *ducking.ATTRS},
    "audio": TIME
    | {"filename", "skip", "volume", "fadein", "fadeout", "loop", "speed", "voice", *ducking.ATTRS},
    "text": TIME
    | PLACE
    | {"type", "align", "fontsize", "fontname", "fontcolor", "backgroundcolor"},
    "overlay": TIME | PLACE,
    "transition": frozenset({"type", "duration", "direction"}),
    "filter": TIME | {"type", "alphaStart", "alphaEnd", *looks.ATTRS, *masks.ATTRS},
    "animator": TIME | {"type", "direction", "angle", "growStart", "growEnd", "mode"},
    "key": frozenset({"time", "pos", "scale", "rot"}),
}
ANIMATED = frozenset({"overlay", "text", "effect", "camera"})
HONOURED_FILTERS = {
    "alpha",
    "fitAdapter",
    "fixedAdapter",
    "panoramicAdapter",
    "motionInterpolate",
}
TEXT_TYPES = frozenset({"legend", "zone", "advanced"})
ALIGN_WORDS = {"left", "right", "center", "centre", "top", "bottom", "middle", "justify"}
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")


@dataclasses.dataclass
class Definition:
    body: Node  # the <body>: a sequence
    warnings: list[str]

    def media(self) -> list[Node]:
        """Every element that names a file to download, in document order."""
        return [n for n in self.body.walk() if n.attrs.get("filename")]


class DefinitionErrors(Exception):
    """All the problems found (at most ``MAX_ERRORS``), each naming its element and line."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def parse(text: str) -> Definition:
    """Parse and check ``text``; raise ``DefinitionErrors`` listing what is wrong."""
    checker = _Checker()
    try:
        body = checker.movie(_read(text))
    except DefinitionError as e:
        raise DefinitionErrors([*checker.errors, e.message][:MAX_ERRORS]) from None
    except _TooMany:
        pass
    if checker.errors:
        raise DefinitionErrors(checker.errors[:MAX_ERRORS])
    return Definition(body=body, warnings=checker.warnings)


class _TooMany(Exception):
    """Enough errors collected to stop checking."""


# -- reading ------------------------------------------------------------------------------


class _TreeBuilder(xml.sax.handler.ContentHandler):
    """Builds ``Node``s with line numbers; stops at the first limit crossed."""

    def __init__(self) -> None:
        super().__init__()
        self.locator: Locator | None = None
        self.root: Node | None = None
        self.stack: list[tuple[Node, list[str]]] = []
        self.count = 0
        self.text_chars = 0
        self.per_line: collections.Counter[int] = collections.Counter()  # elements starting

    def setDocumentLocator(self, locator: Locator) -> None:  # noqa: N802 - SAX API
        self.locator = locator

    def _line(self) -> int:
        # The locator may not know the line (None): the messages then say line 0.
        return (self.locator.getLineNumber() if self.locator else None) or 0

    def _column(self) -> int | None:
        column = self.locator.getColumnNumber() if self.locator else None
        return None if column is None else column + 1

    def startElement(self, name: str, attrs: AttributesImpl) -> None:  # noqa: N802 - SAX API
        self.count += 1
        if self.count > MAX_ELEMENTS:
            raise DefinitionError(None, f"more than {MAX_ELEMENTS} elements", self._line())
        if len(self.stack) >= MAX_DEPTH:
            raise DefinitionError(None, f"elements nested deeper than {MAX_DEPTH}", self._line())
        node = Node(tag=name, line=self._line(), column=self._column(), attrs=dict(attrs))
        self.per_line[node.line] += 1
        if self.stack:
            self.stack[-1][0].children.append(node)
        else:
            self.root = node
        self.stack.append((node, []))

    def endElement(self, name: str) -> None:  # noqa: N802 - SAX API
        node, parts = self.stack.pop()
        node.text = "".join(parts)

    def characters(self, content: str) -> None:
        if self.stack:
            self.text_chars += len(content)
            if self.text_chars > MAX_TEXT_CHARS:
                raise DefinitionError(
                    None, f"more than {MAX_TEXT_CHARS} characters of text", self._line()
                )
            self.stack[-1][1].append(content)


def _read(text: str) -> Node:
    if not isinstance(text, str) or not text.strip():
        raise DefinitionError(None, "the definition is empty")
    if len(text) > MAX_CHARS:
        raise DefinitionError(None, f"the definition is longer than {MAX_CHARS} characters")
    # The text is already decoded: drop the declaration (its encoding no longer applies).
    data = _XML_DECL.sub("", text.lstrip("\ufeff"), count=1).encode("utf-8")
    builder = _TreeBuilder()
    try:
        defusedxml.sax.parseString(
            data, builder, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except defusedxml.DTDForbidden:
        raise DefinitionError(
            None, "DTDs (<!DOCTYPE ...>) are not allowed", builder._line()
        ) from None
    except defusedxml.EntitiesForbidden:
        raise DefinitionError(
            None, "entity declarations are not allowed", builder._line()
        ) from None
    except defusedxml.DefusedXmlException:
        raise DefinitionError(
            None, "external references are not allowed", builder._line()
        ) from None
    except xml.sax.SAXParseException as e:
        column = e.getColumnNumber()
        raise DefinitionError(
            None,
            f"not well-formed XML: {e.getMessage()}",
            e.getLineNumber(),
            None if column is None else column + 1,
        ) from None
    assert builder.root is not None
    for node in builder.root.walk():  # alone on its line: the line says where it is
        if builder.per_line[node.line] < 2:
            node.column = None
    return builder.root


# -- checking ----------------------------------------------------------------------------


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self._warned: set[tuple[str, str]] = set()
        self.media = 0

    def warn(self, message: str, key: tuple[str, str] | None = None) -> None:
        if key is not None:
            if key in self._warned:
                return
            self._warned.add(key)
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)

    def fail(self, node: Node, message: str) -> None:
        self.record(DefinitionError(node, message))

    def record(self, error: DefinitionError) -> None:
        self.errors.append(error.message)
        if len(self.errors) >= MAX_ERRORS:
            raise _TooMany

    def movie(self, root: Node) -> Node:
        if root.tag != "movie":
            raise DefinitionError(root, "cannot be the root element: expected <movie>")
        service = root.attrs.get("service")
        if service is None:
            raise DefinitionError(root, f'needs the attribute service="{SERVICE}"')
        if service != SERVICE:
            raise DefinitionError(root, f'needs service="{SERVICE}", not "{service[:60]}"')
        bodies = root.kids({"body"})
        if len(bodies) != 1:
            raise DefinitionError(root, "needs exactly one <body>")
        for child in root.children:
            if child.tag == "head":
                for code in child.kids({"filtercode"}):
                    # Custom GLSL a client sends: code we would run on our machine.
                    self.fail(
                        code,
                        "is not run: custom shader code from a definition is untrusted code;"
                        " use the filters docs/sxml.md lists",
                    )
                self.warn(f"<head> is ignored ({child.position})")
            elif child.tag != "body":
                self.fail(child, "is not allowed inside <movie>")
        body = bodies[0]
        self.element(body)
        if not body.content:
            self.fail(body, "is empty: nothing to render")
        return body

    def element(self, node: Node) -> None:
        checks = {
            "body": self._sequence,
            "sequence": self._sequence,
            "effect": self._effect,
            "image": self._image,
            "video": self._video,
            "audio": self._audio,
            "text": self._text,
            "overlay": self._overlay,
            "transition": self._transition,
            "filter": self._filter,
            "animator": self._animator,
            "camera": self._camera,
        }
        try:
            self._attributes(node)
            if node.tag in checks:
                checks[node.tag](node)
        except DefinitionError as e:
            self.record(e)
            return
        self._children(node)

    def _children(self, node: Node) -> None:
        allowed = ALLOWED_KIDS.get(node.tag, frozenset())
        kids: list[Node] = []
        for child in node.children:
            if child.tag == "widget":
                notes: list[str] = []
                try:
                    child = widgets.expand(child, notes)
                except DefinitionError as e:
                    self.record(e)
                    continue
                for note in notes:
                    self.warn(note)
            if child.tag in UNSUPPORTED:
                self.fail(child, f"is not supported: {UNSUPPORTED[child.tag]}")
                continue
            if child.tag not in ALLOWED_KIDS:
                self.fail(child, "is not an SXML element")
                continue
            if child.tag not in allowed:
                self.fail(child, f"is not allowed inside <{node.tag}>")
                continue
            if child.tag == "animator" and not self._readable(child):
                continue
            if child.tag in MEDIA and node.tag in ("body", "sequence", "stack"):
                child = _wrap(child)
            kids.append(child)
        node.children = kids
        for child in kids:
            if child.tag == "animator" and node.tag not in ANIMATED:
                self.warn(
                    f"<animator> elements inside <{node.tag}> are ignored ({child.position})",
                    (child.tag, node.tag),
                )
                child.children = []
                continue
            self.element(child)

    def _readable(self, animator: Node) -> bool:
        """Whether we can draw ``animator``; if not, it is left out with a warning, never
        refused: animators were accepted whatever they held before they were drawn."""
        try:
            motion.check(animator)
        except DefinitionError as exc:
            self.warn(f"{exc.message}: this animator is ignored")
            return False
        return True

    def _lenient(self, node: Node, name: str, read: Callable[[], object]) -> None:
        """``read`` the decoration attribute ``name`` of ``node``; a value it cannot take is
        warned about and the default used, never refused."""
        try:
            read()
        except DefinitionError as exc:
            self.warn(f"{exc.message}; the default is used")
            del node.attrs[name]

    def _opacity(self, node: Node, name: str) -> None:
        """An opacity out of 0..1 is warned about and the nearest bound used; one that is
        not a number, the default."""
        try:
            node.number(name, maximum=1)
        except DefinitionError as exc:
            try:
                value = float(node.attrs[name])
            except ValueError:
                value = math.nan
            if math.isnan(value):  # a word (or "nan"): no nearest bound
                self.warn(f"{exc.message}; the default is used")
                del node.attrs[name]
                return
            value = min(1.0, max(0.0, value))
            self.warn(f"{exc.message}; {value:g} is used")
            node.attrs[name] = repr(value)

    def _camera(self, camera: Node) -> None:
        """A stack's camera moves the picture through its animators (picture.py); its
        scale keys have no meaning we draw. An animator we cannot read is left out with a
        warning (``_readable``)."""
        camera.children = [c for c in camera.children if c.tag != "animator" or self._readable(c)]
        keys = (k for a in camera.kids({"animator"}) for k in a.kids({"key"}))
        if any(k.attrs.get("scale") for k in keys):
            self.warn(f"{camera.where()}: a camera's scale keys are not drawn")

    def _attributes(self, node: Node) -> None:
        known = IMPLEMENTED.get(node.tag)
        if known is not None:
            for name in node.attrs:
                if name not in known:
                    self.warn(
                        f"<{node.tag}> attribute {name} is ignored ({node.position})",
                        (node.tag, name),
                    )
        if node.tag in IMPLEMENTED and node.tag not in ("movie", "transition", "image", "key"):
            self._time(node)

    def _time(self, node: Node) -> None:
        raw = node.attrs.get("duration")
        if raw is not None and raw.strip() != "..":
            node.number("duration")
        start, end = node.margins
        if "margin-both" in node.attrs and (
            node.explicit is not None or {"margin-start", "margin-end"} & set(node.attrs)
        ):
            raise DefinitionError(
                node, "margin-both cannot be combined with duration or another margin"
            )
        if start is not None and end is not None and node.explicit is not None:
            raise DefinitionError(
                node, "cannot have margin-start, duration and margin-end all at once"
            )

    # -- per element ----------------------------------------------------------------------
    def _sequence(self, node: Node) -> None:
        node.choice("sync", beatsync.MODES, None)
        items = [c for c in node.children if c.tag != "filter" and c.tag != "animator"]
        # Clients of the original service end every track with a transition (the item
        # after it was appended in a loop); it has nothing to lead into, so it goes.
        if len(items) > 1 and items[-1].tag == "transition" and items[-2].tag != "transition":
            trailing = items.pop()
            node.children.remove(trailing)
            self.warn(f"<transition> with nothing after it is dropped ({trailing.position})")
        previous = None
        for i, child in enumerate(items):
            if child.tag == "transition":
                if i == 0 or i == len(items) - 1:
                    raise DefinitionError(child, "must be between two items of a sequence")
                if previous == "transition":
                    raise DefinitionError(child, "follows another transition")
            previous = child.tag

    def _effect(self, node: Node) -> None:
        kind = node.attrs.get("type", "none")
        try:
            node.flag("depthEnable", True)
        except DefinitionError as exc:  # ignored before it was drawn: never refused for it
            self.warn(f"{exc}; depth is drawn")
            del node.attrs["depthEnable"]
        if kind not in EFFECTS:
            self.warn(
                f'<effect type="{kind[:40]}"> is unknown and drawn as type="none" '
                f"({node.position})",
                ("effect-type", kind),
            )
            node.attrs["type"] = kind = "none"
        adapter = node.attrs.get("adapter")
        if adapter is not None and adapter not in ADAPTERS:
            self.warn(
                f'<effect adapter="{adapter[:40]}"> is unknown; the default is used '
                f"({node.position})",
                ("adapter", adapter),
            )
            del node.attrs["adapter"]
        directions = frozenset({"positive", "negative"})
        self._lenient(node, "direction", lambda: node.choice("direction", directions, "positive"))
        content = node.content
        if kind in SINGLE_EFFECTS and len(content) != 1:
            raise DefinitionError(
                node,
                f'type="{kind}" needs exactly one image, video or '
                f"element inside, not {len(content)}",
            )
        if kind in MULTI_EFFECTS and not 1 <= len(content) <= MAX_EFFECT_MEDIA:
            raise DefinitionError(
                node,
                f'type="{kind}" needs 1 to {MAX_EFFECT_MEDIA} images or videos, not {len(content)}',
            )
        if kind != "none" and kind not in KENBURNS_LIKE and kind not in MULTI_EFFECTS:
            self.warn(
                f'<effect type="{kind[:40]}"> is drawn as type="none" ({node.position})',
                ("effect-type", kind),
            )
        elif kind in KENBURNS_LIKE and content and content[0].tag != "image":
            self.warn(
                f'<effect type="{kind}">: its zoom and look are drawn for pictures; a clip or '
                f'an element inside is drawn as in type="none" ({node.position})'
            )

    def _image(self, node: Node) -> None:
        if node.attrs.get("type") == "map":
            maps.check(node)
            self.media += 1
            if self.media > MAX_MEDIA:
                raise DefinitionError(node, f"is one media file too many (at most {MAX_MEDIA})")
            node.attrs["filename"] = f"{maps.PREFIX}{self.media}"
            return
        if node.attrs.get("filename") and node.attrs.get("color"):
            raise DefinitionError(node, "needs a filename or a color, not both")
        if not node.attrs.get("filename"):
            if not node.attrs.get("color"):
                raise DefinitionError(node, "needs a filename or a color")
            node.color("color")
        else:
            self._url(node)
        node.number("duration")

    def _video(self, node: Node) -> None:
        if not node.attrs.get("filename"):
            raise DefinitionError(node, "needs a filename")
        self._url(node)
        node.number("skip")
        node.number("volume", maximum=10)
        node.number("speed", minimum=0.1, maximum=10)
        node.flag("audio", True)
        ducking.check(node)

    def _audio(self, node: Node) -> None:
        if speech.is_spoken(node):
            self._spoken(node)
        else:
            if not node.attrs.get("filename"):
                raise DefinitionError(node, "needs a filename or text to speak")
            self._url(node)
        for name in ("skip", "fadein", "fadeout"):
            node.number(name)
        node.number("volume", maximum=10)
        node.number("speed", minimum=0.1, maximum=10)
        ducking.check(node)
        if node.flag("loop", False) and "duck-others" in node.attrs:
            self.warn(
                f"{node.where()}: a looped track ducks the others for its whole span "
                "(its loops are not measured)"
            )

    def _spoken(self, node: Node) -> None:
        """``<audio voice="...">text</audio>``: read aloud (``speech.py``); its internal
        filename is one no URL can take."""
        text = node.text.strip()
        if not text:
            raise DefinitionError(node, "has a voice but no text to speak")
        if len(text) > speech.MAX_CHARACTERS:
            raise DefinitionError(
                node, f"has more than {speech.MAX_CHARACTERS} characters to speak"
            )
        _, problem = speech.voice(node.attrs.get("voice", ""))
        if problem:
            self.warn(f"{node.where()}: {problem}")
        self.media += 1
        if self.media > MAX_MEDIA:
            raise DefinitionError(node, f"is one media file too many (at most {MAX_MEDIA})")
        node.attrs["filename"] = f"{speech.PREFIX}{self.media}"

    def _text(self, node: Node) -> None:
        kind = node.attrs.get("type", "zone")
        if kind not in TEXT_TYPES:
            raise DefinitionError(node, f'type="{kind[:40]}" is not legend, zone or advanced')
        self._placement(node)
        align = node.attrs.get("align", "")
        words = {w.strip().lower() for w in align.split(",") if w.strip()}
        if words - ALIGN_WORDS:
            raise DefinitionError(node, f'align={align[:40]!r} is not like "left,bottom"')
        node.number("fontsize", minimum=1, maximum=1000)
        node.color("fontcolor")
        node.color("backgroundcolor")

    def _overlay(self, node: Node) -> None:
        self._placement(node)
        if not node.content:
            raise DefinitionError(node, "needs an image, video or element inside")

    def _placement(self, node: Node) -> None:
        for name in PLACEMENT:
            if node.attrs.get(name, "").strip().lower() != "auto":
                node.number(name, minimum=-10, maximum=10)

    def _transition(self, node: Node) -> None:
        kind = node.attrs.get("type", "crossfade")
        if kind not in TRANSITIONS:
            self.warn(
                f'<transition type="{kind[:40]}"> is unknown and drawn as a crossfade '
                f"({node.position})",
                ("transition", kind),
            )
            node.attrs["type"] = "crossfade"
        node.number("duration", maximum=60)
        self._lenient(node, "direction", lambda: node.choice("direction", DIRECTIONS, "left"))

    def _filter(self, node: Node) -> None:
        kind = node.attrs.get("type", "")
        if kind in looks.LOOKS:
            looks.check(node, self.warn)
        elif kind in masks.PICTURED:
            node.children = masks.check(node, self.warn)  # its picture, checked as media
            return
        elif kind not in HONOURED_FILTERS:
            self.warn(f'<filter type="{kind[:40]}"> is ignored ({node.position})', ("filter", kind))
        for name in ("alphaStart", "alphaEnd"):
            self._opacity(node, name)
        if node.children:  # what a filter holds is drawn only for those that read a picture
            self.warn(f"{node.where()}: what it holds is ignored")
        node.children = []

    def _animator(self, node: Node) -> None:
        motion.check(node)
        mode = node.attrs.get("mode")
        if mode is not None and mode not in motion.MODES:
            self.warn(f'{node.where()}: mode="{mode[:40]}" is drawn as linear')
        for note in motion.approximations(node):
            self.warn(note)

    def _url(self, node: Node) -> None:
        self.media += 1
        if self.media > MAX_MEDIA:
            raise DefinitionError(node, f"is one media file too many (at most {MAX_MEDIA})")
        url = node.attrs["filename"].strip()
        problem = source_problem(url)
        if problem:
            raise DefinitionError(node, f"filename {url[:100]!r} {problem}")
        node.attrs["filename"] = url


def _wrap(media: Node) -> Node:
    """A bare ``image``/``video`` in a sequence or stack, as ``<effect type="none">``."""
    effect = Node(
        tag="effect", line=media.line, column=media.column, attrs={"type": "none"}, implicit=True
    )
    for name in TIME_ATTRS:
        if name in media.attrs:
            effect.attrs[name] = media.attrs[name]
            if name != "duration":
                del media.attrs[name]
    effect.children = [media]
    return effect
