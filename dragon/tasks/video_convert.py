"""video.convert: a video file at a chosen size, codec and quality, and its video.info values.

Video codecs: H.264 by default, or HEVC, VP9 or AV1 (``video_codec``, or ``codec`` for
short; ``dragon.media.codecs`` has their quality scales and the containers that carry
them). With one of those, ``container`` (``mp4``, ``webm``, ``mkv``) and ``audio_codec``
(``aac``, ``mp3``, ``opus``, ``flac``) may be named; what is left open is chosen to fit.

The older audio codecs bring their own containers: MPEG-TS for ``mp2`` (in MP4, MPEG-1
Layer II shares MP3's object type and every reader, ffprobe included, reports it as MP3;
H.264 + MP2 in TS is the broadcast pairing); ASF (``.wmv``, ``video/x-ms-asf``) for
``wmav1``/``wmav2``, the container those codecs were made for and the one Windows players
expect them in. MP4 is written with ``+faststart`` (playable while downloading).

Quality: ``crf`` sets a constant quality and ``video_bitrate`` (kbit/s) caps it
(``-maxrate`` with a two-second buffer; VP9's constrained quality), so simple videos stay
small and none exceeds the requested rate by much (AV1 is not capped). ``loudness`` brings
the audio to a level in two passes (``dragon.media.loudness``). ``watermark`` draws a logo
(``dragon.media.watermark``) and ``subtitles`` burns the cues of an SRT or WebVTT file
(``dragon.media.subtitles``) into the picture, both at the output's size. Rotated sources come out
upright: ffmpeg turns the frames before the filters, so sizes are computed on the upright
(display) size. The result is the video.info of the output itself (probed), plus the
source's stored ``original_width``/``original_height``.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from dragon.config import Settings
from dragon.media import codecs, ffmpeg, image, loudness, probe, streaming, subtitles, watermark
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import (
    Choice,
    Loudness,
    Renditions,
    Size,
    StreamFormat,
    TaskSchema,
    Url,
    Watermark,
)
from dragon.tasks.video_info import info_values

TASK_NAME = "video.convert"
HEAVY = True

# audio_codec -> (encoder, most channels)
AUDIO = {
    "aac": ("aac", 8),
    "mp3": ("libmp3lame", 2),
    "opus": ("libopus", 8),
    "flac": ("flac", 8),
    "mp2": ("mp2", 2),
    "wmav1": ("wmav1", 2),
    "wmav2": ("wmav2", 2),
}
# The older codecs' own containers: (muxer, extension, content type); H.264 video only.
LEGACY = {
    "mp2": ("mpegts", "ts", "video/mp2t"),
    "wmav1": ("asf", "wmv", "video/x-ms-asf"),
    "wmav2": ("asf", "wmv", "video/x-ms-asf"),
}


class Schema(TaskSchema):
    url = Url(required=True)
    width = Size(load_default=None, allow_none=True)
    height = Size(load_default=None, allow_none=True)
    crop = fields.Boolean(load_default=False)
    audio_codec = Choice(list(AUDIO), load_default=None)
    video_codec = Choice(list(codecs.VIDEO), load_default=None)
    codec = Choice(list(codecs.VIDEO), load_default=None, metadata={"description": "video_codec"})
    container = Choice(list(codecs.CONTAINERS), load_default=None)
    video_bitrate = fields.Integer(load_default=3000, validate=validate.Range(min=16, max=200_000))
    audio_bitrate = fields.Integer(load_default=128, validate=validate.Range(min=8, max=512))
    sample_rate = fields.Integer(load_default=44100, validate=validate.OneOf([22050, 44100, 48000]))
    crf = fields.Integer(
        load_default=None,
        validate=validate.Range(min=0, max=63),
        metadata={"description": "0 (best) to 51 for h264 and hevc, to 63 for vp9 and av1"},
    )
    gop = fields.Integer(load_default=250, validate=validate.Range(min=1, max=1000))
    loudness = Loudness()
    watermark = Watermark()
    subtitles = Url(
        load_default=None,
        allow_none=True,
        metadata={"description": "an SRT or WebVTT file whose cues are burned into the picture"},
    )
    format = StreamFormat("an adaptive streaming ladder (output: its playlist)")
    renditions = Renditions()

    @validates_schema
    def _ladder(self, data: dict[str, Any], **_: Any) -> None:
        """A ladder is H.264 and AAC (what every HLS and DASH player plays), drawn as the
        source is."""
        if data.get("format", "file") == "file":
            if data.get("renditions"):
                raise ValidationError("renditions need format hls or dash", "renditions")
            return
        for field, allowed in (("video_codec", "h264"), ("codec", "h264"), ("audio_codec", "aac")):
            if data.get(field) not in (None, allowed):
                raise ValidationError(f"{data['format']} ladders are {allowed}", field)
        for field in ("container", "watermark", "subtitles"):
            if data.get(field) is not None:
                raise ValidationError(f"not available with format {data['format']}", field)

    @validates_schema
    def _output(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("codec") and data.get("video_codec") and data["codec"] != data["video_codec"]:
            raise ValidationError("codec and video_codec name different codecs", "codec")
        plan = output_plan(data)
        if isinstance(plan, str):
            raise ValidationError(plan, "container")
        problem = codecs.crf_problem(plan[0], data.get("crf"))
        if problem:
            raise ValidationError(problem, "crf")


def output_plan(params: dict[str, Any]) -> tuple[str, str, tuple[str, str, str]] | str:
    """``(video codec, audio codec, (muxer, extension, content type))``, or what is wrong."""
    video = params.get("video_codec") or params.get("codec") or "h264"
    audio, container = params.get("audio_codec"), params.get("container")
    if audio in LEGACY:
        if video != "h264" or container:
            return f"audio_codec {audio} comes in its own container, with h264 video only"
        return video, audio, LEGACY[audio]
    planned = codecs.plan(video, audio, container)
    if isinstance(planned, str):
        return planned
    container = codecs.CONTAINERS[planned[0]]
    return video, planned[1], (container.muxer, container.extension, container.content_type)


@dataclasses.dataclass(frozen=True)
class Overlays:
    """What is drawn over the picture: a logo PNG this server wrote, with its place, and
    whether the cleaned subtitles (``subtitles.FILENAME`` in the tmpdir) are burned in."""

    logo: tuple[Path, int, int] | None = None
    subtitles: bool = False


def output_size(
    info: probe.MediaInfo, params: dict[str, Any], settings: Settings
) -> tuple[int, int]:
    src = probe.require_video(info)
    size = ffmpeg.video_size(src, params.get("width"), params.get("height"), params["crop"])
    ffmpeg.check_size(*size, settings)
    return size


def picture_args(
    info: probe.MediaInfo, params: dict[str, Any], settings: Settings, overlays: Overlays
) -> list[str]:
    """The inputs and the picture's filters: resize, then subtitles, then the logo on top."""
    src = probe.require_video(info)
    size = output_size(info, params, settings)
    chain = [ffmpeg.resize_filter(src, size, params["crop"])]
    if overlays.subtitles:
        chain.append(subtitles.burn_filter())
    steps = ",".join(f for f in chain if f)
    args = [*ffmpeg.decoder_guard(settings), *probe.input_args(info)]
    if overlays.logo is None:
        return [*args, "-map", "0:V:0", *(["-vf", steps] if steps else [])]
    path, x, y = overlays.logo
    logo = ["-protocol_whitelist", "file", "-format_whitelist", "png_pipe", "-f", "png_pipe"]
    graph = f"[0:V:0]{steps or 'null'}[base];[1:v]format=rgba[logo];[base][logo]overlay={x}:{y}[v]"
    return [*args, *logo, "-i", str(path), "-filter_complex", graph, "-map", "[v]"]


def build_argv(
    info: probe.MediaInfo,
    params: dict[str, Any],
    out: Path,
    settings: Settings,
    audio_filter: str | None = None,
    overlays: Overlays = Overlays(),
) -> tuple[list[str], str]:
    """The one encode: argv and the output content type."""
    plan = output_plan(params)
    assert not isinstance(plan, str), plan  # the schema refused it
    video_codec, audio_codec, (muxer, _, content_type) = plan
    encoder, max_channels = AUDIO[audio_codec]
    args = picture_args(info, params, settings, overlays)
    args += codecs.video_args(
        video_codec,
        crf=params["crf"],
        gop=params["gop"],
        maxrate_kbps=params["video_bitrate"],
        x264_preset=ffmpeg.x264_preset(settings),
    )
    if info.has_audio:
        # Opus runs at 48 kHz only; FLAC is lossless (no bitrate).
        rate = 48000 if audio_codec == "opus" else params["sample_rate"]
        args += ["-map", "0:a:0", "-c:a", encoder, "-ar", str(rate)]
        if audio_codec != "flac":
            args += ["-b:a", f"{params['audio_bitrate']}k"]
        if audio_filter:
            args += ["-af", audio_filter]
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
    target = ctx.params["loudness"]
    audio_filter = None
    if target is not None and info.has_audio:
        audio_filter = await loudness.normaliser(ctx, info, target)
    p = ctx.params
    if p["format"] != "file":
        return await streaming.make(
            ctx,
            info,
            p["format"],
            streaming.asked(p["renditions"]),
            audio_bitrate=p["audio_bitrate"],
            sample_rate=p["sample_rate"],
            audio_filter=audio_filter,
        )
    plan = output_plan(ctx.params)
    assert not isinstance(plan, str), plan  # the schema refused it
    out = ctx.tmpdir / f"output.{plan[2][1]}"
    overlays = await prepare_overlays(ctx, info)
    argv, content_type = build_argv(info, ctx.params, out, ctx.settings, audio_filter, overlays)
    await ctx.run(argv, progress_duration=info.duration)
    ffmpeg.check_output(out, ctx.settings)
    result = await probe.probe_path(ctx, out, content_type)
    await ctx.output("output", out, content_type)
    return {
        **info_values(result),
        "original_width": info.width,
        "original_height": info.height,
    }


async def prepare_overlays(ctx: TaskContext, info: probe.MediaInfo) -> Overlays:
    """Fetch and prepare the logo and the subtitles (in the process pool: both parse
    untrusted files)."""
    logo = None
    spec: watermark.Watermark | None = ctx.params["watermark"]
    if spec is not None:
        download = await ctx.fetch(spec.url)
        source = image.Source(str(download.path), spec.url, download.mime)
        dest = ctx.tmpdir / "watermark.png"
        size = output_size(info, ctx.params, ctx.settings)
        place = await ctx.in_process(
            functools.partial(
                watermark.write, source, spec, size, str(dest), ctx.settings.max_pixels
            )
        )
        logo = (dest, *place)
    burn = ctx.params["subtitles"] is not None
    if burn:
        download = await ctx.fetch(ctx.params["subtitles"], max_bytes=subtitles.MAX_BYTES)
        dest = ctx.tmpdir / subtitles.FILENAME
        await ctx.in_process(functools.partial(subtitles.write, str(download.path), str(dest)))
    return Overlays(logo, burn)
