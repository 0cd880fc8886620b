"""audio.convert: an audio file as MP3, Ogg Vorbis, AAC (in M4A), Opus (in Ogg) or FLAC,
and its duration.

When the source already holds the target codec the stream is copied into the target
container (no generation loss, no encode time) unless ``force`` asks for a re-encode, or
``loudness`` asks for a level (two passes: ``dragon.media.loudness``). Video streams, cover
art included, are dropped. Encodes use good general-purpose settings: MP3 at 192 kbit/s,
Vorbis at quality 5 (about 160 kbit/s), AAC at 160 kbit/s, Opus at 128 kbit/s; FLAC is
lossless.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marshmallow import fields

from dragon.config import Settings
from dragon.media import loudness, probe
from dragon.media.ffmpeg import check_output, ffmpeg_argv, output_cap
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import Choice, Loudness, TaskSchema, Url

TASK_NAME = "audio.convert"
HEAVY = True

# codec parameter -> (ffprobe codec name, encoder args, muxer, extension, content type)
TARGETS = {
    "mp3": ("mp3", ["-c:a", "libmp3lame", "-b:a", "192k"], "mp3", "mp3", "audio/mpeg"),
    "vorbis": ("vorbis", ["-c:a", "libvorbis", "-q:a", "5"], "ogg", "ogg", "audio/ogg"),
    "aac": ("aac", ["-c:a", "aac", "-b:a", "160k"], "ipod", "m4a", "audio/mp4"),
    "opus": ("opus", ["-c:a", "libopus", "-b:a", "128k"], "ogg", "opus", "audio/ogg"),
    "flac": ("flac", ["-c:a", "flac"], "flac", "flac", "audio/flac"),
}
MAX_RATE = 48000  # loudnorm works at 192 kHz; outputs come back to the source's rate, at most this


class Schema(TaskSchema):
    url = Url(required=True)
    codec = Choice(list(TARGETS), load_default="mp3")
    force = fields.Boolean(load_default=False)
    loudness = Loudness()


def build_argv(
    info: probe.MediaInfo,
    codec: str,
    force: bool,
    out: Path,
    settings: Settings,
    audio_filter: str | None = None,
) -> list[str]:
    """Copy the first audio stream when it already is ``codec`` (unless ``force`` or an
    ``audio_filter``), else encode."""
    codec_name, encode, muxer, _, _ = TARGETS[codec]
    copy = info.audio_codec == codec_name and not force and audio_filter is None
    rate = str(min(info.sample_rate or MAX_RATE, MAX_RATE))
    filtered = ["-af", audio_filter, "-ar", rate] if audio_filter else []
    return ffmpeg_argv(
        *probe.input_args(info),
        "-map",
        "0:a:0",
        "-vn",
        "-sn",
        "-dn",
        *(["-c:a", "copy"] if copy else encode),
        *filtered,
        *(["-movflags", "+faststart"] if muxer == "ipod" else []),
        *output_cap(settings),
        "-f",
        muxer,
        str(out),
    )


async def run(ctx: TaskContext) -> dict[str, Any]:
    _, _, _, ext, content_type = TARGETS[ctx.params["codec"]]
    info = await probe.fetch_source(ctx, ctx.params["url"], "audio")

    out = ctx.tmpdir / f"output.{ext}"
    target = ctx.params["loudness"]
    audio_filter = None if target is None else await loudness.normaliser(ctx, info, target)
    argv = build_argv(
        info, ctx.params["codec"], ctx.params["force"], out, ctx.settings, audio_filter
    )
    await ctx.run(argv, progress_duration=info.duration)
    check_output(out, ctx.settings)
    result = await probe.probe_path(ctx, out, content_type)
    await ctx.output("output", out, content_type)
    return {
        "duration": round(result.duration, 2) if result.duration is not None else None,
        "content_type": content_type,
    }
