"""One ffprobe run per source: what a media file holds, and whether we will touch it.

ffmpeg is a parser of hostile input (docs/security.md), so nothing reaches it unless:

* its sniffed MIME type (magic bytes, never the URL or the origin's Content-Type) is in
  ``DEMUXERS``, which also names the demuxer we force with ``-f``: a ``.mp4`` that is really
  an HLS playlist or an ``ffconcat`` script is refused here, and if it slipped through the
  sniffer the forced demuxer would still refuse to read it as a playlist;
* ffprobe, restricted to ``-protocol_whitelist file,pipe`` and that demuxer, can read it;
* its declared size, duration, stream count, sample rate, channels and frame rate are
  within the settings, checked on the metadata before any decode.

``MediaInfo`` is shared by every audio and video task (and video.create), so the tools
they build (``dragon.media.ffmpeg``) always start from ``input_args(info)``.

Rotation: ``rotation`` is the counter-clockwise angle, in [0, 360), that shows the video
as shot. ffprobe's display-matrix ``rotation`` is already counter-clockwise; the legacy
``rotate`` tag is clockwise and is negated. ffmpeg applies it itself when decoding
(autorotate), so ``display_size`` is the size frames come out of the decoder.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any, NoReturn, TypedDict

import orjson

from dragon import errors
from dragon.config import Settings
from dragon.media.context import ProbesSources, RunsTools
from dragon.net.fetcher import Download
from dragon.runtime.processes import ProcessResult

# Sniffed MIME type -> the demuxer forced with -f. Nothing else is ever opened.
DEMUXERS: dict[str, str] = {
    "video/mp4": "mov",
    "video/quicktime": "mov",
    "video/x-m4v": "mov",
    "video/3gpp": "mov",
    "audio/mp4": "mov",
    "audio/x-m4a": "mov",
    "video/webm": "matroska",
    "audio/webm": "matroska",
    "video/x-matroska": "matroska",
    "audio/x-matroska": "matroska",
    "video/x-msvideo": "avi",
    "video/avi": "avi",
    "video/msvideo": "avi",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/ogg": "ogg",
    "video/ogg": "ogg",
    "application/ogg": "ogg",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/aac": "aac",
    "audio/x-aac": "aac",
    "audio/aacp": "aac",
    "video/mp2t": "mpegts",
    "video/x-flv": "flv",
    "video/x-ms-asf": "asf",
    "video/x-ms-wmv": "asf",
    "audio/x-ms-wma": "asf",
}

# Aliases reported under one name in ``content_type``.
CANONICAL: dict[str, str] = {
    "video/x-m4v": "video/mp4",
    "audio/x-m4a": "audio/mp4",
    "video/avi": "video/x-msvideo",
    "video/msvideo": "video/x-msvideo",
    "audio/mp3": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "application/ogg": "video/ogg",
    "audio/x-flac": "audio/flac",
    "audio/x-aac": "audio/aac",
    "audio/aacp": "audio/aac",
    "video/x-ms-wmv": "video/x-ms-asf",
}

# Containers that hold audio or video: named audio/... when there is no video stream.
AUDIO_ONLY_NAMES: dict[str, str] = {
    "video/mp4": "audio/mp4",
    "video/quicktime": "audio/mp4",
    "video/webm": "audio/webm",
    "video/x-matroska": "audio/x-matroska",
    "video/ogg": "audio/ogg",
    "video/x-ms-asf": "audio/x-ms-wma",
}

PLAYLISTS = {
    "application/vnd.apple.mpegurl",
    "application/x-mpegurl",
    "audio/mpegurl",
    "audio/x-mpegurl",
    "text/x-ffconcat",
    "application/dash+xml",
    "audio/x-scpls",
}

MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 64
MAX_FRAME_RATE = 1000.0
PROBE_TIMEOUT = 60.0

LOG_PREFIX = re.compile(r"\[[^\]]* @ 0x[0-9a-f]+\] ")
ALPHA_PIX_PREFIXES = ("yuva", "gbrap", "rgba", "bgra", "argb", "abgr", "ya8", "ya16")

# ffprobe's JSON answer and one of its ``streams``: documents whose every field is optional.
Probe = dict[str, Any]
Stream = dict[str, Any]


@dataclasses.dataclass
class MediaInfo:
    path: Path
    demuxer: str  # the forced -f value from the allowlist
    format_name: str  # ffprobe format_name
    content_type: str  # e.g. video/mp4, audio/mpeg
    duration: float | None
    width: int | None  # stored size of the first video stream (before rotation)
    height: int | None
    frame_rate: float | None
    rotation: float  # degrees counter-clockwise to see it as shot (0 if none)
    alpha: bool  # pixel format with an alpha plane
    video_codec: str | None
    audio_codec: str | None
    sample_rate: int | None
    channels: int | None
    has_video: bool
    has_audio: bool
    streams: int
    bit_rate: int | None

    @property
    def display_size(self) -> tuple[int, int] | None:
        """Size of the decoded frames once ffmpeg has applied the rotation."""
        if not self.width or not self.height:
            return None
        if round(self.rotation) % 180 == 90:
            return self.height, self.width
        return self.width, self.height


def demuxer_for(mime: str | None) -> str:
    """The demuxer forced for a sniffed type; ``unsupported_media`` for anything else."""
    kind = base_mime(mime)
    if kind in DEMUXERS:
        return DEMUXERS[kind]
    if kind in PLAYLISTS:
        raise errors.TaskError(
            errors.UNSUPPORTED_MEDIA,
            f"{kind} is a playlist or concat script, not media: only media files are accepted",
        )
    raise errors.TaskError(
        errors.UNSUPPORTED_MEDIA,
        f"{kind or 'unrecognised data'} is not a supported audio or video format",
    )


def base_mime(mime: str | None) -> str:
    return (mime or "").split(";", 1)[0].strip().lower()


def input_args(info: MediaInfo, *, seek: float | None = None) -> list[str]:
    """ffmpeg input options for ``info``: whitelists, optional input seek, forced demuxer.

    ``-format_whitelist`` (the forced demuxer only) also binds demuxers nested inside the
    file, such as a playlist hidden in an AVI ``GAB2`` subtitle chunk.
    """
    return path_input_args(info.path, info.demuxer, seek=seek)


def path_input_args(path: Path, demuxer: str, *, seek: float | None = None) -> list[str]:
    args = ["-protocol_whitelist", "file,pipe", "-format_whitelist", demuxer]
    if seek is not None and seek > 0:
        args += ["-ss", f"{seek:.6f}"]
    return [*args, "-f", demuxer, "-i", str(path)]


def ffprobe_argv(path: Path, demuxer: str) -> list[str]:
    return [
        "ffprobe",
        "-v",
        "error",
        "-hide_banner",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        *path_input_args(path, demuxer),
    ]


async def fetch_source(ctx: ProbesSources, url: str, need: str) -> MediaInfo:
    """Download ``url`` and probe it, refusing it unless it has ``need`` (audio or video):
    the first steps of every audio and video task."""
    info = await probe(ctx, await ctx.fetch(url))
    (require_audio if need == "audio" else require_video)(info)
    return info


async def probe(ctx: RunsTools, download: Download) -> MediaInfo:
    """Probe a downloaded source (``dragon.net.fetcher.Download``: ``path``, sniffed ``mime``)."""
    source_demuxer(download)
    return await probe_path(ctx, Path(download.path), download.mime)


def source_demuxer(download: Download) -> str:
    """The demuxer for a download, refusing empty files and types we do not open."""
    if not download.size:
        raise errors.TaskError(errors.INVALID_MEDIA, "the source is empty (0 bytes)")
    return demuxer_for(download.mime)


async def probe_path(ctx: RunsTools, path: Path, mime: str | None) -> MediaInfo:
    """Probe a local file of sniffed (or, for our own outputs, known) type ``mime``.

    Raises ``unsupported_media`` (type not allowed), ``invalid_media`` (unreadable, no
    streams) or ``media_too_large`` (over the limits in ``ctx.settings``).
    """
    demuxer = demuxer_for(mime)
    result = await ctx.run(ffprobe_argv(path, demuxer), check=False, timeout=PROBE_TIMEOUT)
    if result.returncode != 0:
        raise errors.TaskError(
            errors.INVALID_MEDIA,
            f"not a readable {base_mime(mime)} file: {tool_reason(result, path)}",
        )
    try:
        data = orjson.loads(result.stdout or b"{}")
    except orjson.JSONDecodeError:
        raise errors.TaskError(errors.INVALID_MEDIA, "ffprobe gave an unreadable answer") from None
    info = parse_probe(data, path=path, demuxer=demuxer, mime=base_mime(mime))
    check_limits(info, data, ctx.settings)
    return info


def tool_reason(result: ProcessResult, path: Path) -> str:
    """ffmpeg's complaint about ``path``, without log prefixes or our temp paths."""
    reason = LOG_PREFIX.sub("", result.reason())
    return reason.replace(f"{path}: ", "").replace(str(path), path.name)


def parse_probe(data: Probe, *, path: Path, demuxer: str, mime: str) -> MediaInfo:
    """Build ``MediaInfo`` from ffprobe's JSON (``-show_format -show_streams``)."""
    fmt: dict[str, Any] = data.get("format") or {}
    streams: list[Stream] = data.get("streams") or []
    videos = [s for s in streams if s.get("codec_type") == "video" and not _is_picture(s)]
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    if not videos and not audios:
        raise errors.TaskError(errors.INVALID_MEDIA, "no audio or video stream found")
    video = videos[0] if videos else None
    return MediaInfo(
        path=path,
        demuxer=demuxer,
        format_name=str(fmt.get("format_name") or demuxer),
        content_type=_content_type(mime, has_video=video is not None),
        duration=_duration(fmt, streams),
        **_video_facts(video),
        **_audio_facts(audios[0] if audios else None),
        streams=_int(fmt.get("nb_streams")) or len(streams),
        bit_rate=_int(fmt.get("bit_rate")),
    )


def _content_type(mime: str, *, has_video: bool) -> str:
    """The canonical name of the sniffed type; audio/... for a container holding no video."""
    content_type = CANONICAL.get(mime, mime)
    return content_type if has_video else AUDIO_ONLY_NAMES.get(content_type, content_type)


class _VideoFacts(TypedDict):
    """The ``MediaInfo`` fields read from the first video stream."""

    width: int | None
    height: int | None
    frame_rate: float | None
    rotation: float
    alpha: bool
    video_codec: str | None
    has_video: bool


class _AudioFacts(TypedDict):
    """The ``MediaInfo`` fields read from the first audio stream."""

    audio_codec: str | None
    sample_rate: int | None
    channels: int | None
    has_audio: bool


def _video_facts(video: Stream | None) -> _VideoFacts:
    if video is None:
        return _VideoFacts(
            width=None,
            height=None,
            frame_rate=None,
            rotation=0.0,
            alpha=False,
            video_codec=None,
            has_video=False,
        )
    return _VideoFacts(
        width=_int(video.get("width")),
        height=_int(video.get("height")),
        frame_rate=_frame_rate(video),
        rotation=_rotation(video),
        alpha=_alpha(video),
        video_codec=video.get("codec_name"),
        has_video=True,
    )


def _audio_facts(audio: Stream | None) -> _AudioFacts:
    if audio is None:
        return _AudioFacts(audio_codec=None, sample_rate=None, channels=None, has_audio=False)
    return _AudioFacts(
        audio_codec=audio.get("codec_name"),
        sample_rate=_int(audio.get("sample_rate")),
        channels=_int(audio.get("channels")),
        has_audio=True,
    )


def check_limits(info: MediaInfo, data: Probe, settings: Settings) -> None:
    """Refuse sources whose metadata is beyond what we agree to decode (``media_too_large``)."""
    max_streams = settings.max_media_streams
    if info.streams > max_streams:
        _too_large(f"{info.streams} streams (at most {max_streams})")
    for stream in data.get("streams") or []:
        _check_stream(stream, settings.max_pixels)
    max_duration = settings.max_media_duration
    if info.duration is not None and info.duration > max_duration:
        _too_large(f"a duration of {info.duration:.1f} s (at most {max_duration:g} s)")
    if info.frame_rate and info.frame_rate > MAX_FRAME_RATE:
        _too_large(f"{info.frame_rate:g} frames per second (at most {MAX_FRAME_RATE:g})")


def _check_stream(s: Stream, max_pixels: int) -> None:
    """Every stream counts, not only the first of each kind: ffmpeg may decode any of them."""
    if s.get("codec_type") == "video":
        w, h = _int(s.get("width")) or 0, _int(s.get("height")) or 0
        if w * h > max_pixels:
            _too_large(f"{w}x{h} frames ({w * h} pixels, at most {max_pixels})")
    if s.get("codec_type") == "audio":
        rate, channels = _int(s.get("sample_rate")) or 0, _int(s.get("channels")) or 0
        if rate > MAX_SAMPLE_RATE:
            _too_large(f"a {rate} Hz sample rate (at most {MAX_SAMPLE_RATE})")
        if channels > MAX_CHANNELS:
            _too_large(f"{channels} audio channels (at most {MAX_CHANNELS})")


def last_frame_time(info: MediaInfo) -> float | None:
    """An input-seek position that lands on the last frame (None if the duration is unknown).

    One frame before the end, less a millisecond so that rounding cannot seek past it.
    """
    if info.duration is None:
        return None
    frame = 1.0 / info.frame_rate if info.frame_rate else 0.04
    return max(0.0, info.duration - frame - 0.001)


def require_video(info: MediaInfo) -> tuple[int, int]:
    """For tasks that need pictures: refuse audio-only sources; the frames' display size."""
    size = info.display_size if info.has_video else None
    if size is None:
        raise errors.TaskError(errors.UNSUPPORTED_MEDIA, f"{info.content_type} has no video stream")
    return size


def require_audio(info: MediaInfo) -> None:
    if not info.has_audio:
        raise errors.TaskError(errors.UNSUPPORTED_MEDIA, f"{info.content_type} has no audio stream")


def _too_large(what: str) -> NoReturn:
    raise errors.TaskError(errors.MEDIA_TOO_LARGE, f"the media declares {what}")


def _is_picture(stream: Stream) -> bool:
    """Cover art in audio files is a one-picture 'video' stream; it is not video."""
    return bool((stream.get("disposition") or {}).get("attached_pic"))


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f >= 0 else None


def _fraction(text: Any) -> float | None:
    if not isinstance(text, str) or "/" not in text:
        return _float(text)
    num, _, den = text.partition("/")
    n, d = _float(num), _float(den)
    if not n or not d:
        return None
    return n / d


def _duration(fmt: dict[str, Any], streams: list[Stream]) -> float | None:
    duration = _float(fmt.get("duration"))
    if duration is None:
        durations = [d for s in streams if (d := _float(s.get("duration"))) is not None]
        duration = max(durations) if durations else None
    return duration


def _frame_rate(video: Stream) -> float | None:
    """The average rate when known (r_frame_rate can be a timebase such as 90000)."""
    return _fraction(video.get("avg_frame_rate")) or _fraction(video.get("r_frame_rate"))


def _rotation(video: Stream) -> float:
    for side in video.get("side_data_list") or []:
        if "rotation" in side:
            angle = _signed_float(side["rotation"])
            if angle is not None:
                return float(round(angle) % 360)
    angle = _signed_float((video.get("tags") or {}).get("rotate"))
    return float(round(-angle) % 360) if angle is not None else 0.0


def _signed_float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _alpha(video: Stream) -> bool:
    pix_fmt = str(video.get("pix_fmt") or "")
    if pix_fmt.startswith(ALPHA_PIX_PREFIXES):
        return True
    tags = {k.lower(): v for k, v in (video.get("tags") or {}).items()}
    return str(tags.get("alpha_mode", "")) == "1"  # VP8/VP9 alpha in WebM
