"""Media generated at test time (nothing binary is committed).

Small helpers over ffmpeg lavfi sources and Pillow. Each returns the bytes or path made.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import zlib
from pathlib import Path

from PIL import Image


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def image_bytes(
    width: int = 64,
    height: int = 48,
    color=(255, 0, 0),
    fmt: str = "JPEG",
    mode: str = "RGB",
    **save,
) -> bytes:
    img = Image.new(mode, (width, height), color)
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def video(
    path: Path,
    *,
    duration: float = 2.0,
    size: str = "320x240",
    rate: int = 25,
    audio: bool = True,
    extra: tuple[str, ...] = (),
) -> Path:
    """An H.264/AAC MP4 from testsrc2 (+ a 440 Hz sine when ``audio``)."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={duration}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={duration}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-shortest"]
    ffmpeg(*args, *extra, str(path))
    return path


def audio(
    path: Path, *, duration: float = 2.0, freq: int = 440, codec: tuple[str, ...] = ()
) -> Path:
    """A sine tone; the container and codec follow ``path``'s suffix unless ``codec`` says."""
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency={freq}:duration={duration}", *codec, str(path))
    return path


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` but whose IDAT holds a few bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


# -- hostile containers ------------------------------------------------------------------

AV_TASKS = [
    "audio.info",
    "audio.convert",
    "video.info",
    "video.convert",
    "video.thumb",
    "video.strip",
    "video.reverse",
]
PLAYLIST = b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"


def _chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _list(kind: bytes, *items: bytes) -> bytes:
    body = kind + b"".join(items)
    return b"LIST" + struct.pack("<I", len(body)) + body


def gab2_avi(subtitle: bytes, size: int = 16, frames: int = 10) -> bytes:
    """An AVI: raw 16x16 video plus a ``txts`` stream whose first chunk is a GAB2 block
    carrying ``subtitle``, a whole file that ffmpeg's AVI demuxer opens with a nested demuxer
    (how the 2017 exploit smuggled an HLS playlist in)."""
    desc = "x".encode("utf-16le") + b"\0\0"
    gab2 = (
        b"GAB2\0"
        + struct.pack("<HI", 2, len(desc))
        + desc
        + struct.pack("<HI", 4, len(subtitle))
        + subtitle
    )
    frame = bytes([40, 80, 160]) * (size * size)
    avih = struct.pack("<14I", 40000, 0, 0, 0x10, frames, 0, 2, 0, size, size, 0, 0, 0, 0)
    strh = "<4s4sIHHIIIIIIII4h"
    video = _chunk(
        b"strh",
        struct.pack(
            strh,
            b"vids",
            bytes(4),
            0,
            0,
            0,
            0,
            1,
            25,
            0,
            frames,
            len(frame),
            0,
            0,
            0,
            0,
            size,
            size,
        ),
    ) + _chunk(
        b"strf", struct.pack("<IiiHHIIiiII", 40, size, size, 1, 24, 0, len(frame), 0, 0, 0, 0)
    )
    text = _chunk(
        b"strh",
        struct.pack(strh, b"txts", bytes(4), 0, 0, 0, 0, 1, 25, 0, 1, len(gab2), 0, 0, 0, 0, 0, 0),
    ) + _chunk(b"strf", bytes(4))
    hdrl = _list(b"hdrl", _chunk(b"avih", avih), _list(b"strl", video), _list(b"strl", text))
    chunks, index, offset = [], [], 4
    for fourcc, data in [(b"01tx", gab2)] + [(b"00db", frame)] * frames:
        chunks.append(_chunk(fourcc, data))
        index.append(struct.pack("<4sIII", fourcc, 0x10, offset, len(data)))
        offset += len(chunks[-1])
    body = b"AVI " + hdrl + _list(b"movi", *chunks) + _chunk(b"idx1", b"".join(index))
    return b"RIFF" + struct.pack("<I", len(body)) + body


def ffprobe(path: Path, *extra: str) -> dict:
    """ffprobe's JSON of ``path``'s format and streams (``extra``: e.g. ``-count_frames``)."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            *extra,
            str(path),
        ],
        capture_output=True,
        check=True,
    )
    return json.loads(out.stdout)
