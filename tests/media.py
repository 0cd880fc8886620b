"""Media generated at test time (nothing binary is committed).

Small helpers over ffmpeg lavfi sources and Pillow. Each returns the bytes or path made.
"""

from __future__ import annotations

import io
import struct
import subprocess
import zlib
from pathlib import Path

from PIL import Image


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def image_bytes(width: int = 64, height: int = 48, color=(255, 0, 0), fmt: str = "JPEG",
                mode: str = "RGB", **save) -> bytes:
    img = Image.new(mode, (width, height), color)
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def video(path: Path, *, duration: float = 2.0, size: str = "320x240", rate: int = 25,
          audio: bool = True, extra: tuple[str, ...] = ()) -> Path:
    """An H.264/AAC MP4 from testsrc2 (+ a 440 Hz sine when ``audio``)."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={duration}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={duration}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-shortest"]
    ffmpeg(*args, *extra, str(path))
    return path


def audio(path: Path, *, duration: float = 2.0, freq: int = 440,
          codec: tuple[str, ...] = ()) -> Path:
    """A sine tone; the container and codec follow ``path``'s suffix unless ``codec`` says."""
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency={freq}:duration={duration}", *codec, str(path))
    return path


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` but whose IDAT holds a few bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
