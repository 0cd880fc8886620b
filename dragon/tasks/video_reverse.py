"""video.reverse: the video played backwards, sound included, in flat memory.

Memory does not grow with the video's length, so long videos reverse too.

``video_bitrate`` caps the constant-quality (``crf``) encode; when omitted the cap is the
source's bitrate, as the API describes. The result is the video.info of the output.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from marshmallow import fields, validate

from dragon import errors
from dragon.config import Settings
from dragon.media import ffmpeg, probe
from dragon.tasks.context import TaskContext
from dragon.tasks.schema import Choice, Size, TaskSchema, Url
from dragon.tasks.video_info import info_values

TASK_NAME = "video.reverse"
HEAVY = True

# How the video is reversed in flat memory.
#
# ffmpeg's ``reverse``/``areverse`` filters hold the whole clip in memory (about 92 MB per
# second of 1080p30: 1920 x 1080 x 1.5 bytes x 30 frames). So the video is reversed in
# *parts* of ``k`` frames, as many decoded output frames as fit in ``SEGMENT_BYTES`` (at
# most ``MAX_PART_SECONDS``), and the reversed parts are joined last-first.
#
# Without paying for it twice: cutting the source into separately seeked segments decodes,
# for every segment, the frames between the previous keyframe and the cut (on a source
# with a keyframe every 8 s that cost 20 % more CPU than a single pass). Instead one
# ffmpeg process per *chunk* (``CHUNK_SECONDS``, a whole number of parts) decodes its
# frames once: ``split`` sends every frame to one ``trim`` per part, each part is reversed,
# ``concat`` plays the reversed parts in source order into a single H.264 encoder with a
# keyframe forced at each part's first frame, and the ``segment`` muxer writes each part to
# its own file. Only the part being filled is held: the others' trims drop the frame.
# Short videos are one chunk, so one decode and one encoder, as in a single pass.
#
# The sound of a chunk goes through its own small process (``asplit``/``atrim``/
# ``areverse``, one WAV per part, cut at the video parts' times): in the video process it
# would make ffmpeg read ahead for the later parts and hold their frames. Chunks are cut
# half a frame before a frame's timestamp (input ``-ss``/``-t``), so rounding cannot move
# a frame across a cut; parts are cut by frame number, so each frame appears once.
#
# One last process joins the parts with the concat demuxer, reading lists we wrote that
# name only our own part files (plain relative names, so the demuxer's ``safe`` mode stays
# on), copying the video and encoding the joined sound to AAC once (AAC per part would add
# encoder priming at every join).
SEGMENT_BYTES = 400 * 1024**2
MAX_PART_SECONDS = 10.0
MIN_FPS = 1.0
CHUNK_SECONDS = 60.0
AUDIO_BITRATE = "128k"


class Schema(TaskSchema):
    url = Url(required=True)
    width = Size(load_default=None, allow_none=True)
    height = Size(load_default=None, allow_none=True)
    crop = fields.Boolean(load_default=False)
    video_codec = Choice(["h264"], load_default="h264")
    video_bitrate = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=16, max=200_000)
    )
    crf = fields.Integer(load_default=23, validate=validate.Range(min=0, max=51))
    gop = fields.Integer(load_default=250, validate=validate.Range(min=1, max=1000))


@dataclasses.dataclass(frozen=True)
class Chunk:
    index: int
    start: float  # input seek, seconds
    length: float  # input duration, seconds (the last chunk: the declared rest + a frame)
    frames: int  # frames the chunk holds by the declared duration: never more are kept
    parts: int
    part_frames: int
    first_frame: float  # time of the chunk's first frame after the seek (0 or half a frame)
    fps: float

    def name(self, part: int, ext: str) -> str:
        return f"c{self.index:04d}_{part:03d}.{ext}"

    def audio_cuts(self) -> list[float]:
        """Where the sound of each part after the first begins, in the chunk's time."""
        return [self.first_frame + j * self.part_frames / self.fps for j in range(1, self.parts)]


def plan(
    duration: float,
    fps: float,
    size: tuple[int, int],
    budget: int = SEGMENT_BYTES,
    chunk_seconds: float | None = None,
) -> list[Chunk]:
    """Chunks in source order; each a whole number of ``k``-frame parts (the last: the rest).

    ``k`` is as many 4:2:0 frames of ``size`` as fit in ``budget``, at most
    ``MAX_PART_SECONDS``. Chunk cuts are at ``(i - 0.5) / fps`` for a first frame ``i``.
    """
    frame_bytes = size[0] * size[1] * 3 // 2
    k = max(1, min(budget // max(frame_bytes, 1), int(MAX_PART_SECONDS * fps)))
    per_chunk = k * max(1, int((chunk_seconds or CHUNK_SECONDS) * fps) // k)
    frames = max(1, round(duration * fps))
    chunks = []
    for index, first in enumerate(range(0, frames, per_chunk)):
        start = (first - 0.5) / fps if first else 0.0
        count = min(per_chunk, frames - first)
        # Each chunk ends half a frame before the next one's first frame. The last one too
        # reads only its declared frames (+ half a frame): a container that claims 0.5 s
        # but holds an hour cannot make ``reverse`` hold an hour of frames.
        last = first + count >= frames
        length = (first + count + (0.5 if last else -0.5)) / fps - start
        chunks.append(
            Chunk(index, start, length, count, math.ceil(count / k), k, first / fps - start, fps)
        )
    return chunks


def _source(info: probe.MediaInfo, chunk: Chunk, settings: Settings) -> list[str]:
    limit = ["-t", f"{chunk.length:.6f}"]
    return [*ffmpeg.decoder_guard(settings), *limit, *probe.input_args(info, seek=chunk.start)]


def video_argv(
    info: probe.MediaInfo,
    chunk: Chunk,
    vf: str,
    encode: list[str],
    folder: Path,
    settings: Settings,
) -> list[str]:
    """Reverse a chunk's video part by part into ``c<chunk>_<part>.mp4`` files."""
    chain = f"[0:V:0]{vf}," if vf else "[0:V:0]"
    k, m = chunk.part_frames, chunk.parts
    if m == 1:
        graph = f"{chain}trim=end_frame={chunk.frames},reverse,setpts=PTS-STARTPTS[v]"
        muxer = ["-f", "mp4", str(folder / chunk.name(0, "mp4"))]
    else:
        graph = chain + f"split={m}" + "".join(f"[s{j}]" for j in range(m))
        for j in range(m):
            end = f":end_frame={min((j + 1) * k, chunk.frames)}"
            graph += f";[s{j}]trim=start_frame={j * k}{end},reverse,setpts=PTS-STARTPTS[r{j}]"
        graph += ";" + "".join(f"[r{j}]" for j in range(m)) + f"concat=n={m}:v=1:a=0[v]"
        muxer = [
            "-force_key_frames",
            f"expr:eq(mod(n,{k}),0)",
            # Let each part's MP4 handle the B-frame delay with an edit list, as a
            # plain MP4 output does, instead of shifting the first part's timestamps.
            "-avoid_negative_ts",
            "disabled",
            "-f",
            "segment",
            "-segment_format",
            "mp4",
            "-reset_timestamps",
            "1",
            "-segment_frames",
            ",".join(str(j * k) for j in range(1, m)),
            str(folder / f"c{chunk.index:04d}_%03d.mp4"),
        ]
    return ffmpeg.ffmpeg_argv(
        *_source(info, chunk, settings),
        "-filter_complex",
        graph,
        "-map",
        "[v]",
        *encode,
        "-fps_mode",
        "passthrough",
        "-an",
        "-sn",
        "-dn",
        *muxer,
    )


def audio_argv(info: probe.MediaInfo, chunk: Chunk, folder: Path, settings: Settings) -> list[str]:
    """Reverse a chunk's sound part by part into ``c<chunk>_<part>.wav`` files."""
    m = chunk.parts
    cuts = [0.0, *chunk.audio_cuts(), chunk.length]
    if m == 1:
        graph = f"[0:a:0]atrim=end={chunk.length:.6f},areverse,asetpts=PTS-STARTPTS[a0]"
    else:
        graph = f"[0:a:0]asplit={m}" + "".join(f"[t{j}]" for j in range(m))
        for j in range(m):
            end = f":end={cuts[j + 1]:.6f}"
            graph += f";[t{j}]atrim=start={cuts[j]:.6f}{end},areverse,asetpts=PTS-STARTPTS[a{j}]"
    outputs = []
    for j in range(m):
        outputs += [
            "-map",
            f"[a{j}]",
            "-c:a",
            "pcm_s16le",
            "-f",
            "wav",
            str(folder / chunk.name(j, "wav")),
        ]
    return ffmpeg.ffmpeg_argv(*_source(info, chunk, settings), "-filter_complex", graph, *outputs)


def concat_argv(
    video_list: Path, audio_list: Path | None, out: Path, settings: Settings
) -> list[str]:
    """Join the reversed parts (lists of our own files) into the final MP4."""
    guard = [
        "-protocol_whitelist",
        "file,pipe",
        "-format_whitelist",
        "concat,mov,wav",
        "-f",
        "concat",
    ]
    args = [*guard, "-i", str(video_list)]
    maps = ["-map", "0:v:0", "-c:v", "copy"]
    if audio_list is not None:
        args += [*guard, "-i", str(audio_list)]
        maps += ["-map", "1:a:0", "-c:a", "aac", "-b:a", AUDIO_BITRATE]
    return ffmpeg.ffmpeg_argv(
        *args,
        *maps,
        "-movflags",
        "+faststart",
        *ffmpeg.output_cap(settings),
        "-f",
        "mp4",
        str(out),
    )


def write_list(path: Path, names: list[str]) -> None:
    lines = ["ffconcat version 1.0", *(f"file '{name}'" for name in names)]
    path.write_text("\n".join(lines) + "\n")


def reversed_parts(folder: Path, chunks: list[Chunk], ext: str, header: int = 0) -> list[str]:
    """Part files last-first; a part left empty (the source's estimated end) is skipped."""
    names = [c.name(j, ext) for c in reversed(chunks) for j in reversed(range(c.parts))]
    return [n for n in names if (folder / n).exists() and (folder / n).stat().st_size > header]


async def run(ctx: TaskContext) -> dict[str, Any]:
    p = ctx.params
    info = await probe.fetch_source(ctx, p["url"], "video")
    if not info.duration:
        raise errors.TaskError(errors.INVALID_MEDIA, "the video's duration is unknown")
    if info.frame_rate is not None and info.frame_rate < MIN_FPS:
        # Parts are cut in frames; below this one part's sound would be minutes long and
        # ``areverse`` holds a part's sound in memory.
        raise errors.TaskError(
            errors.UNSUPPORTED_MEDIA,
            f"the video has {info.frame_rate:g} frames per second; reversing"
            f" needs at least {MIN_FPS:g}",
        )

    src = probe.require_video(info)
    size = ffmpeg.video_size(src, p["width"], p["height"], p["crop"])
    ffmpeg.check_size(*size, ctx.settings)
    vf = ffmpeg.resize_filter(src, size, p["crop"])
    maxrate = p["video_bitrate"] or (info.bit_rate // 1000 if info.bit_rate else None)
    encode = ffmpeg.x264_args(
        crf=p["crf"], gop=p["gop"], maxrate_kbps=maxrate, preset=ffmpeg.x264_preset(ctx.settings)
    )
    budget = int(ctx.settings.reverse_segment_bytes)
    chunks = plan(info.duration, info.frame_rate or 25.0, size, budget)

    folder = ctx.tmpdir
    for chunk in chunks:
        await ctx.run(
            video_argv(info, chunk, vf, encode, folder, ctx.settings),
            progress_duration=info.duration if len(chunks) == 1 else None,
        )
        if info.has_audio:
            await ctx.run(audio_argv(info, chunk, folder, ctx.settings))
        ctx.progress(95.0 * (chunk.index + 1) / len(chunks))

    videos = reversed_parts(folder, chunks, "mp4")
    if not videos:
        raise errors.TaskError(errors.INVALID_MEDIA, "no video frame could be decoded")
    write_list(folder / "video.ffconcat", videos)
    audio_list = None
    if info.has_audio and (audios := reversed_parts(folder, chunks, "wav", header=44)):
        audio_list = folder / "audio.ffconcat"
        write_list(audio_list, audios)
    out = folder / "output.mp4"
    await ctx.run(concat_argv(folder / "video.ffconcat", audio_list, out, ctx.settings))
    ffmpeg.check_output(out, ctx.settings)
    result = await probe.probe_path(ctx, out, "video/mp4")
    await ctx.output("output", out, "video/mp4")
    return info_values(result)
