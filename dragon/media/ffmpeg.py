"""ffmpeg command lines for the audio and video tasks, built from probed sources only.

Every argv starts from ``ffmpeg_argv`` and every input from ``dragon.media.probe.input_args``
(``-protocol_whitelist file,pipe`` and a forced ``-f`` demuxer before each ``-i``).
``ffmpeg_argv`` re-checks that rule on the finished argv, so a builder that forgets it
fails loudly instead of handing ffmpeg an unguarded input (docs/security.md).

The size filters use ``dragon.media.geometry`` so video tasks and image tasks agree to
the pixel. They work on the *display* size (``MediaInfo.display_size``): ffmpeg rotates
frames upright before the filtergraph, so a portrait phone video is filtered as portrait.
"""

from __future__ import annotations

from pathlib import Path

from dragon import errors
from dragon.config import Settings
from dragon.media import geometry
from dragon.runtime import disk

# Image formats of the video frame tasks (thumb, strip): Pillow name, suffix, content type.
FRAME_FORMATS = {"jpeg": ("JPEG", "jpg", "image/jpeg"), "png": ("PNG", "png", "image/png")}

BASE = ("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y")


def ffmpeg_argv(*parts: str) -> list[str]:
    """``ffmpeg`` quiet and non-interactive, then ``parts``; refuses unguarded inputs."""
    argv = [*BASE, *parts]
    check_inputs(argv)
    return argv


def check_inputs(argv: list[str]) -> None:
    """Every ``-i`` must follow ``-protocol_whitelist file,pipe``, a ``-format_whitelist``
    and a forced ``-f`` of its own."""
    start = 0
    for i, arg in enumerate(argv):
        if arg != "-i":
            continue
        options = argv[start:i]
        ok = (
            _value(options, "-protocol_whitelist") in ("file", "file,pipe")
            and _value(options, "-format_whitelist") is not None
            and _value(options, "-f") is not None
        )
        if not ok:
            raise RuntimeError(f"unguarded ffmpeg input {argv[i + 1]!r} in {argv}")
        start = i + 2


def _value(options: list[str], name: str) -> str | None:
    for i in range(len(options) - 1, -1, -1):
        if options[i] == name and i + 1 < len(options):
            return options[i + 1]
    return None


def decoder_guard(settings: Settings) -> list[str]:
    """Input options making the decoder itself refuse frames above ``max_pixels``."""
    return ["-max_pixels", str(settings.max_pixels)]


def output_cap(settings: Settings) -> list[str]:
    """``-fs``: an output-size ceiling, so a pathological encode cannot fill the disk.

    It is ``max_output_bytes`` or what the data disk has left above its reserve
    (``DRAGON_MIN_FREE_BYTES``), whichever is smaller; ``disk_full`` when nothing is left.
    """
    return ["-fs", str(min(max_output_bytes(settings), disk.check_room(settings)))]


def max_output_bytes(settings: Settings) -> int:
    return int(settings.max_output_bytes)


def check_output(path: Path, settings: Settings) -> None:
    """An output missing, empty or cut at the ``-fs`` ceiling is a failure, not a result.

    Cut at the disk's reserve (the ceiling ``output_cap`` lowered), it is ``disk_full``.
    """
    size = path.stat().st_size if path.exists() else 0
    if size < max_output_bytes(settings) and disk.room(settings) <= 0:
        raise disk.full_error(settings)
    if size == 0:
        raise errors.TaskError(errors.INVALID_MEDIA, "ffmpeg produced no output from this media")
    if size >= max_output_bytes(settings):
        raise errors.TaskError(
            errors.MEDIA_TOO_LARGE, f"the output exceeded {max_output_bytes(settings)} bytes"
        )


def check_size(width: int, height: int, settings: Settings, field: str = "width") -> None:
    """Apply ``max_pixels`` to what we are asked to *produce*.

    A tiny source must not be able to ask for a huge output.
    """
    limit = settings.max_pixels
    if width * height > limit:
        raise errors.ParameterError.one(
            field, f"an output of {width}x{height} exceeds {limit} pixels"
        )


def video_size(
    src: tuple[int, int], width: int | None, height: int | None, crop: bool
) -> tuple[int, int]:
    """Encoded size for H.264 4:2:0: the requested box (crop) or the fitted size, made even."""
    if crop and width and height:
        return geometry.even(width), geometry.even(height)
    w, h = geometry.scale_to(*src, width, height)
    return geometry.even(w), geometry.even(h)


def resize_filter(src: tuple[int, int], size: tuple[int, int], crop: bool) -> str:
    """Filters taking ``src``-sized frames to exactly ``size``; centre-crop when asked.

    Without ``crop`` the aspect ratio follows ``size`` (which ``video_size`` fitted), so
    evening may stretch by under a pixel. Empty when nothing changes.
    """
    sw, sh = src
    w, h = size
    parts = []
    if crop:
        x, y, cw, ch = geometry.crop_box(sw, sh, w, h)
        if (cw, ch) != (sw, sh):
            parts.append(f"crop={cw}:{ch}:{x}:{y}")
            sw, sh = cw, ch
    if (sw, sh) != (w, h):
        parts.append(f"scale={w}:{h}:flags=bicubic")
    if parts:
        parts.append("setsar=1")
    return ",".join(parts)


def cell_filter(src: tuple[int, int], cell: tuple[int, int], crop: bool) -> str:
    """Frames into a ``cell``: filled and centre-cropped, or fitted on black (letterbox)."""
    if crop:
        return resize_filter(src, cell, True) or "setsar=1"
    x, y, w, h = geometry.letterbox(*src, *cell)
    fit = f"scale={w}:{h}:flags=bicubic"
    if (w, h) == tuple(cell):
        return f"{fit},setsar=1"
    return f"{fit},pad={cell[0]}:{cell[1]}:{x}:{y}:color=black,setsar=1"


def x264_args(*, crf: int, gop: int, maxrate_kbps: int | None, preset: str) -> list[str]:
    """H.264 at constant quality ``crf``, capped at ``maxrate_kbps`` when given.

    The cap uses a VBV buffer of two seconds at that rate, so easy scenes stay small and
    hard ones never exceed the requested bitrate by much.
    """
    args = [
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-crf",
        str(crf),
        "-g",
        str(gop),
        "-pix_fmt",
        "yuv420p",
    ]
    if maxrate_kbps:
        args += ["-maxrate", f"{maxrate_kbps}k", "-bufsize", f"{2 * maxrate_kbps}k"]
    return args


def x264_preset(settings: Settings) -> str:
    return str(settings.x264_preset)
