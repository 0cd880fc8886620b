"""Adaptive streaming: an HLS or DASH ladder of renditions from one decode.

Why one ffmpeg run: the source is decoded once and ``split`` feeds every rendition's scaler
and encoder, so a three-rung ladder costs the encodes and one decode instead of three
decodes, and each rung is scaled from the one above it rather than from the source
(``scripts/bench_outputs.py`` measures it against three separate runs). Every
rendition gets a keyframe at the same instants (a fixed GOP, no scene-cut keyframes, and a
forced keyframe at each segment boundary), so a player can switch between renditions at
any segment boundary. Audio is encoded once: HLS carries it as its own rendition group
that every video rendition refers to, DASH as its own adaptation set.

The default ladder never upscales: the highest rungs at or below the source's height, at
most three of them (a source under 240 lines gets one rendition at its own height).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from dragon.config import Settings
from dragon.media import probe
from dragon.media.ffmpeg import decoder_guard, ffmpeg_argv, x264_preset
from dragon.runtime.processes import ProcessResult

# (height, video kbit/s): the rungs of the default ladder, and the bitrate for a rendition
# that names only its height (the nearest rung's, scaled by the pixel count).
LADDER = ((1080, 5000), (720, 2800), (480, 1400), (360, 800), (240, 400))
DEFAULT_RUNGS = 3
MAX_RENDITIONS = 6
SEGMENT_SECONDS = 4
FRAMES_PER_SECOND_GUESS = 30.0  # for the GOP when the source does not say its rate

MASTER = {"hls": "master.m3u8", "dash": "manifest.mpd"}
CONTENT_TYPES = {
    "hls": "application/vnd.apple.mpegurl",
    "dash": "application/dash+xml",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
}


@dataclasses.dataclass(frozen=True)
class Rendition:
    height: int
    bitrate: int  # video, kbit/s

    @property
    def name(self) -> str:
        return f"{self.height}p"

    def width(self, display: tuple[int, int]) -> int:
        """The width ``scale=-2:height`` gives a source of ``display`` size."""
        return max(2, round(self.height * display[0] / display[1] / 2) * 2)


def bitrate_for(height: int) -> int:
    """A video bitrate for ``height`` lines: the nearest rung's, scaled by the pixels."""
    rung_height, rung_rate = min(LADDER, key=lambda r: abs(r[0] - height))
    return max(100, round(rung_rate * (height / rung_height) ** 2))


def ladder(
    source_height: int, asked: list[tuple[int, int | None]] | None
) -> tuple[list[Rendition], list[str]]:
    """The renditions to make, tallest first, and warnings for the ones left out.

    ``asked`` is the request's ``(height, bitrate or None)`` list; None means the default
    ladder. A rendition taller than the source is not made (upscaling adds bytes, not
    detail); if that leaves none, the source's own height is made."""
    even_source = max(2, source_height - source_height % 2)
    if asked is None:
        rungs = [Rendition(h, r) for h, r in LADDER if h <= source_height][:DEFAULT_RUNGS]
        return rungs or [Rendition(even_source, bitrate_for(even_source))], []
    made, warnings = [], []
    for height, rate in asked:
        if height > source_height:
            warnings.append(
                f"the {height}p rendition is taller than the source ({source_height} lines):"
                " not made"
            )
            continue
        rendition = Rendition(height - height % 2, rate or bitrate_for(height))
        if rendition not in made:
            made.append(rendition)
    if not made:
        made = [Rendition(even_source, bitrate_for(even_source))]
    return sorted(made, key=lambda r: -r.height), warnings


def gop(info: probe.MediaInfo) -> int:
    """Frames per segment: every segment starts on a keyframe of every rendition."""
    rate = info.frame_rate or FRAMES_PER_SECOND_GUESS
    return max(1, round(rate * SEGMENT_SECONDS))


def argv(
    info: probe.MediaInfo,
    renditions: list[Rendition],
    kind: str,
    folder: Path,
    settings: Settings,
    *,
    audio_bitrate: int = 128,
    sample_rate: int = 48000,
    audio_filter: str | None = None,
) -> list[str]:
    """The one ffmpeg run writing the ladder into ``folder``: ``MASTER[kind]`` and the
    playlists and segments it refers to, by paths relative to it."""
    display = probe.require_video(info)
    args = [
        *decoder_guard(settings),
        *probe.input_args(info),
        "-filter_complex",
        scale_graph(renditions, display),
    ]
    for i, rendition in enumerate(renditions):
        args += ["-map", f"[v{i}]", f"-b:v:{i}", f"{rendition.bitrate}k"]
        args += [f"-maxrate:v:{i}", f"{round(rendition.bitrate * 1.07)}k"]
        args += [f"-bufsize:v:{i}", f"{round(rendition.bitrate * 1.5)}k"]
    frames = gop(info)
    args += ["-c:v", "libx264", "-preset", x264_preset(settings), "-pix_fmt", "yuv420p"]
    args += ["-g", str(frames), "-keyint_min", str(frames), "-sc_threshold", "0"]
    args += ["-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT_SECONDS})"]
    if info.has_audio:
        args += ["-map", "0:a:0", "-c:a", "aac", "-b:a", f"{audio_bitrate}k"]
        args += ["-ar", str(sample_rate), "-ac", "2"]
        if audio_filter:
            args += ["-af", audio_filter]
    args += ["-sn", "-dn", "-map_chapters", "-1"]
    if kind == "hls":
        args += _hls(renditions, info.has_audio, folder)
    else:
        args += _dash(info.has_audio, folder)
    return ffmpeg_argv(*args)


def scale_graph(renditions: list[Rendition], display: tuple[int, int]) -> str:
    """The filter graph from the decoded source to ``[v0]``, ``[v1]``...: a cascade, each
    rendition scaled from the one above it (``renditions`` are tallest first).

    Why a cascade: scaling 720 lines to 480 reads under half the pixels of scaling 1080 to
    480, and on a 1080p source the 1080p rung is no scale at all; next to the encodes this
    is the part of the ladder's work that sharing can still shrink, after the decode."""
    # Even widths round the aspect a little differently per height; one display aspect for
    # every rendition is what lets a DASH adaptation set (and a player) switch between them.
    dar = f"{display[0]}/{display[1]}"
    chains, above = [], "[0:V:0]"
    for i, rendition in enumerate(renditions):
        # The width named, not derived from the rung above (whose even width is rounded).
        size = f"{rendition.width(display)}:{rendition.height}"
        chain = f"{above}scale={size},setdar={dar}"
        if i == len(renditions) - 1:
            chains.append(f"{chain}[v{i}]")
        else:
            chains.append(f"{chain},split=2[v{i}][t{i}]")
            above = f"[t{i}]"
    return ";".join(chains)


def _hls(renditions: list[Rendition], audio: bool, folder: Path) -> list[str]:
    videos = [
        f"v:{i},{'agroup:audio,' if audio else ''}name:{r.name}" for i, r in enumerate(renditions)
    ]
    streams = (["a:0,agroup:audio,name:audio"] if audio else []) + videos
    return [
        "-f",
        "hls",
        "-hls_time",
        str(SEGMENT_SECONDS),
        "-hls_playlist_type",
        "vod",
        "-hls_flags",
        "independent_segments",
        "-hls_segment_type",
        "mpegts",
        "-master_pl_name",
        MASTER["hls"],
        "-hls_segment_filename",
        f"{folder}/%v/segment_%03d.ts",
        "-var_stream_map",
        " ".join(streams),
        f"{folder}/%v/playlist.m3u8",  # the master goes beside the %v folders
    ]


def _dash(audio: bool, folder: Path) -> list[str]:
    sets = "id=0,streams=v" + (" id=1,streams=a" if audio else "")
    return [
        "-f",
        "dash",
        "-seg_duration",
        str(SEGMENT_SECONDS),
        "-use_template",
        "1",
        "-use_timeline",
        "0",
        "-adaptation_sets",
        sets,
        "-init_seg_name",
        "init-$RepresentationID$.m4s",
        "-media_seg_name",
        "chunk-$RepresentationID$-$Number%05d$.m4s",
        str(folder / MASTER["dash"]),
    ]


def content_type(name: str) -> str:
    """The content type of a file of the ladder, by its suffix."""
    suffix = name[name.rfind(".") :]
    return CONTENT_TYPES.get(suffix, "application/octet-stream")


class MakesLadders(Protocol):
    """What of a running task ``make`` uses (``TaskContext`` is one)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def tmpdir(self) -> Path: ...

    def warn(self, message: str) -> None: ...

    async def run(
        self, argv: list[str], *, progress_duration: float | None = None
    ) -> ProcessResult: ...

    async def output_tree(
        self, name: str, folder: Path, main: str, content_type: Callable[[str], str]
    ) -> dict[str, str]: ...


def asked(renditions: list[dict[str, Any]] | None) -> list[tuple[int, int | None]] | None:
    """The ``renditions`` parameter as ``ladder`` takes it."""
    if renditions is None:
        return None
    return [(r["height"], r.get("bitrate")) for r in renditions]


async def make(
    ctx: MakesLadders,
    info: probe.MediaInfo,
    kind: str,
    wanted: list[tuple[int, int | None]] | None,
    *,
    name: str = "output",
    audio_bitrate: int = 128,
    sample_rate: int = 48000,
    audio_filter: str | None = None,
) -> dict[str, Any]:
    """Make the ladder of ``info`` in one ffmpeg run and store it as one tree: result
    ``name`` is its master playlist (or manifest); the rest describes the renditions."""
    display = probe.require_video(info)
    renditions, warnings = ladder(display[1], wanted)
    for warning in warnings:
        ctx.warn(warning)
    folder = ctx.tmpdir / f"{name}-ladder"
    folder.mkdir()
    command = argv(
        info,
        renditions,
        kind,
        folder,
        ctx.settings,
        audio_bitrate=audio_bitrate,
        sample_rate=sample_rate,
        audio_filter=audio_filter,
    )
    await ctx.run(command, progress_duration=info.duration)
    urls = await ctx.output_tree(name, folder, MASTER[kind], content_type)
    listed = []
    for rendition in renditions:
        entry: dict[str, Any] = {
            "name": rendition.name,
            "height": rendition.height,
            "width": rendition.width(display),
            "bitrate": rendition.bitrate,
        }
        if kind == "hls":
            entry["playlist"] = urls[f"{rendition.name}/playlist.m3u8"]
        listed.append(entry)
    return {
        "format": kind,
        "content_type": CONTENT_TYPES[kind],
        "duration": round(info.duration, 3) if info.duration is not None else None,
        "renditions": listed,
        "original_width": info.width,
        "original_height": info.height,
    }
