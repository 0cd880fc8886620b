"""The versions of the media tools dragon runs, as failure diagnostics and ``dragon doctor``
report them (a failure often depends on the ffmpeg build)."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

# ImageMagick 7 ships ``magick``; Debian's ImageMagick 6 ships ``convert`` (and convert-im6.q16).
IMAGEMAGICK = ("magick", "convert-im6.q16", "convert")


def imagemagick_binary() -> str | None:
    for name in IMAGEMAGICK:
        if path := shutil.which(name):
            return path
    return None


def first_line(argv: list[str]) -> str | None:
    """The first line ``argv`` prints, or None if it cannot run."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


def _version(line: str | None, pattern: str) -> str | None:
    if line is None:
        return None
    match = re.search(pattern, line)
    return match.group(1) if match else line


@functools.cache
def tool_versions() -> dict[str, str | None]:
    """``{"ffmpeg", "ffprobe", "imagemagick", "pillow"}`` versions; None for a missing tool.

    Blocking (it runs the tools once per process, then answers from its cache): call it
    from a thread.
    """
    import PIL

    magick = imagemagick_binary()
    return {
        "ffmpeg": _version(first_line(["ffmpeg", "-version"]), r"ffmpeg version (\S+)"),
        "ffprobe": _version(first_line(["ffprobe", "-version"]), r"ffprobe version (\S+)"),
        "imagemagick": _version(
            first_line([magick, "-version"]) if magick else None, r"ImageMagick (\S+)"
        ),
        "pillow": PIL.__version__,
    }
