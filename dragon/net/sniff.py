"""Name a file's type from its first bytes, never from headers or extensions.

A ``Content-Type`` header or a ``.jpg`` name costs an attacker nothing, so every decision
about which tool may read a source starts here (docs/security.md). ``sniff`` also
recognises the formats we must *refuse* (ImageMagick MVG/MSL scripts, SVG, PostScript, HLS
playlists, ffconcat scripts, HTML), so a task can name them in its error instead of passing
them to a tool that would happily interpret them.

Signatures follow the published container specs (ISO BMFF ``ftyp`` brands, EBML DocType,
RIFF form types) and thumbor's ``BaseEngine.get_mimetype``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from pathlib import Path

HEAD_SIZE = 4096

MVG = "text/x-mvg"
MSL = "text/x-msl"
HLS = "application/vnd.apple.mpegurl"
FFCONCAT = "text/x-ffconcat"

# ISO BMFF major/compatible brands. Order matters: a file may list several brands.
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_M4A_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_QT_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
_BMP_DIB_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/tiff": ".tif",
    "image/bmp": ".bmp",
    "image/avif": ".avif",
    "image/heic": ".heic",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "audio/mp4": ".m4a",
    "video/webm": ".webm",
    "video/x-matroska": ".mkv",
    "video/x-msvideo": ".avi",
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "video/ogg": ".ogv",
    "audio/flac": ".flac",
    "audio/aac": ".aac",
    "video/mp2t": ".ts",
    "video/x-flv": ".flv",
    "video/x-ms-asf": ".wmv",
    "application/pdf": ".pdf",
    "application/json": ".json",
}


# The ASF header object's GUID (WMV/WMA files).
ASF_GUID = bytes.fromhex("3026B2758E66CF11A6D900AA0062CE6C")


def sniff(head: bytes) -> str | None:
    """Return the MIME type the leading bytes (up to 4 KiB) prove, or None."""
    head = head[:HEAD_SIZE]
    return _binary(head) or _text(head)


def sniff_file(path: str | Path) -> str | None:
    with open(path, "rb") as f:
        return sniff(f.read(HEAD_SIZE))


def extension(mime: str | None) -> str:
    """A file suffix for a sniffed type (for people reading a temp dir), or ''."""
    return _EXTENSIONS.get(mime or "", "")


# Formats that a fixed prefix proves, checked before the ones that need parsing.
_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"II+\x00", "image/tiff"),
    (b"MM\x00+", "image/tiff"),
    (b"fLaC", "audio/flac"),
    (ASF_GUID, "video/x-ms-asf"),
    (b"FLV\x01", "video/x-flv"),
    (b"%PDF-", "application/pdf"),
    (b"%!", "application/postscript"),
    (b"\xc5\xd0\xd3\xc6", "application/postscript"),
)
_RIFF = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}


def _binary(h: bytes) -> str | None:
    for prefix, mime in _PREFIXES:
        if h.startswith(prefix):
            return mime
    for looks_like, identify in _STRUCTURES:
        if looks_like(h):
            return identify(h)
    return None


def _is_bmp(h: bytes) -> bool:
    return (
        h.startswith(b"BM") and len(h) >= 18 and struct.unpack("<I", h[14:18])[0] in _BMP_DIB_SIZES
    )


def _is_quicktime_atom(h: bytes) -> bool:
    """Old QuickTime files start with an atom, not ``ftyp``."""
    return len(h) >= 8 and h[4:8] in _QT_ATOMS and struct.unpack(">I", h[:4])[0] not in range(2, 8)


def _is_mpeg_sync(h: bytes) -> bool:
    return len(h) >= 4 and h[0] == 0xFF and h[1] & 0xE0 == 0xE0


def _id3(h: bytes) -> str:
    """What follows an ID3v2 tag: FLAC and AAC carry one too; anything else is MP3."""
    size = (h[6] & 0x7F) << 21 | (h[7] & 0x7F) << 14 | (h[8] & 0x7F) << 7 | (h[9] & 0x7F)
    inner = _binary(h[10 + size :]) if 10 + size < len(h) else None
    return inner if inner in ("audio/flac", "audio/aac") else "audio/mpeg"


def _ftyp(h: bytes) -> str:
    size = struct.unpack(">I", h[:4])[0]
    major = h[8:12]
    compatible = {h[i : i + 4] for i in range(16, min(size, len(h)) - 3, 4)}
    brands = {major} | compatible
    if major in _AVIF_BRANDS or (major == b"mif1" and brands & _AVIF_BRANDS):
        return "image/avif"
    if major in _HEIC_BRANDS:
        return "image/heic"
    if major in _M4A_BRANDS:
        return "audio/mp4"
    if major == b"qt  ":
        return "video/quicktime"
    return "video/mp4"


def _ebml(h: bytes) -> str:
    """Matroska and WebM share EBML; the DocType element (0x4282) tells them apart."""
    i = h.find(b"\x42\x82", 4, 64)
    if i >= 0 and i + 3 <= len(h):
        first = h[i + 2]
        width = 8 - first.bit_length() + 1 if first else 9
        if width <= 8:
            length = first & (0xFF >> width)
            for b in h[i + 3 : i + 2 + width]:
                length = length << 8 | b
            start = i + 2 + width
            if h[start : start + length].rstrip(b"\x00") == b"webm":
                return "video/webm"
    return "video/x-matroska"


def _ts(h: bytes, first: int, stride: int) -> bool:
    """MPEG-TS (188-byte packets) or M2TS (4-byte timecode + 188): 0x47 sync bytes repeat."""
    marks = range(first, min(len(h), first + stride * 3), stride)
    return len(marks) >= 2 and all(h[i] == 0x47 for i in marks)


def _mpeg_frame(h: bytes) -> str | None:
    """An MPEG audio or ADTS (AAC) frame header: 11 sync bits, then sane field values."""
    layer = (h[1] >> 1) & 0x3
    if layer == 0:  # ADTS: MPEG-4/2 AAC, layer bits are always 0
        sampling_index = (h[2] >> 2) & 0xF
        return "audio/aac" if (h[1] & 0xF6) == 0xF0 and sampling_index < 13 else None
    version = (h[1] >> 3) & 0x3
    bitrate_index = h[2] >> 4
    rate_index = (h[2] >> 2) & 0x3
    if version == 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    return "audio/mpeg"


# Formats whose structure, not a fixed prefix, names them, in the order they are tried:
# (does the head look like it, what it then is). The first rule that matches decides, even
# when its answer is None: a RIFF file of another form type is nothing we know.
_STRUCTURES: tuple[tuple[Callable[[bytes], bool], Callable[[bytes], str | None]], ...] = (
    (lambda h: h[:4] in (b"RIFF", b"RF64") and len(h) >= 12, lambda h: _RIFF.get(h[8:12])),
    (_is_bmp, lambda h: "image/bmp"),
    (lambda h: len(h) >= 12 and h[4:8] == b"ftyp", _ftyp),
    (_is_quicktime_atom, lambda h: "video/quicktime"),
    (lambda h: h.startswith(b"\x1a\x45\xdf\xa3"), _ebml),
    (
        lambda h: h.startswith(b"OggS"),
        lambda h: "video/ogg" if b"\x80theora" in h else "audio/ogg",
    ),
    (lambda h: h.startswith(b"ID3") and len(h) >= 10, _id3),
    (lambda h: _ts(h, 0, 188) or _ts(h, 4, 192), lambda h: "video/mp2t"),
    (_is_mpeg_sync, _mpeg_frame),
)

_TEXT_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_MVG = re.compile(r"(?m)^\s*(push\s+graphic-context|viewbox\s)")
_ROOT = re.compile(r"<([a-zA-Z][\w:.-]*)")


def _text(h: bytes) -> str | None:
    encoding = "utf-8"
    for bom, name in _TEXT_BOMS:
        if h.startswith(bom):
            h, encoding = h[len(bom) :], name
            break
    text = h.decode(encoding, errors="replace").lstrip()
    low = text.lower()
    if low.startswith("#extm3u"):
        return HLS
    if low.startswith("ffconcat version"):
        return FFCONCAT
    if _MVG.search(low):
        return MVG
    if low.startswith("<"):
        return _markup(low)
    if re.match(r'\{\s*("|\})|\[\s*[\[{"\d\]-]', text):
        return "application/json"
    return None


def _markup(low: str) -> str | None:
    """XML/HTML family: decided by the DOCTYPE or by the first (root) element's name."""
    doctype = re.search(r"<!doctype\s+([a-z]+)", low)
    if doctype and doctype.group(1) in ("html", "svg"):
        return "text/html" if doctype.group(1) == "html" else "image/svg+xml"
    body = re.sub(r"<\?.*?\?>|<!--.*?-->|<![^>]*>", "", low, flags=re.S)
    root = _ROOT.search(body)
    name = root.group(1).split(":")[-1] if root else ""
    if name == "svg":
        return "image/svg+xml"
    if name in ("html", "head", "body"):
        return "text/html"
    if name == "image":
        return MSL
    if low.startswith("<?xml"):
        return "application/xml"
    return None
