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
MAX_TITLE_CHARS = 1000
# Where a ``<meta charset>`` is looked for. The HTML standard's prescan reads 1,024 bytes;
# pages that put a large comment or script first still declare it within a few KB.
PRESCAN_BYTES = 8192
# The elements that can name media; each has a ``_Page._<tag>`` handler.
SELECTOR = "meta, link, img, source, video, iframe, script"
HTML_MIMES = frozenset({"text/html", "application/xhtml+xml"})

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
    """Return ``{"page_title", "hits": {"images", "videos"}, "truncated": [kinds]}``.

    ``charset`` is the Content-Type header's, ``mime`` the sniffed type; None when the
    bytes are not an HTML page (not sniffed as HTML, and no html/head/body tag or HTML
    doctype in them).
    """
    text = decode(data, charset)
    if mime not in HTML_MIMES and not _MARKUP.search(text):
        return None
    tree = LexborHTMLParser(text)
    page = _Page(_base_url(tree, page_url))
    for node in tree.css(SELECTOR):
        page.visit(node)
    return {
        "page_title": page.og_title or _title(tree),
        "hits": {kind: list(hits.values()) for kind, hits in page.hits.items()},
        "truncated": sorted(page.truncated),
    }


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
    collapsed = " ".join((text or "").split())[:MAX_TITLE_CHARS]
    return collapsed or None


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
    """``video/mp4; codecs=...`` -> ``video/mp4``; None for anything not type/subtype."""
    if not isinstance(value, str):
        return None
    mime = value.split(";", 1)[0].strip().lower()
    return mime if re.fullmatch(r"[a-z0-9.+-]+/[a-z0-9.+-]+", mime) else None


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

        Once a kind holds ``MAX_HITS``, later values are not even resolved: a huge page
        costs no more than a page with ``MAX_HITS`` media.
        """
        hits = self.hits[kind]
        if not isinstance(value, str) or not value:
            return None
        if len(hits) >= MAX_HITS:
            self.truncated.add(kind)
            return None
        if value not in self.resolved:
            self.resolved[value] = _absolute(self.base, value)
        url = self.resolved[value]
        if url is None:
            return None
        hit = hits.get(url)
        if hit is None:
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
