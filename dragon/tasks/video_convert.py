"""video.convert: an H.264 file at a chosen size and quality, and its video.info values.

Containers: MP4 (``+faststart``, playable while downloading) for the ``aac`` and ``mp3``
audio codecs; MPEG-TS for ``mp2`` (in MP4, MPEG-1 Layer II shares MP3's object type and
every reader, ffprobe included, reports it as MP3; H.264 + MP2 in TS is the broadcast
pairing); ASF (``.wmv``, ``video/x-ms-asf``) for ``wmav1``/``wmav2``, the container those
codecs were made for and the one Windows players expect them in.

Quality: ``crf`` sets a constant quality and ``video_bitrate`` (kbit/s) caps it
(``-maxrate`` with a two-second buffer), so simple videos stay small and none exceeds
the requested rate by much. Rotated sources come out upright: ffmpeg turns the frames
before the filters, so sizes are computed on the upright (display) size.
The result is the video.info of the output itself (probed), plus the source's stored
``original_width``/``original_height``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marshmallow import fields, validate

from dragon.config import Settings
from dragon.media import ffmpeg, probe
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import Choice, Size, TaskSchema, Url
from dragon.tasks.video_info import info_values

TASK_NAME = "video.convert"
HEAVY = True

# audio_codec -> (encoder, muxer, extension, content type, most channels)
AUDIO = {
    "aac": ("aac", "mp4", "mp4", "video/mp4", 8),
    "mp3": ("libmp3lame", "mp4", "mp4", "video/mp4", 2),
    "mp2": ("mp2", "mpegts", "ts", "video/mp2t", 2),
    "wmav1": ("wmav1", "asf", "wmv", "video/x-ms-asf", 2),
    "wmav2": ("wmav2", "asf", "wmv", "video/x-ms-asf", 2),
}


class Schema(TaskSchema):
    url = Url(required=True)
    width = Size(load_default=None, allow_none=True)
    height = Size(load_default=None, allow_none=True)
    crop = fields.Boolean(load_default=False)
    audio_codec = Choice(list(AUDIO), load_default="aac")
    video_codec = Choice(["h264"], load_default="h264")
    video_bitrate = fields.Integer(load_default=3000, validate=validate.Range(min=16, max=200_000))
    audio_bitrate = fields.Integer(load_default=128, validate=validate.Range(min=8, max=512))
    sample_rate = fields.Integer(load_default=44100, validate=validate.OneOf([22050, 44100, 48000]))
    crf = fields.Integer(load_default=23, validate=validate.Range(min=0, max=51))
    gop = fields.Integer(load_default=250, validate=validate.Range(min=1, max=1000))


def build_argv(
    info: probe.MediaInfo, params: dict[str, Any], out: Path, settings: Settings
) -> tuple[list[str], str]:
    """The one encode: argv and the output content type."""
    encoder, muxer, _, content_type, max_channels = AUDIO[params["audio_codec"]]
    src = probe.require_video(info)
    size = ffmpeg.video_size(src, params.get("width"), params.get("height"), params["crop"])
    ffmpeg.check_size(*size, settings)
    vf = ffmpeg.resize_filter(src, size, params["crop"])
    args = [*ffmpeg.decoder_guard(settings), *probe.input_args(info), "-map", "0:V:0"]
    if vf:
        args += ["-vf", vf]
    args += ffmpeg.x264_args(
        crf=params["crf"],
        gop=params["gop"],
        maxrate_kbps=params["video_bitrate"],
        preset=ffmpeg.x264_preset(settings),
    )
    if info.has_audio:
        args += [
            "-map",
            "0:a:0",
            "-c:a",
            encoder,
            "-b:a",
            f"{params['audio_bitrate']}k",
            "-ar",
            str(params["sample_rate"]),
        ]
        if (info.channels or 0) > max_channels:
            args += ["-ac", str(max_channels)]
    else:
        args += ["-an"]
    args += ["-sn", "-dn", "-map_chapters", "-1"]
    if muxer == "mp4":
        args += ["-movflags", "+faststart"]
    args += [*ffmpeg.output_cap(settings), "-f", muxer, str(out)]
    return ffmpeg.ffmpeg_argv(*args), content_type


async def run(ctx: TaskContext) -> dict[str, Any]:
    info = await probe.fetch_source(ctx, ctx.params["url"], "video")
    ext = AUDIO[ctx.params["audio_codec"]][2]
    out = ctx.tmpdir / f"output.{ext}"
    argv, content_type = build_argv(info, ctx.params, out, ctx.settings)
    await ctx.run(argv, progress_duration=info.duration)
    ffmpeg.check_output(out, ctx.settings)
    result = await probe.probe_path(ctx, out, content_type)
    await ctx.output("output", out, content_type)
    return {
        **info_values(result),
        "original_width": info.width,
        "original_height": info.height,
    }
