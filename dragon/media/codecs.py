"""Video and audio codecs, the containers that carry them, and their encoder arguments.

``video.convert`` makes H.264 by default, as the original service did; HEVC (libx265),
VP9 (libvpx-vp9) and AV1 (SVT-AV1) are there for those who want smaller files for the same
quality. Each codec has its own quality scale (``crf``: lower is better) with a default
that looks about the same across codecs, and each container carries only some codecs, so
a request names what it wants and ``plan`` says whether the pair can be muxed, choosing
the container (or the audio codec) when the request leaves it open.
"""

from __future__ import annotations

import dataclasses

from dragon.media.ffmpeg import x264_args


@dataclasses.dataclass(frozen=True)
class VideoCodec:
    encoder: str
    crf_max: int  # crf runs 0 (best) to this
    crf_default: int  # about the same look across codecs at 720p
    capped: bool  # whether video_bitrate caps it (SVT-AV1 in this ffmpeg has no cap)
    extra: tuple[str, ...] = ()  # speed and compatibility settings


VIDEO: dict[str, VideoCodec] = {
    "h264": VideoCodec("libx264", 51, 23, True),
    # hvc1 is the sample entry Apple's players require for HEVC in MP4.
    "hevc": VideoCodec("libx265", 51, 28, True, ("-tag:v", "hvc1", "-x265-params", "log-level=1")),
    "vp9": VideoCodec(
        "libvpx-vp9", 63, 33, True, ("-row-mt", "1", "-deadline", "good", "-cpu-used", "4")
    ),
    "av1": VideoCodec("libsvtav1", 63, 35, False, ("-preset", "8")),
}


@dataclasses.dataclass(frozen=True)
class Container:
    muxer: str
    extension: str
    content_type: str
    video: frozenset[str]
    audio: frozenset[str]
    default_audio: str


CONTAINERS: dict[str, Container] = {
    "mp4": Container(
        "mp4",
        "mp4",
        "video/mp4",
        frozenset({"h264", "hevc", "vp9", "av1"}),
        frozenset({"aac", "mp3", "opus"}),
        "aac",
    ),
    "webm": Container(
        "webm", "webm", "video/webm", frozenset({"vp9", "av1"}), frozenset({"opus"}), "opus"
    ),
    "mkv": Container(
        "matroska",
        "mkv",
        "video/x-matroska",
        frozenset(VIDEO),
        frozenset({"aac", "mp3", "opus", "flac"}),
        "aac",
    ),
}


def default_container(video_codec: str, audio_codec: str | None) -> str:
    """MP4 where it can carry the pair (it plays everywhere), WebM for VP9 with Opus or no
    audio named (the web's own pairing), Matroska otherwise (FLAC)."""
    if video_codec == "vp9" and audio_codec in (None, "opus"):
        return "webm"
    if audio_codec is None or audio_codec in CONTAINERS["mp4"].audio:
        return "mp4"
    return "mkv"


def plan(video_codec: str, audio_codec: str | None, container: str | None) -> tuple[str, str] | str:
    """``(container, audio codec)`` for the request, or what is wrong with it."""
    name = container or default_container(video_codec, audio_codec)
    chosen = CONTAINERS[name]
    audio = audio_codec or chosen.default_audio
    if video_codec not in chosen.video:
        allowed = ", ".join(sorted(chosen.video))
        return f"{name} cannot carry {video_codec} video; choose one of: {allowed}"
    if audio not in chosen.audio:
        allowed = ", ".join(sorted(chosen.audio))
        return f"{name} cannot carry {audio} audio; choose one of: {allowed}"
    return name, audio


def crf_problem(video_codec: str, crf: int | None) -> str | None:
    codec = VIDEO[video_codec]
    if crf is not None and not 0 <= crf <= codec.crf_max:
        return f"for {video_codec} crf runs from 0 to {codec.crf_max}"
    return None


def video_args(
    video_codec: str, *, crf: int | None, gop: int, maxrate_kbps: int | None, x264_preset: str
) -> list[str]:
    """Encoder arguments at constant quality ``crf`` (the codec's default when None),
    capped at ``maxrate_kbps`` with a two-second buffer where the encoder can cap."""
    codec = VIDEO[video_codec]
    quality = codec.crf_default if crf is None else crf
    if video_codec == "h264":
        return x264_args(crf=quality, gop=gop, maxrate_kbps=maxrate_kbps, preset=x264_preset)
    args = ["-c:v", codec.encoder, "-crf", str(quality), "-g", str(gop), "-pix_fmt", "yuv420p"]
    args += list(codec.extra)
    if maxrate_kbps and codec.capped:
        if video_codec == "vp9":  # constrained quality: the target rate is the ceiling
            args += ["-b:v", f"{maxrate_kbps}k"]
        else:
            args += ["-maxrate", f"{maxrate_kbps}k", "-bufsize", f"{2 * maxrate_kbps}k"]
    elif video_codec == "vp9":
        args += ["-b:v", "0"]  # pure constant quality
    return args
