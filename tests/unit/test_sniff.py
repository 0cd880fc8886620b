"""Magic-byte sniffing: one case per signature, bytes built here, plus real files from tools."""

from __future__ import annotations

import io
import struct
import subprocess

import pytest
from PIL import Image

from dragon.net.sniff import FFCONCAT, HLS, MSL, MVG, extension, sniff, sniff_file
from tests.support.media import ffmpeg


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    return box(b"ftyp", major + b"\x00\x00\x02\x00" + b"".join(compatible)) + box(b"mdat", b"")


def ebml(doctype: bytes) -> bytes:
    # EBML header: version elements, then DocType (0x4282) with a 1-byte vint size.
    body = b"\x42\x86\x81\x01" + b"\x42\xf7\x81\x01" + b"\x42\x82" + bytes([0x80 | len(doctype)])
    body += doctype
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(body)]) + body


def riff(form: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 1000) + form + b"fmt " + b"\x00" * 20


def bmp_header(dib: int) -> bytes:
    return b"BM" + struct.pack("<IHHI", 1000, 0, 0, 54) + struct.pack("<I", dib) + b"\x00" * 36


def ts(stride: int = 188, offset: int = 0) -> bytes:
    packet = bytearray(stride)
    packet[offset] = 0x47
    return bytes(packet) * 3


CASES = [
    ("jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
    ("png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
    ("gif87", b"GIF87a\x01\x00\x01\x00", "image/gif"),
    ("gif89", b"GIF89a\x01\x00\x01\x00", "image/gif"),
    ("webp", riff(b"WEBP"), "image/webp"),
    ("tiff-le", b"II*\x00\x08\x00\x00\x00", "image/tiff"),
    ("tiff-be", b"MM\x00*\x00\x00\x00\x08", "image/tiff"),
    ("bigtiff", b"II+\x00\x08\x00\x00\x00", "image/tiff"),
    ("bmp", bmp_header(40), "image/bmp"),
    ("bmp-v5", bmp_header(124), "image/bmp"),
    ("avif", ftyp(b"avif", b"mif1", b"miaf"), "image/avif"),
    ("avif-mif1", ftyp(b"mif1", b"avif"), "image/avif"),
    ("heic", ftyp(b"heic", b"mif1"), "image/heic"),
    ("heif-mif1", ftyp(b"mif1", b"heic"), "image/heic"),
    ("mp4-isom", ftyp(b"isom", b"iso2", b"avc1", b"mp41"), "video/mp4"),
    ("mp4-mp42", ftyp(b"mp42", b"isom"), "video/mp4"),
    ("3gp", ftyp(b"3gp4", b"isom"), "video/mp4"),
    ("m4a", ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), "audio/mp4"),
    ("mov-ftyp", ftyp(b"qt  ", b"qt  "), "video/quicktime"),
    ("mov-old-moov", box(b"moov", b"\x00" * 16), "video/quicktime"),
    ("mov-old-wide", box(b"wide", b"") + box(b"mdat", b""), "video/quicktime"),
    ("webm", ebml(b"webm"), "video/webm"),
    ("mkv", ebml(b"matroska"), "video/x-matroska"),
    ("ebml-no-doctype", b"\x1a\x45\xdf\xa3\x80", "video/x-matroska"),
    ("avi", riff(b"AVI "), "video/x-msvideo"),
    ("wav", riff(b"WAVE"), "audio/wav"),
    ("rf64", b"RF64" + b"\xff" * 4 + b"WAVEds64", "audio/wav"),
    ("mp3-id3", b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x00", "audio/mpeg"),
    ("mp3-frame", b"\xff\xfb\x90\x64" + b"\x00" * 20, "audio/mpeg"),
    ("mp2-frame", b"\xff\xfd\x90\x64" + b"\x00" * 20, "audio/mpeg"),
    ("aac-after-id3", b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xf1\x50\x80\x02\x1f\xfc", "audio/aac"),
    ("flac-after-id3", b"ID3\x04\x00\x00\x00\x00\x00\x02\x00\x00fLaC\x00", "audio/flac"),
    ("ogg-vorbis", b"OggS\x00\x02" + b"\x00" * 22 + b"\x01vorbis", "audio/ogg"),
    ("ogg-opus", b"OggS\x00\x02" + b"\x00" * 22 + b"OpusHead", "audio/ogg"),
    ("ogg-theora", b"OggS\x00\x02" + b"\x00" * 22 + b"\x80theora", "video/ogg"),
    ("flac", b"fLaC\x00\x00\x00\x22", "audio/flac"),
    ("aac-adts", b"\xff\xf1\x50\x80\x02\x1f\xfc", "audio/aac"),
    ("aac-adts-mpeg2", b"\xff\xf9\x50\x80\x02\x1f\xfc", "audio/aac"),
    ("mpeg-ts", ts(), "video/mp2t"),
    ("m2ts", ts(192, 4), "video/mp2t"),
    ("flv", b"FLV\x01\x05\x00\x00\x00\x09", "video/x-flv"),
    ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "application/pdf"),
    ("postscript", b"%!PS-Adobe-3.0\n", "application/postscript"),
    ("eps-binary", b"\xc5\xd0\xd3\xc6\x20\x00\x00\x00", "application/postscript"),
    ("svg", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "image/svg+xml"),
    ("svg-xml", b'<?xml version="1.0"?>\n<!-- c -->\n<svg width="1"/>', "image/svg+xml"),
    (
        "svg-doctype",
        b'<?xml version="1.0"?><!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN"><svg/>',
        "image/svg+xml",
    ),
    ("svg-bom-space", b"\xef\xbb\xbf  \n<svg/>", "image/svg+xml"),
    (
        "svg-entity",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><svg>&a;</svg>',
        "image/svg+xml",
    ),
    ("svg-utf16", "<svg/>".encode("utf-16"), "image/svg+xml"),
    (
        "mvg",
        b"push graphic-context\nviewbox 0 0 640 480\nfill 'url(https://x\";ls\")'\n"
        b"pop graphic-context\n",
        MVG,
    ),
    ("mvg-viewbox", b"viewbox 0 0 1 1\nimage over 0,0 0,0 'label:@/etc/passwd'\n", MVG),
    (
        "msl",
        b'<?xml version="1.0" encoding="UTF-8"?>\n<image>\n<read filename="x.gif"/>\n'
        b'<write filename="/tmp/x"/>\n</image>',
        MSL,
    ),
    ("hls", b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\nfile:///etc/passwd\n", HLS),
    ("hls-bom", b"\xef\xbb\xbf#EXTM3U\n", HLS),
    ("ffconcat", b"ffconcat version 1.0\nfile /etc/passwd\n", FFCONCAT),
    ("html-doctype", b"<!DOCTYPE html><html><head></head></html>", "text/html"),
    ("html-tag", b"\n\n   <html lang=en>", "text/html"),
    ("html-bom", b"\xef\xbb\xbf<!doctype HTML>", "text/html"),
    ("xhtml", b'<?xml version="1.0"?><!DOCTYPE html PUBLIC "x"><html xmlns="y">', "text/html"),
    ("json-object", b'{"a": 1}', "application/json"),
    ("json-array", b"[1, 2]", "application/json"),
    ("empty", b"", None),
    ("random", bytes(range(7, 200)), None),
    ("plain-text", b"hello world\n", None),
    ("zeros", b"\x00" * 512, None),
    ("bm-text", b"BMW is a car brand and this is text", None),
    # A RIFF of a form type we do not know is nothing, even if it looks like ftyp after.
    ("riff-unknown-form", b"RIFFftypMP4 " + b"\x00" * 20, None),
    ("frame-sync-bad-bitrate", b"\xff\xfb\xf0\x00", None),
    ("other-xml", b'<?xml version="1.0"?><rss/>', "application/xml"),
]


@pytest.mark.parametrize(("head", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_signature(head, expected):
    assert sniff(head) == expected


def test_only_first_4k_counts():
    assert sniff(b" " * 5000 + b"<svg/>") is None
    assert sniff(b" " * 100 + b"<svg/>") == "image/svg+xml"


def test_sniff_file(tmp_path):
    path = tmp_path / "photo.mp4"  # the name lies; the bytes decide
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, "JPEG")
    path.write_bytes(buf.getvalue())
    assert sniff_file(path) == "image/jpeg"
    assert extension("image/jpeg") == ".jpg"
    assert extension(MVG) == extension(None) == ""


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("PNG", "image/png"),
        ("GIF", "image/gif"),
        ("WEBP", "image/webp"),
        ("TIFF", "image/tiff"),
        ("BMP", "image/bmp"),
    ],
)
def test_real_images(tmp_path, fmt, expected):
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, fmt)
    assert sniff(buf.getvalue()) == expected


@pytest.mark.parametrize(
    ("ext", "args", "expected"),
    [
        ("mp4", ["-f", "lavfi", "-i", "testsrc=size=32x32:rate=5:duration=0.4"], "video/mp4"),
        ("mov", ["-f", "lavfi", "-i", "testsrc=size=32x32:rate=5:duration=0.4"], "video/quicktime"),
        (
            "webm",
            [
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=32x32:rate=5:duration=0.4",
                "-c:v",
                "libvpx",
                "-deadline",
                "realtime",
            ],
            "video/webm",
        ),
        (
            "mkv",
            ["-f", "lavfi", "-i", "testsrc=size=32x32:rate=5:duration=0.4"],
            "video/x-matroska",
        ),
        ("avi", ["-f", "lavfi", "-i", "testsrc=size=32x32:rate=5:duration=0.4"], "video/x-msvideo"),
        ("ts", ["-f", "lavfi", "-i", "testsrc=size=32x32:rate=5:duration=0.4"], "video/mp2t"),
        ("flv", ["-f", "lavfi", "-i", "testsrc=size=32x32:rate=5:duration=0.4"], "video/x-flv"),
        ("m4a", ["-f", "lavfi", "-i", "sine=duration=0.2", "-c:a", "aac"], "audio/mp4"),
        ("wav", ["-f", "lavfi", "-i", "sine=duration=0.2"], "audio/wav"),
        ("mp3", ["-f", "lavfi", "-i", "sine=duration=0.2"], "audio/mpeg"),
        ("ogg", ["-f", "lavfi", "-i", "sine=duration=0.2", "-c:a", "libvorbis"], "audio/ogg"),
        ("flac", ["-f", "lavfi", "-i", "sine=duration=0.2"], "audio/flac"),
        ("aac", ["-f", "lavfi", "-i", "sine=duration=0.2", "-c:a", "aac"], "audio/aac"),
    ],
)
def test_real_media_from_ffmpeg(tmp_path, ext, args, expected):
    out = tmp_path / f"out.{ext}"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", *args, str(out)], check=True, timeout=60
    )
    assert sniff_file(out) == expected


def test_asf_is_sniffed_as_wmv_container(tmp_path):
    out = tmp_path / "a.wmv"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.2", "-c:a", "wmav2", "-f", "asf", str(out))
    assert sniff_file(out) == "video/x-ms-asf"
