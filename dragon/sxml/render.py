"""video.create from start to finish: definition, media, timing, pictures, ffmpeg, outputs.

1. Parse and check the definition (``parse.py``); its warnings go to the result.
2. Download every media URL once (``ctx.fetch``, a few at a time) and probe videos and
   audio (``dragon.media.probe``: sniffed type, forced demuxer, metadata limits).
3. Resolve the timing (``timing.py``) with the probed lengths; too long, or too costly to
   render (``cost.py``), is refused. With ``sync="beats"`` the music's beats are tracked
   (while the export's pictures are drawn) and the synced cuts snapped to them
   (``beatsync.py``); then ducked stretches are measured (``ducking.py``).
4. For each rendering (the preview, then the export): draw stills and texts with Pillow
   (``assets.py``), build one filtergraph (``picture.py`` + ``sound.py``) written to a
   ``-filter_complex_script`` file, and run one ffmpeg that encodes the profile.
5. Publish the preview as a partial result as soon as it exists, then the export (with
   ``progress`` from ffmpeg) and its thumbnail, a frame of the same run.

The preview is the same graph built at a height of at most 240 lines with x264's
``ultrafast`` preset: for a 360p export it costs about a third of the export itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from dragon import errors
from dragon.media import beats, ffmpeg, loudness, probe, streaming, subtitles
from dragon.media.pcm import pcm_argv, run_in_pool
from dragon.media.probe import MediaInfo
from dragon.net.fetcher import Download
from dragon.runtime import processes
from dragon.sxml import (
    assets,
    beatsync,
    cost,
    ducking,
    maps,
    profiles,
    segments,
    sound,
    speech,
)
from dragon.sxml.concurrent import gather, pair
from dragon.sxml.context import MovieTask, Warn
from dragon.sxml.filtergraph import Graph
from dragon.sxml.model import DefinitionError, Node
from dragon.sxml.parse import Definition, DefinitionErrors, parse
from dragon.sxml.picture import Picture
from dragon.sxml.stills import Raster, StillJob
from dragon.sxml.text import TextJob
from dragon.sxml.timing import resolve

FETCH_CONCURRENCY = 4
PROBE_CONCURRENCY = 4
CRF = 23
PREVIEW_CRF = 28
PREVIEW_PRESET = "ultrafast"
THUMBNAIL_QUALITY = "3"  # ffmpeg's JPEG qscale: 2 (best) to 31


class Movie:
    """A checked, downloaded and timed definition, ready to be rendered at any size."""

    def __init__(
        self,
        definition: Definition,
        downloads: dict[str, Download],
        media: dict[str, MediaInfo],
        retime: Callable[[], None],
    ) -> None:
        self.body = definition.body
        self.retime = retime  # times the body again (after beat sync)
        self.downloads = downloads
        self.media = media
        self.ducked: list[ducking.Span] = []  # filled by ducking.plan

    @property
    def duration(self) -> float:
        return self.body.end


async def create(ctx: MovieTask) -> dict[str, Any]:
    p = ctx.params
    profile = profiles.get(p["profile"])
    if profile is None:  # the schema already refused it; kept for direct callers
        raise errors.ParameterError.one("profile", profiles.invalid_message(p["profile"]))
    ffmpeg.check_size(profile.width, profile.height, ctx.settings, "profile")
    warned: set[str] = set()

    def warn(message: str) -> None:
        if message not in warned:
            warned.add(message)
            ctx.warn(message)

    movie = await load(ctx, p["definition"], warn)
    check_cost(ctx, movie, profile, warn)
    drawn: dict[int, Raster | None] = {}
    if beatsync.synced(movie.body):
        # Pictures and texts do not depend on when they play: the export's are drawn while
        # the beats are tracked (render draws any that snapping made visible).
        jobs = plan_assets(ctx, movie, profile, "export")
        _, drawn = await pair(
            sync_to_beats(ctx, movie.body, movie.media, movie.retime, warn),
            assets.draw(ctx, jobs),
        )
    movie.ducked = await ducking.plan(ctx, movie.body, movie.media)
    duration = movie.duration
    if duration * profile.rate < 1:
        raise errors.ParameterError.one(
            "definition", f"the movie lasts {duration:g} s, less than one frame"
        )
    if p["preview"]:
        path = ctx.tmpdir / "preview.mp4"
        await render(
            ctx,
            movie,
            profile.preview(),
            "preview",
            warn,
            video=path,
            preset=PREVIEW_PRESET,
            crf=PREVIEW_CRF,
        )
        url = await ctx.output("preview", path, "video/mp4")
        await ctx.partial({"duration": round(duration, 3), "preview": url})
    thumbnail = ctx.tmpdir / "thumbnail.jpg"
    at = min(max(0.0, p["thumbnail_time"]), duration)
    export = ctx.tmpdir / "export.mp4" if p["export"] else None
    await render(
        ctx,
        movie,
        profile,
        "export",
        warn,
        video=export,
        thumbnail=(thumbnail, at),
        preset=ffmpeg.x264_preset(ctx.settings),
        crf=CRF,
        progress=export is not None,
        drawn=drawn,
    )
    delivered: dict[str, Any] = {}
    if export is not None:
        await check_length(ctx, export, duration, profile.rate)
        delivered = await deliver(ctx, export, profile)
    await ctx.output("thumbnail", thumbnail, "image/jpeg")
    return {
        "duration": round(duration, 3),
        "width": profile.width,
        "height": profile.height,
        **delivered,
    }


def check_cost(ctx: MovieTask, movie: Movie, profile: profiles.Profile, warn: Warn) -> None:
    """Refuse a movie estimated (``cost.py``) to render for longer than the setting allows,
    before anything is drawn; warn when it takes more than half of it."""
    bound = float(ctx.settings.video_create_max_render_seconds)
    renderings = [profile] if ctx.params["export"] else []
    if ctx.params["preview"]:
        renderings.append(profile.preview())
    seconds = cost.estimate(movie.body, [(r.width, r.height, r.rate) for r in renderings])
    if bound > 0 and seconds > bound:
        raise errors.ParameterError.one(
            "definition",
            f"rendering this movie would take about {seconds:.0f} s, more than the {bound:g} s"
            " allowed (DRAGON_VIDEO_CREATE_MAX_RENDER_SECONDS): make it shorter, use a smaller"
            " profile, or fewer layers and transitions",
        )
    if bound > 0 and seconds > bound / 2:
        warn(f"rendering this movie should take about {seconds:.0f} s of the {bound:g} s allowed")


async def deliver(ctx: MovieTask, export: Path, profile: profiles.Profile) -> dict[str, Any]:
    """Publish the export, finished first (``finish``), and with ``format`` hls or dash a
    streaming ladder of it too (result ``stream``, and its ``renditions``)."""
    p = ctx.params
    export = await finish(ctx, export, profile)
    await ctx.output("export", export, "video/mp4")
    kind = p.get("format", "file")
    if kind == "file":
        return {}
    info = await probe.probe_path(ctx, export, "video/mp4")
    ladder = await streaming.make(
        ctx,
        info,
        kind,
        streaming.asked(p.get("renditions")),
        name="stream",
        audio_bitrate=profile.audio_kbps,
    )
    return {"stream_format": kind, "renditions": ladder["renditions"]}


async def finish(ctx: MovieTask, export: Path, profile: profiles.Profile) -> Path:
    """The export with its captions burned in (``subtitles``: the picture encoded again)
    and its mix brought to ``loudness`` (the audio through the second loudnorm pass), in
    one ffmpeg run that copies whichever stream it leaves alone; the export itself when
    neither is asked."""
    p = ctx.params
    captions, target = p.get("subtitles"), p.get("loudness")
    if captions is None and target is None:
        return export
    info = await probe.probe_path(ctx, export, "video/mp4")
    audio_filter = None
    if target is not None and info.has_audio:
        audio_filter = await loudness.normaliser(ctx, info, target)
    if captions is None and audio_filter is None:
        return export
    video = ["-c:v", "copy"]
    if captions is not None:
        download = await ctx.fetch(captions)
        cues = ctx.tmpdir / subtitles.FILENAME
        await ctx.in_process(functools.partial(subtitles.write, str(download.path), str(cues)))
        video = [
            "-vf",
            subtitles.burn_filter(),
            *x264(profile, ffmpeg.x264_preset(ctx.settings), CRF),
        ]
    audio = ["-c:a", "copy"] if audio_filter is None else ["-af", audio_filter, *aac(profile)]
    finished = export.with_name("export-finished.mp4")
    argv = ffmpeg.ffmpeg_argv(
        *probe.input_args(info),
        *("-map", "0:v:0", *(["-map", "0:a:0"] if info.has_audio else [])),
        *video,
        *(audio if info.has_audio else []),
        *("-movflags", "+faststart", *ffmpeg.output_cap(ctx.settings)),
        *("-f", "mp4", str(finished)),
    )
    # No progress here: the render has reported up to 99 %, and this run is short.
    await ctx.run(argv, error_code=errors.PROCESS_FAILED)
    ffmpeg.check_output(finished, ctx.settings)
    return finished


async def check_length(ctx: MovieTask, path: Path, expected: float, rate: Fraction) -> None:
    """Refuse a render that came out shorter or longer than its timeline (by 2+ frames).

    A filtergraph that loses frames (ffmpeg 5.1's xfade and concat both can, on parts of
    a frame or two) would otherwise silently make a video of 2 s instead of 5; a clear
    failure is better.
    """
    # The video stream's own length: the container's would be the music's.
    out = await ctx.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=duration",
            "-of",
            "csv=p=0",
            *probe.path_input_args(path, "mov"),
        ],
        error_code=errors.PROCESS_FAILED,
    )
    try:
        length: float | None = float(out.stdout.decode().strip())
    except ValueError:
        length = None
    if length is None or abs(length - expected) > max(float(2 / rate), 0.1):
        got = "an unknown time" if length is None else f"{length:.2f} s"
        raise errors.TaskError(
            errors.PROCESS_FAILED, f"the rendered video lasts {got} instead of {expected:.2f} s"
        )


async def load(ctx: MovieTask, text: str, warn: Warn) -> Movie:
    """Parse, download, probe and time the definition."""
    try:
        definition: Definition = await ctx.in_thread(parse, text)
    except DefinitionErrors as e:
        raise errors.ParameterError({"definition": e.messages}) from None
    for message in definition.warnings:
        warn(message)
    downloads, media = await fetch_media(ctx, definition.media())

    def length(node: Node) -> float | None:
        info = media.get(node.attrs.get("filename", ""))
        return info.duration if info else None

    max_duration = float(ctx.settings.max_video_duration)

    def retime() -> None:
        try:
            for message in resolve(definition.body, length, max_duration=max_duration):
                warn(message)
        except DefinitionError as e:
            raise errors.ParameterError({"definition": [e.message]}) from None

    retime()
    return Movie(definition, downloads, media, retime)


async def sync_to_beats(
    ctx: MovieTask,
    body: Node,
    media: dict[str, MediaInfo],
    retime: Callable[[], None],
    warn: Warn,
) -> None:
    """``sync="beats"``: track the music's beats (in the process pool, as audio.beats
    does) and snap each synced sequence's cuts to them, timing the movie again after each."""
    track = beatsync.music(body)
    if track is None:
        warn('sync="beats" needs music (an <audio> element): the cuts are not moved')
        return
    info = media[track.attrs["filename"]]
    # Only as much of the file as can be heard: a 5-minute song under a 30 s movie is
    # decoded for 30 s and the slack snapping may add.
    limit = None if track.flag("loop", False) else beatsync.heard_until(track)
    argv = pcm_argv(probe.input_args(info), beats.SR, duration=limit)
    # The pool hands back what the worker returned: beats.analyse's times, in seconds.
    found: dict[str, list[float]] = await run_in_pool(ctx, beats.analyse, argv)
    for sequence in beatsync.synced(body):  # parents first: each sees its parent's cuts
        times = found["downbeats" if sequence.attrs["sync"] == "downbeats" else "beats"]
        note = beatsync.snap(sequence, beatsync.movie_times(track, times, info.duration))
        if note:
            warn(note)
        retime()


async def fetch_media(
    ctx: MovieTask, nodes: list[Node]
) -> tuple[dict[str, Download], dict[str, MediaInfo]]:
    """Download each URL once (and speak each spoken track); probe those used by
    ``video`` and ``audio`` elements."""
    first: dict[str, Node] = {}
    needs: dict[str, set[str]] = {}
    for node in nodes:
        url = node.attrs["filename"]
        first.setdefault(url, node)
        needs.setdefault(url, set()).add(node.tag)

    async def fetch(url: str) -> tuple[str, Download]:
        try:
            if url.startswith(speech.PREFIX):
                return url, await speak(ctx, first[url], url)
            if url.startswith(maps.PREFIX):
                return url, await draw_map(ctx, first[url], url)
            return url, await ctx.fetch(url)
        except errors.TaskError as e:
            raise _located(first[url], e) from None

    downloads = dict(await gather((fetch(url) for url in first), limit=FETCH_CONCURRENCY))

    async def inspect(url: str) -> tuple[str, MediaInfo]:
        node = first[url]
        try:
            info = await probe.probe(ctx, downloads[url])
            if "video" in needs[url]:
                probe.require_video(info)
            if "audio" in needs[url]:
                probe.require_audio(info)
        except errors.TaskError as e:
            raise _located(node, e) from None
        return url, info

    timed = [url for url, tags in needs.items() if tags & {"video", "audio"}]
    media = dict(await gather((inspect(url) for url in timed), limit=PROBE_CONCURRENCY))
    return downloads, media


async def speak(ctx: MovieTask, node: Node, name: str) -> Download:
    """``node``'s text read aloud into a WAV file, as a download of that file. A voice
    espeak-ng does not have (a language it was not built with) reads in English."""
    out = ctx.tmpdir / f"{name.replace(':', '-')}.wav"
    chosen, _ = speech.voice(node.attrs.get("voice", ""))
    text = node.text.strip().encode()
    result = await ctx.run(speech.argv(chosen, out), stdin=text, check=False)
    if result.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        fallback = "+".join(speech.DEFAULT)
        ctx.warn(f"{node.where()}: espeak-ng has no voice {chosen!r}: read in English")
        await ctx.run(speech.argv(fallback, out), stdin=text, error_code=errors.PROCESS_FAILED)
    return Download(path=out, mime="audio/wav", size=out.stat().st_size, url=name)


async def draw_map(ctx: MovieTask, node: Node, name: str) -> Download:
    """``<image type="map">`` drawn from the tile server's tiles into a PNG, as a download
    of that file (``maps.py``)."""
    out = ctx.tmpdir / f"{name.replace(':', '-')}.png"
    plan = maps.Plan(node)
    template = ctx.settings.map_tile_url
    if not template and node.attrs.get(maps.CARD):
        ctx.warn(f"{node.where()}: shown as a grey card: no map tile server is set")
        await ctx.in_thread(maps.card, out, plan.size, maps.CARD_COLOR)
    elif not template:
        raise errors.TaskError(
            errors.PARAMETERS,
            'type="map" needs a map tile server, which this server does not have'
            " (DRAGON_MAP_TILE_URL)",
        )
    else:

        async def tile(key: tuple[int, int, int]) -> tuple[tuple[int, int, int], Path]:
            return key, (await ctx.fetch(plan.url(template, key))).path

        tiles = dict(await gather((tile(key) for key in plan.tiles), limit=FETCH_CONCURRENCY))
        await ctx.in_thread(maps.draw, plan, tiles, ctx.settings.map_attribution, out)
    return Download(path=out, mime="image/png", size=out.stat().st_size, url=name)


def _located(node: Node, error: errors.TaskError) -> errors.TaskError:
    return errors.TaskError(error.code, f"{node.where()}: {error.message}")


async def render(
    ctx: MovieTask,
    movie: Movie,
    profile: profiles.Profile,
    name: str,
    warn: Warn,
    *,
    video: Path | None,
    thumbnail: tuple[Path, float] | None = None,
    preset: str,
    crf: int,
    progress: bool = False,
    drawn: dict[int, Raster | None] | None = None,
) -> None:
    """Render ``movie`` at ``profile`` into the MP4 ``video`` and/or one JPEG frame.

    One ffmpeg run makes the whole movie unless ``segments.windows`` cuts it to bound
    memory; then each window is encoded on its own and ``join`` assembles them with the
    soundtrack. The thumbnail comes out of the run that renders its frame (``split`` +
    ``trim``), so it costs no second decode; without ``video`` only that window runs.
    """
    rasters = await draw_assets(ctx, movie, profile, name, drawn)
    frames = Graph(profile.width, profile.height, profile.rate)
    total = frames.frame(movie.body.end)
    # A setting to be (dragon.config); the module default until then.
    budget = ctx.settings.video_create_memory_bytes
    windows = segments.windows(movie.body, frames, rasters, movie.media, budget)
    still = None
    if thumbnail is not None:
        still = (thumbnail[0], min(frames.frame(thumbnail[1]), total - 1))
    if video is None:
        if still is None:
            raise ValueError("render needs a video or a thumbnail to make")
        window = next(w for w in windows if w[0] <= still[1] < w[1])
        await render_window(ctx, movie, profile, rasters, warn, window, thumbnail=still)
        return
    if len(windows) == 1:
        await render_window(
            ctx,
            movie,
            profile,
            rasters,
            warn,
            None,
            video=video,
            thumbnail=still,
            sound=True,
            preset=preset,
            crf=crf,
            progress=progress,
        )
        return
    parts = await render_parts(
        ctx,
        movie,
        profile,
        rasters,
        warn,
        windows,
        name,
        still=still,
        preset=preset,
        crf=crf,
        progress_of=total if progress else None,
    )
    await join(ctx, movie, profile, parts, video)


async def draw_assets(
    ctx: MovieTask,
    movie: Movie,
    profile: profiles.Profile,
    name: str,
    drawn: dict[int, Raster | None] | None,
) -> dict[int, Raster | None]:
    """The pictures and texts of this rendering: those ``drawn`` earlier (while the beats
    were tracked) that it still needs, and the others drawn now."""
    jobs = plan_assets(ctx, movie, profile, name)
    rasters = {uid: r for uid, r in (drawn or {}).items() if uid in jobs}
    rasters |= await assets.draw(ctx, {u: j for u, j in jobs.items() if u not in rasters})
    return rasters


async def render_parts(
    ctx: MovieTask,
    movie: Movie,
    profile: profiles.Profile,
    rasters: dict[int, Raster | None],
    warn: Warn,
    windows: list[segments.Window],
    name: str,
    *,
    still: tuple[Path, int] | None,
    preset: str,
    crf: int,
    progress_of: int | None,
) -> list[Path]:
    """Each window encoded on its own, without sound, into ``{name}-{i}.mp4``; the
    thumbnail ``still`` comes out of the window holding its frame. With ``progress_of``
    (the movie's frame count) each finished window reports its share of 99%: the join,
    which ``render`` runs next, is the last percent."""
    parts = []
    for i, window in enumerate(windows):
        part = ctx.tmpdir / f"{name}-{i}.mp4"
        inside = still if still and window[0] <= still[1] < window[1] else None
        await render_window(
            ctx,
            movie,
            profile,
            rasters,
            warn,
            window,
            video=part,
            thumbnail=inside,
            preset=preset,
            crf=crf,
        )
        parts.append(part)
        if progress_of is not None:
            ctx.progress(99 * window[1] / progress_of)
    return parts


def plan_assets(
    ctx: MovieTask, movie: Movie, profile: profiles.Profile, name: str
) -> dict[int, StillJob | TextJob]:
    return assets.plan(
        movie.body,
        (profile.width, profile.height),
        movie.downloads,
        antialias=ctx.params.get("antialias", 4),
        max_pixels=int(ctx.settings.max_pixels),
        tmpdir=ctx.tmpdir,
        tag=name,
    )


async def render_window(
    ctx: MovieTask,
    movie: Movie,
    profile: profiles.Profile,
    rasters: dict[int, Raster | None],
    warn: Warn,
    window: tuple[int, int] | None,
    *,
    video: Path | None = None,
    thumbnail: tuple[Path, int] | None = None,
    sound: bool = False,
    preset: str = PREVIEW_PRESET,
    crf: int = CRF,
    progress: bool = False,
) -> None:
    """One ffmpeg run: the frames of ``window`` (None: all) to ``video`` and/or a JPEG."""
    graph = Graph(profile.width, profile.height, profile.rate)
    picture = Picture(graph, movie.media, rasters, warn, ffmpeg.decoder_guard(ctx.settings), window)
    layer = picture.movie(movie.body)
    main, outputs = layer.label, []
    if thumbnail is not None:
        path, index = thumbnail
        index -= window[0] if window else 0
        source = layer.label
        if video is not None:
            main, source = graph.split(layer.label, 2)
        frame = graph.chain([source], f"trim=start_frame={index}:end_frame={index + 1}")
        outputs += [
            "-map",
            f"[{frame}]",
            "-frames:v",
            "1",
            "-q:v",
            THUMBNAIL_QUALITY,
            "-update",
            "1",
            str(path),
        ]
    if video is not None:
        audio = ["-map", f"[{sound_mix(graph, movie)}]", *aac(profile)] if sound else ["-an"]
        outputs = [
            "-map",
            f"[{main}]",
            *audio,
            *x264(profile, preset, crf),
            "-movflags",
            "+faststart",
            *ffmpeg.output_cap(ctx.settings),
            str(video),
            *outputs,
        ]
    script = ctx.tmpdir / f"graph-{window[0] if window else 'all'}.txt"
    script.write_text(graph.script())
    argv = ffmpeg.ffmpeg_argv(*graph.argv_inputs(), "-filter_complex_script", str(script), *outputs)
    try:
        await ctx.run(
            argv,
            error_code=errors.PROCESS_FAILED,
            progress_duration=movie.duration if progress else None,
        )
    except errors.TaskError as e:
        raise unbuildable(e, graph) from None
    for made in (video, thumbnail and thumbnail[0]):
        if made is not None:
            ffmpeg.check_output(made, ctx.settings)


# What ffmpeg prints when it cannot configure, or keep running, a filtergraph.
GRAPH_FAILED = re.compile(
    r"error (?:re)?initializing (?:complex )?filters|error marking filters as finished"
    r"|failed to configure (?:output|input) pad|error configuring (?:complex )?filter"
    r"|error while filtering",
    re.I,
)


# What ffmpeg prints when the graph's text itself is wrong: our bug, not the movie's size.
GRAPH_MISWRITTEN = re.compile(
    r"no such filter|option '?[\w-]+'? not found|error parsing (?:a )?filter"
    r"|no option name near|unable to parse option",
    re.I,
)


def unbuildable(error: errors.TaskError, graph: Graph) -> errors.TaskError:
    """``error`` as a user can act on it when ffmpeg could not build the movie's
    filtergraph: its text ("Error reinitializing filters!") stays in the diagnostics.

    The parser has checked every value the graph holds, so what fails there is ffmpeg's
    room to hold it: each input and filter takes frame pools and threads whose stacks count
    against the tool's address space (measured: 20 crossfading photos at 1080p fail under
    2 GiB while 780 MB are resident, and fit with a single filter thread). Under a memory
    limit that is ``resource_limit``, even when ffmpeg names no cause. A graph ffmpeg could
    not read (``GRAPH_MISWRITTEN``) is left as it failed: that one is ours to fix.
    """
    stderr = (error.tool or {}).get("stderr", "")
    failed = error.code in (errors.PROCESS_FAILED, errors.RESOURCE_LIMIT)
    # Where ffmpeg runs out of its room depends on the load: building the graph, or later
    # an encoder's malloc. Either way the movie did not fit, and the advice is the same.
    short = processes.OUT_OF_MEMORY.search(stderr)
    ran_out = error.code == errors.RESOURCE_LIMIT and short
    # Out of room, ffmpeg may fail to read its graph too ("Error parsing a filter
    # description...: Cannot allocate memory"): that is not a miswritten graph.
    miswritten = GRAPH_MISWRITTEN.search(stderr) and not short
    if miswritten or not (ran_out or (failed and GRAPH_FAILED.search(stderr))):
        return error
    inputs = f"{len(graph.inputs)} inputs at {graph.width}x{graph.height}"
    limit = processes.tool_memory()
    if limit:
        code = errors.RESOURCE_LIMIT
        message = (
            f"ffmpeg could not put this movie's picture together ({inputs}) within the"
            f" {limit // 2**20} MiB of memory a tool may use (DRAGON_TOOL_MEMORY_BYTES): use a"
            " smaller profile or fewer images, videos and transitions at once"
        )
    else:
        code = errors.PROCESS_FAILED
        message = (
            f"ffmpeg could not put this movie's picture together ({inputs}): use a smaller"
            " profile or fewer images, videos and transitions at once"
        )
    out = errors.TaskError(code, message)
    out.stage, out.tool = error.stage, error.tool
    return out


async def join(
    ctx: MovieTask, movie: Movie, profile: profiles.Profile, parts: list[Path], video: Path
) -> None:
    """The encoded windows end to end (stream copy) with the soundtrack mixed in."""
    listing = ctx.tmpdir / f"{video.stem}.ffconcat"
    listing.write_text("ffconcat version 1.0\n" + "".join(f"file {p.name}\n" for p in parts))
    graph = Graph(profile.width, profile.height, profile.rate)
    graph.input(
        [
            "-protocol_whitelist",
            "file,pipe",
            "-format_whitelist",
            "concat,mov",
            "-f",
            "concat",
            "-safe",
            "1",
            "-i",
            str(listing),
        ]
    )
    audio = sound_mix(graph, movie)
    script = ctx.tmpdir / f"{video.stem}-sound.txt"
    script.write_text(graph.script())
    argv = ffmpeg.ffmpeg_argv(
        *graph.argv_inputs(),
        "-filter_complex_script",
        str(script),
        "-map",
        "0:v",
        "-map",
        f"[{audio}]",
        "-c:v",
        "copy",
        *aac(profile),
        "-movflags",
        "+faststart",
        *ffmpeg.output_cap(ctx.settings),
        str(video),
    )
    await ctx.run(argv, error_code=errors.PROCESS_FAILED)
    ffmpeg.check_output(video, ctx.settings)


def sound_mix(graph: Graph, movie: Movie) -> str:
    return sound.mix(graph, movie.body, movie.media, movie.ducked)


def x264(profile: profiles.Profile, preset: str, crf: int) -> list[str]:
    return ffmpeg.x264_args(
        crf=crf, gop=2 * round(profile.rate), preset=preset, maxrate_kbps=profile.video_kbps
    )


def aac(profile: profiles.Profile) -> list[str]:
    return [
        "-c:a",
        "aac",
        "-b:a",
        f"{profile.audio_kbps}k",
        "-ar",
        str(sound.SAMPLE_RATE),
        "-ac",
        "2",
    ]
