"""Find the images and videos an HTML page offers (html.scrape), from its bytes alone.

``scrape(data, page_url, charset, mime)`` decodes the page (byte-order mark, else the
Content-Type charset, else the page's own ``<meta>`` declaration, else UTF-8 with
replacement), parses it with selectolax's lexbor parser and returns the page title and the
media URLs. The sources are the ones sites use to say "this is my picture, my video": Open
Graph and Twitter cards, ``<link rel=image_src>``, ``<img>`` (lazy ``data-src`` and
``srcset``), ``<picture>``, ``<video>``, player iframes of the big video hosts and
schema.org JSON-LD. Every URL is made absolute (against ``<base href>`` or the page URL),
kept only if it passes the same syntax gate as a task's ``url`` parameter (so a hit can be
fed straight to another task), and listed once, where it first appears.

The parse is bounded before it starts: an HTML parser scans its stack of open elements
for many tags (is a ``<p>`` in scope? where does this end tag match?), so a page that nests
deeply costs the depth times the number of tags: 2 MB of nested ``<div>`` held a pool worker
for half a minute. ``parse_cost`` reads the page once, keeping an upper bound of that stack,
and ``scrape`` refuses a page whose cost passes ``MAX_PARSE_COST`` (``PageTooComplex``).

No I/O here: the task runs this in the process pool, tests call it on strings.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

from dragon.net.url_policy import MAX_URL_LENGTH, url_problem

# Per kind. The result document is stored and served with every status poll, so a page
# with 50,000 thumbnails must not make it megabytes long.
MAX_HITS = 1000
# And at most this many bytes of URLs per kind: 1,000 URLs of 2 KB (the longest a URL may
# be) made a 4 MB result, and a status of 1,000 such tasks a 4 GB answer. Pages' media URLs
# are a few hundred bytes, so the count is what cuts a real page.
MAX_HIT_BYTES = 256 * 1024
MAX_TITLE_CHARS = 1000
# Where a ``<meta charset>`` is looked for. The HTML standard's prescan reads 1,024 bytes;
# pages that put a large comment or script first still declare it within a few KB.
PRESCAN_BYTES = 8192
# The elements that can name media; each has a ``_Page._<tag>`` handler.
SELECTOR = "meta, link, img, source, video, iframe, script"
HTML_MIMES = frozenset({"text/html", "application/xhtml+xml"})
# The most stack steps (each tag costs the depth it opens or closes at) a page may cost:
# about a second of lexbor's time at worst. Ordinary pages cost well under 1% of it (50,000
# tags 30 deep); only pages nesting thousands of elements deep come near it.
MAX_PARSE_COST = 200_000_000
# How far past a tag's name its ``>`` is looked for (to see whether it ends with ``/>``).
TAG_SCAN = 4096

# One media URL found: ``url`` and ``source`` (the word naming where it was found), and
# ``width``, ``height`` and ``mime`` when the page says.
Hit = dict[str, str | int]
# An element's attributes as selectolax gives them (None: an attribute without a value).
Attributes = dict[str, str | None]

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_META_CHARSET = re.compile(rb"<meta\s[^>]*?charset\s*=\s*[\"']?\s*([a-zA-Z0-9_.:+-]+)", re.I)
# Labels Python does not know, and encodings browsers decode as a superset (WHATWG
# Encoding standard): a page declared latin-1 is really decoded as windows-1252, etc.
_LABELS = {"windows-874": "cp874", "x-sjis": "cp932", "x-gbk": "gb18030"}
_SUPERSETS = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
}
_TABS = re.compile(r"[\t\n\r]")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_SRCSET_URL = re.compile(r"[\s,]*(\S*)")
_SRCSET_DESCRIPTORS = re.compile(r"(?:[^,(]|\([^)]*\)?)*")  # up to a comma outside (...)
_MARKUP = re.compile(r"<(?:html|head|body)[\s>/]|<!doctype\s+html", re.I)
_SIZE = re.compile(r"^\s*(\d{1,7})(?:\.\d*)?\s*(?:px)?\s*$", re.I)
_PLAYER = re.compile(
    r"^https?://(?:[a-z0-9-]+\.)*(?:youtube(?:-nocookie)?\.com/embed/|player\.vimeo\.com/video/"
    r"|dailymotion\.com/(?:embed/|player))",
    re.I,
)
_LAZY_SRC = ("data-src", "data-lazy-src", "data-original")
_SRCSETS = ("srcset", "data-srcset")
# meta property/name -> (kind, source word, whether it starts a new Open Graph structure)
_META_URLS = {
    "og:image": ("images", "og:image", True),
    "og:image:url": ("images", "og:image", True),
    "og:image:secure_url": ("images", "og:image", False),
    "og:video": ("videos", "og:video", True),
    "og:video:url": ("videos", "og:video", True),
    "og:video:secure_url": ("videos", "og:video", False),
    "twitter:image": ("images", "twitter:image", True),
    "twitter:image:src": ("images", "twitter:image", True),
    "twitter:player:stream": ("videos", "twitter:player:stream", True),
}
# structured properties -> (the source word they describe, hit key)
_META_ATTRS = {
    "og:image:width": ("og:image", "width"),
    "og:image:height": ("og:image", "height"),
    "og:image:type": ("og:image", "mime"),
    "og:video:width": ("og:video", "width"),
    "og:video:height": ("og:video", "height"),
    "og:video:type": ("og:video", "mime"),
    "twitter:player:stream:content_type": ("twitter:player:stream", "mime"),
}


def scrape(
    data: bytes, page_url: str, charset: str | None = None, mime: str | None = None
) -> dict[str, Any] | None:
    """Return ``{"page_title", "hits": {"images", "videos"}, "truncated": [kinds]}``
    (``truncated`` names the hit kinds cut at ``MAX_HITS``, and ``page_title`` if the title
    was cut at ``MAX_TITLE_CHARS``); raise ``PageTooComplex`` for a page too costly to parse.

    ``charset`` is the Content-Type header's, ``mime`` the sniffed type; None when the
    bytes are not an HTML page (not sniffed as HTML, and no html/head/body tag or HTML
    doctype in them).
    """
    text = decode(data, charset)
    if mime not in HTML_MIMES and not _MARKUP.search(text):
        return None
    # Each tag costs at most one more than the tags before it: a page of up to 20,000
    # tags is cheap whatever its shape, and most pages need no reading here.
    tags = text.count("<")
    cost, deepest = (
        (0, 0) if tags * (tags + 1) // 2 <= MAX_PARSE_COST else parse_cost(text, MAX_PARSE_COST)
    )
    if cost > MAX_PARSE_COST:
        raise PageTooComplex(
            f"the page nests its elements too deeply to be parsed (at least {deepest} levels"
            f" deep, {cost:,} parser steps past the limit of {MAX_PARSE_COST:,})"
        )
    tree = LexborHTMLParser(text)
    page = _Page(_base_url(tree, page_url))
    for node in tree.css(SELECTOR):
        page.visit(node)
    title = page.og_title or _title(tree)
    if title and len(title) > MAX_TITLE_CHARS:
        title = title[:MAX_TITLE_CHARS]
        page.truncated.add("page_title")
    return {
        "page_title": title,
        "hits": {kind: list(hits.values()) for kind, hits in page.hits.items()},
        "truncated": sorted(page.truncated),
    }


class PageTooComplex(ValueError):
    """A page whose parse would cost more than ``MAX_PARSE_COST`` (see the module doc)."""


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


# The HTML standard's "special" elements and the foreign integration points (lower case): an
# end tag or a ``<p>``/``<li>`` start tag stops its search of the stack at one of them.
_SPECIAL = _names(
    "address applet area article aside base basefont bgsound blockquote body br button caption"
    " center col colgroup dd details dir div dl dt embed fieldset figcaption figure footer form"
    " frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img input keygen li"
    " link listing main marquee menu meta nav noembed noframes noscript object ol p param"
    " plaintext pre script search section select source style summary table tbody td template"
    " textarea tfoot th thead title tr track ul wbr xmp mi mo mn ms mtext annotation-xml"
    " foreignobject desc"
)
# Elements that never hold children in HTML.
_VOID = _names(
    "area base br col embed hr img input link meta source track wbr param keygen frame"
    " basefont bgsound image"
)
# SVG and MathML elements whose children are HTML again.
_INTEGRATION = _names("foreignobject desc title mi mo mn ms mtext annotation-xml")
# HTML start tags that end SVG or MathML content (the parser leaves the foreign element).
_BREAKOUT = _names(
    "b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i"
    " img li listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt"
    " u ul var font"
)
# Start tags that close an open element of the same name with no special element above it,
# and those that close one only when it is the current element.
_CLOSES_OPEN = _names("p li dt dd a nobr")
_CLOSES_CURRENT = _names("option optgroup tr td th thead tbody tfoot rb rp rt rtc")
# HTML elements whose content is text up to their end tag.
_RAW_TEXT = {name: re.compile(f"</{name}", re.I) for name in ("script", "style")}
_TAG = re.compile(r"<(/?)([a-zA-Z][^\s/>]*)|<!--")
_TAG_REST = re.compile(r"""(?:[^>"']|"[^"]*"|'[^']*')*>""")


class _Stack:
    """An upper bound of the parser's stack of open elements.

    It pops only where the HTML parser surely pops as much (an end tag or a closing start
    tag whose element is open with no special element above it); every other end tag is
    ignored, so the stack may be deeper than the parser's, never shallower.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self.foreign: list[bool] = []  # per entry: an SVG/MathML element, not HTML
        self.at: dict[str, list[int]] = {}  # name -> its indexes in the stack
        self.specials: list[int] = []  # indexes of the special elements

    def push(self, name: str, foreign: bool) -> None:
        depth = len(self.names)
        at = self.at.get(name)
        if at is None:
            self.at[name] = [depth]
        else:
            at.append(depth)
        if name in _SPECIAL:
            self.specials.append(depth)
        self.names.append(name)
        self.foreign.append(foreign)

    def pop(self) -> None:
        """Pop the current element."""
        self.at[self.names.pop()].pop()
        self.foreign.pop()
        if self.specials and self.specials[-1] == len(self.names):
            self.specials.pop()

    def closable(self, name: str) -> bool:
        """Whether ``name`` is open with no special element above it."""
        at = self.at.get(name)
        if not at:
            return False
        return not self.specials or self.specials[-1] <= at[-1]

    def pop_to(self, name: str) -> None:
        """Pop up to and including the topmost ``name``."""
        target = self.at[name][-1]
        while len(self.names) > target:
            self.pop()

    def in_foreign(self, name: str) -> bool:
        """Whether a ``name`` start tag opens an SVG/MathML element here."""
        if name in ("svg", "math"):
            return True
        if not self.foreign or not self.foreign[-1] or name in _BREAKOUT:
            return False
        return self.names[-1] not in _INTEGRATION

    def closes_own(self, name: str) -> bool:
        """Whether a ``name`` start tag first closes an open ``name`` (``<p>``, ``<li>``...)."""
        if name in _CLOSES_OPEN:
            return self.closable(name)
        return name in _CLOSES_CURRENT and self.names[-1:] == [name]

    def open(self, name: str, text: str, pos: int) -> int:
        """Take a start tag (its name ends at ``pos``); returns where to read on."""
        if name in _VOID:
            return pos
        foreign = self.in_foreign(name)
        if foreign:
            rest = _TAG_REST.match(text, pos, min(len(text), pos + TAG_SCAN))
            if rest is not None and rest.group().endswith("/>"):
                return rest.end()  # a self-closing SVG/MathML element
        elif self.closes_own(name):
            self.pop_to(name)
        self.push(name, foreign)
        if foreign or name not in _RAW_TEXT:
            return pos
        end = _RAW_TEXT[name].search(text, pos)
        return len(text) if end is None else end.start()


def parse_cost(text: str, limit: int) -> tuple[int, int]:
    """``(cost, deepest)``: the parser's stack steps for ``text`` (each tag costs the depth
    it is read at) and the deepest nesting seen, read in one pass; stops past ``limit``."""
    stack = _Stack()
    names = stack.names
    cost = deepest = pos = 0
    while cost <= limit and (match := _TAG.search(text, pos)) is not None:
        pos = match.end()
        end_tag, name = match.groups()
        if name is None:  # a comment
            end = text.find("-->", pos)
            pos = len(text) if end < 0 else end + 3
            continue
        name = name.lower()
        cost += len(names) + 1
        if not end_tag:
            if name == "plaintext":
                break  # the rest of the page is text
            pos = stack.open(name, text, pos)
            deepest = max(deepest, len(names))
        elif names and names[-1] == name:
            stack.pop()
        elif stack.closable(name):
            stack.pop_to(name)
    return cost, deepest


def decode(data: bytes, charset: str | None = None) -> str:
    """Decode like a browser: BOM, then the header's charset, then ``<meta>``, then UTF-8."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(name, errors="replace")
    encoding = _codec(charset) or _meta_charset(data[:PRESCAN_BYTES]) or "utf-8"
    return data.decode(encoding, errors="replace")


def _meta_charset(head: bytes) -> str | None:
    match = _META_CHARSET.search(head)
    if not match:
        return None
    codec = _codec(match.group(1).decode("ascii"))
    # A page found its declaration by reading ASCII, so it cannot really be UTF-16.
    return "utf-8" if codec and codec.startswith("utf-16") else codec


def _codec(label: str | None) -> str | None:
    """The Python codec for a charset label, or None if unknown or not a text encoding."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    try:
        name = codecs.lookup(_LABELS.get(label, label)).name
        name = _SUPERSETS.get(name, name)
        b"<meta>".decode(name, errors="replace")  # refuses base64, rot13, idna, undefined...
    except (LookupError, UnicodeError, ValueError, TypeError):
        return None
    return name


def _base_url(tree: LexborHTMLParser, page_url: str) -> str:
    base = tree.css_first("base[href]")
    return (base and _absolute(page_url, base.attributes.get("href"))) or page_url


def _absolute(base: str, value: str | None) -> str | None:
    """``value`` resolved against ``base``, if the result is a fetchable http(s) URL."""
    if not value:
        return None
    # As the URL parser does: drop tabs and newlines, encode inner spaces.
    value = _TABS.sub("", value.strip()).replace(" ", "%20")
    scheme = _SCHEME.match(value)
    if (
        not value
        or len(value) > MAX_URL_LENGTH
        or (scheme and scheme.group(1).lower() not in ("http", "https"))
    ):
        return None  # data:, javascript:, blob: ... are dropped before any parsing
    try:
        url = urljoin(base, value)
    except ValueError:
        return None
    return None if url_problem(url) else url


def _title(tree: LexborHTMLParser) -> str | None:
    node = tree.css_first("title:not(svg title)")
    return _collapse(node.text(deep=True)) if node else None


def _collapse(text: str | None) -> str | None:
    """Whitespace runs to one space; None for a missing or blank text."""
    return " ".join((text or "").split()) or None


def _size(value: object) -> int | None:
    """A pixel size from an attribute ("640", "640px") or JSON-LD (640, {"value": 640})."""
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        size = int(value)
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        size = int(match.group(1))
    else:
        return None
    return size if size > 0 else None


def _mime(value: object) -> str | None:
    """``video/mp4; codecs=...`` -> ``video/mp4``; None for anything not type/subtype, or
    longer than a media type may be (127 characters each side, RFC 6838): text the page
    wrote, which the result would otherwise carry whole, megabytes of it."""
    if not isinstance(value, str):
        return None
    mime = value[:300].split(";", 1)[0].strip().lower()
    return mime if re.fullmatch(r"[a-z0-9.+-]{1,127}/[a-z0-9.+-]{1,127}", mime) else None


def parse_srcset(value: str) -> list[tuple[str, list[str]]]:
    """Split a srcset into (url, descriptors), as the HTML standard does.

    URLs may contain commas (``/w_100,h_100/a.jpg``), so candidates are split on the comma
    that follows a URL's descriptors, not on every comma; a URL ending in commas has none.
    """
    candidates: list[tuple[str, list[str]]] = []
    pos = 0
    while True:
        match = _SRCSET_URL.match(value, pos)
        if match is None:
            return candidates
        url, pos = match.group(1), match.end()
        if not url:
            return candidates
        descriptors = ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            found = _SRCSET_DESCRIPTORS.match(value, pos)
            if found is None:
                return candidates
            descriptors, pos = found.group(), found.end() + 1
        if url:
            candidates.append((url, descriptors.split()))


def largest_candidate(value: str) -> tuple[str, int | None] | None:
    """The srcset candidate with the largest width (``w``) or density (``x``) descriptor.

    Returns (url, width from its ``w`` descriptor or None); ties go to the first.
    """
    best, best_key = None, None
    for url, descriptors in parse_srcset(value):
        width, density = None, 1.0
        try:
            for d in descriptors:
                if d[-1:].lower() == "w":
                    width = int(d[:-1])
                elif d[-1:].lower() == "x":
                    density = float(d[:-1])
        except ValueError:
            continue  # an invalid descriptor drops the candidate, as in browsers
        key = (width is not None, width or density)
        if best_key is None or key > best_key:
            best, best_key = (url, width), key
    return best


class _Page:
    """Walks the media elements in document order, collecting hits per kind."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.hits: dict[str, dict[str, Hit]] = {"images": {}, "videos": {}}
        self.room = dict.fromkeys(self.hits, MAX_HIT_BYTES)  # bytes of URLs left per kind
        self.truncated: set[str] = set()
        self.resolved: dict[str, str | None] = {}  # raw attribute value -> absolute URL
        self.og_title: str | None = None
        # The hits of the current og:image / og:video / twitter:player:stream structure,
        # which the following :width/:height/:type properties describe.
        self.structures: dict[str, list[Hit]] = {}

    def add(
        self,
        kind: str,
        value: object,
        source: str,
        width: int | None = None,
        height: int | None = None,
        mime: str | None = None,
    ) -> Hit | None:
        """Add (or complete) the hit for ``value``; a later sighting only fills gaps.

        Once a kind holds ``MAX_HITS`` (or ``MAX_HIT_BYTES`` of URLs), later values are not
        even resolved: a huge page costs no more than a page with ``MAX_HITS`` media.
        """
        hits = self.hits[kind]
        if not isinstance(value, str) or not value:
            return None
        if len(hits) >= MAX_HITS or self.room[kind] <= 0:
            self.truncated.add(kind)
            return None
        if value not in self.resolved:
            self.resolved[value] = _absolute(self.base, value)
        url = self.resolved[value]
        if url is None:
            return None
        hit = hits.get(url)
        if hit is None:
            if len(url) > self.room[kind]:
                self.room[kind] = 0
                self.truncated.add(kind)
                return None
            self.room[kind] -= len(url)
            hit = hits[url] = {"url": url, "source": source}
        for key, extra in (("width", width), ("height", height), ("mime", mime)):
            if extra is not None:
                hit.setdefault(key, extra)
        return hit

    def visit(self, node: LexborNode) -> None:
        """Dispatch one element of ``SELECTOR`` to its handler."""
        getattr(self, f"_{node.tag}")(node, node.attributes)

    def _meta(self, node: LexborNode, attrs: Attributes) -> None:
        name = (attrs.get("property") or attrs.get("name") or "").strip().lower()
        content = attrs.get("content")
        if name == "og:title":
            self.og_title = self.og_title or _collapse(content)
        elif name in _META_URLS:
            kind, source, starts = _META_URLS[name]
            hit = self.add(kind, content, source)
            if starts or source not in self.structures:
                self.structures[source] = []
            if hit is not None:
                self.structures[source].append(hit)
        elif name in _META_ATTRS:
            source, key = _META_ATTRS[name]
            value = _mime(content) if key == "mime" else _size(content)
            if value is not None:
                for hit in self.structures.get(source, ()):
                    hit.setdefault(key, value)

    def _link(self, node: LexborNode, attrs: Attributes) -> None:
        if "image_src" in (attrs.get("rel") or "").lower().split():
            self.add("images", attrs.get("href"), "link")

    def _img(self, node: LexborNode, attrs: Attributes) -> None:
        width, height = _size(attrs.get("width")), _size(attrs.get("height"))
        for name in ("src", *_LAZY_SRC):
            self.add("images", attrs.get(name), "img", width, height)
        self._srcset(attrs, "srcset")

    def _srcset(self, attrs: Attributes, source: str, mime: str | None = None) -> None:
        for name in _SRCSETS:
            best = largest_candidate(attrs.get(name) or "")
            if best:
                self.add("images", best[0], source, width=best[1], mime=mime)

    def _source(self, node: LexborNode, attrs: Attributes) -> None:
        parent = node.parent.tag if node.parent else None
        if parent == "picture":
            self._srcset(attrs, "picture", _mime(attrs.get("type")))
        elif parent == "video":
            self.add("videos", attrs.get("src"), "video", mime=_mime(attrs.get("type")))
        # <source> of <audio> (and stray ones) are not images or videos

    def _video(self, node: LexborNode, attrs: Attributes) -> None:
        width, height = _size(attrs.get("width")), _size(attrs.get("height"))
        self.add("videos", attrs.get("src"), "video", width, height)
        self.add("images", attrs.get("poster"), "poster")

    def _iframe(self, node: LexborNode, attrs: Attributes) -> None:
        width, height = _size(attrs.get("width")), _size(attrs.get("height"))
        for name in ("src", "data-src"):
            url = _absolute(self.base, attrs.get(name))
            if url and _PLAYER.match(url):
                self.add("videos", url, "iframe", width, height)

    def _script(self, node: LexborNode, attrs: Attributes) -> None:
        if (attrs.get("type") or "").strip().lower() != "application/ld+json":
            return
        try:
            data = json.loads(node.text(deep=True), strict=False)
        except (ValueError, RecursionError):
            return  # malformed JSON-LD is common and harmless: skip it
        stack = [data]
        while stack:  # depth-first in document order, without recursion
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(reversed(item))
            elif isinstance(item, dict):
                self._json_ld_object(item)
                stack.extend(reversed([v for v in item.values() if isinstance(v, dict | list)]))

    def _json_ld_object(self, item: dict[str, Any]) -> None:
        types = item.get("@type")
        names = {
            t.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
            for t in (types if isinstance(types, list) else [types])
            if isinstance(t, str)
        }
        if "VideoObject" in names:
            kind, content = "videos", item.get("contentUrl")
        elif "ImageObject" in names:
            kind, content = "images", item.get("contentUrl") or item.get("url")
        else:
            return
        width, height = _size(item.get("width")), _size(item.get("height"))
        mime = _mime(item.get("encodingFormat"))
        for url in content if isinstance(content, list) else [content]:
            self.add(kind, url, "json-ld", width, height, mime)
        thumbnails = item.get("thumbnailUrl")
        for url in thumbnails if isinstance(thumbnails, list) else [thumbnails]:
            self.add("images", url, "json-ld")
