"""Subtitles burned into a video: SRT or WebVTT from a URL, rewritten as plain SRT first.

Why rewrite: the file is untrusted, and libass (behind ffmpeg's ``subtitles`` filter)
honours styling, fonts and override tags, and ffmpeg's subtitle readers would take other
formats too. pysubs2 parses the file and we write back timings and text only, so what is
drawn is the cue text in our style (DejaVu Sans, white with a dark outline, at the bottom),
whatever the file asked for.
"""

from __future__ import annotations

import pysubs2
from pysubs2.formats import autodetect_format

from dragon import errors

MAX_BYTES = 2 * 1024 * 1024
MAX_CUES = 20_000
FILENAME = "subtitles.srt"  # in the task's tmpdir, where ffmpeg runs
STYLE = ",".join(
    (
        "FontName=DejaVu Sans",
        "FontSize=20",  # of libass's 288-line reference height: scales with the video
        "PrimaryColour=&H00FFFFFF",
        "OutlineColour=&H80000000",
        "Outline=1.5",
        "Shadow=0",
        "MarginV=18",
    )
)


def _text(raw: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def clean_srt(raw: bytes) -> tuple[str, int]:
    """``raw`` (SRT or WebVTT) as plain SRT, and how many cues it holds."""
    text = _text(raw)
    try:
        kind = autodetect_format(text)
    except Exception:  # pysubs2 raises its own errors for text it cannot place
        kind = None
    if kind not in ("srt", "vtt"):
        raise errors.TaskError(errors.INVALID_MEDIA, "the subtitles are not SRT or WebVTT")
    try:
        subs = pysubs2.SSAFile.from_string(text, format_=kind)
    except Exception as exc:  # a malformed file: say so, never a traceback
        raise errors.TaskError(
            errors.INVALID_MEDIA, f"could not read the subtitles: {exc}"
        ) from None
    cues = [line for line in subs if line.text.strip() and line.end > line.start]
    if not cues:
        raise errors.TaskError(errors.INVALID_MEDIA, "the subtitles hold no timed text")
    if len(cues) > MAX_CUES:
        raise errors.TaskError(errors.INVALID_MEDIA, f"more than {MAX_CUES} subtitles")
    subs.events = cues
    return subs.to_string("srt"), len(cues)


def write(source: str, dest: str) -> int:
    """Read the downloaded ``source``, write the cleaned SRT at ``dest``; the cue count.
    Runs in the process pool: parsing is CPU work on untrusted input."""
    with open(source, "rb") as f:
        raw = f.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise errors.TaskError(errors.DOWNLOAD_TOO_LARGE, f"subtitles over {MAX_BYTES} bytes")
    srt, count = clean_srt(raw)
    with open(dest, "w", encoding="utf-8") as f:
        f.write(srt)
    return count


def burn_filter() -> str:
    """The ``subtitles`` filter over ``FILENAME`` (relative: ffmpeg runs in the tmpdir)."""
    return f"subtitles=filename={FILENAME}:charenc=UTF-8:force_style='{STYLE}'"
