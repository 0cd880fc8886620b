"""Benchmark the costly outputs of video.convert and audio.convert against raw ffmpeg runs.

    .venv/bin/python scripts/bench_outputs.py [--rounds 5] [--seconds 20] [--cache DIR]

Sources, made at run time with ffmpeg and cached in ``--cache`` (default:
<tmp>/dragon-bench-outputs): a 1080p30 clip of ``--seconds`` (lavfi testsrc2, x264
veryfast CRF 20, with pink noise and a sine as 48 kHz stereo AAC) and 3 minutes of the same
kind of audio alone (44.1 kHz stereo AAC in M4A, what an audio.convert caller sends).

What is timed is what the tasks run: the ffmpeg command lines are built by the tasks' own
code (``dragon.media.streaming.argv``, ``dragon.media.loudness``,
``video_convert.build_argv``, ``audio_convert.build_argv``) from the parameters their
schemas load (the defaults, plus ``format``/``loudness``), and run here as plain
processes. The task around them (download, probe, storing the outputs) costs the same
whether or not the ladder or the loudness is asked for, and is left out.

1. HLS ladder: video.convert ``format: "hls"`` on the 1080p clip makes the default ladder
   (1080p, 720p, 480p) in one ffmpeg run, one decode feeding every rendition through
   ``split``. Baseline: three separate ffmpeg runs, one per rendition, with the same
   encoder settings and segmenting (each built by the same function with that rendition
   alone; the tallest also carries the audio, which the ladder encodes once as well).
2. Loudness, audio.convert ``loudness: -16`` (to MP3, the default codec) on the 3-minute
   audio: the measuring pass, then the encode through the second loudnorm pass. Baseline:
   one plain encode with the same settings without loudnorm (audio.convert of the same
   file without ``loudness``).
3. Loudness, video.convert ``loudness: -16`` on the 1080p clip against the same
   video.convert without it.

Each round runs the dragon way and the baseline in turns (which goes first alternates by
round), so a change of load on the shared machine hits both alike; one warm-up round is
not counted. Every command is printed once. Each row gives each round's wall times and
tool CPU times (``RUSAGE_CHILDREN``) and the medians of the rounds' ratios; both ratios
are checked against the target. On a busy machine the wall-time ratio swings by tens of
percent from round to round, the CPU-time ratio much less.

Targets (issue 24): the ladder <= 0.8x the three separate runs; loudness two-pass <= 2.2x
one plain encode (checked for audio.convert and video.convert). Smart crop's target
(<= 1.2x a centre crop in image.thumb) is in scripts/bench_thumb.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import check  # noqa: E402

from dragon.config import Settings  # noqa: E402
from dragon.media import loudness, probe, streaming  # noqa: E402
from dragon.tasks import audio_convert, video_convert  # noqa: E402

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
TARGET_LUFS = -16.0
AUDIO_SECONDS = 180
TARGETS = {"ladder": 0.8, "loudness": 2.2}
URL = "http://example.com/source"  # the schemas want one; nothing is fetched


# -- sources -------------------------------------------------------------------------------


def noise_and_tone(seconds: int) -> list[str]:
    """lavfi inputs 1 and 2 of a source: pink noise and a sine, mixed as the audio."""
    return [
        "-f",
        "lavfi",
        "-i",
        f"anoisesrc=color=pink:amplitude=0.3:duration={seconds}:seed=1",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:duration={seconds}",
    ]


def make_sources(cache: Path, seconds: int) -> tuple[Path, Path]:
    cache.mkdir(parents=True, exist_ok=True)
    clip, song = cache / f"clip{seconds}.mp4", cache / f"audio{AUDIO_SECONDS}.m4a"
    mix = "[1:a][2:a]amix=inputs=2,aformat=channel_layouts=stereo[a]"
    if not clip.exists():
        print(f"generating a {seconds} s 1080p30 clip...", flush=True)
        part = cache / "clip.part.mp4"
        run(
            [
                *FFMPEG,
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size=1920x1080:rate=30:duration={seconds}",
                *noise_and_tone(seconds),
                "-filter_complex",
                mix,
                "-map",
                "0:v",
                "-map",
                "[a]",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "20",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-b:a",
                "192k",
                "-ar",
                "48000",
                str(part),
            ]
        )
        part.rename(clip)
    if not song.exists():
        print(f"generating {AUDIO_SECONDS} s of audio...", flush=True)
        part = cache / "audio.part.m4a"
        run(
            [
                *FFMPEG,
                *noise_and_tone(AUDIO_SECONDS),
                "-filter_complex",
                mix.replace("[1:a][2:a]", "[0:a][1:a]"),
                "-map",
                "[a]",
                "-c:a",
                "aac",
                "-b:a",
                "192k",
                "-ar",
                "44100",
                str(part),
            ]
        )
        part.rename(song)
    return clip, song


def probed(path: Path, demuxer: str, mime: str) -> probe.MediaInfo:
    out = subprocess.run(probe.ffprobe_argv(path, demuxer), capture_output=True, check=True)
    return probe.parse_probe(json.loads(out.stdout), path=path, demuxer=demuxer, mime=mime)


# -- measuring -----------------------------------------------------------------------------


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def run_all(argvs: list[list[str]]) -> None:
    for argv in argvs:
        run(argv)


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclasses.dataclass
class Way:
    """One way of doing the work: a function running its ffmpeg commands; its times."""

    name: str
    work: Callable[[], None]
    wall: list[float] = dataclasses.field(default_factory=list)
    cpu: list[float] = dataclasses.field(default_factory=list)

    def once(self, keep: bool) -> None:
        cpu, t = child_cpu(), time.perf_counter()
        self.work()
        if keep:
            self.wall.append(time.perf_counter() - t)
            self.cpu.append(child_cpu() - cpu)


def rounds(ours: Way, baseline: Way, count: int) -> tuple[float, float]:
    """Run both ``count`` times (after a warm-up), in turns; print each round and the
    medians. The medians of the rounds' ratios: wall time, then tool CPU time."""
    for i in range(count + 1):
        pair = (ours, baseline) if i % 2 else (baseline, ours)
        for way in pair:
            way.once(keep=i > 0)
        if i:
            print(
                f"  round {i}: {ours.name} {ours.wall[-1]:6.2f} s, {baseline.name} "
                f"{baseline.wall[-1]:6.2f} s: {ours.wall[-1] / baseline.wall[-1]:.2f}x; "
                f"tool CPU {ours.cpu[-1]:.1f} s vs {baseline.cpu[-1]:.1f} s: "
                f"{ours.cpu[-1] / baseline.cpu[-1]:.2f}x (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    med = statistics.median
    walls = [o / b for o, b in zip(ours.wall, baseline.wall, strict=True)]
    cpus = [o / b for o, b in zip(ours.cpu, baseline.cpu, strict=True)]
    print(
        f"  medians of {count}: {ours.name} {med(ours.wall):.2f} s, {baseline.name} "
        f"{med(baseline.wall):.2f} s; ratio {med(walls):.2f} (rounds from {min(walls):.2f} "
        f"to {max(walls):.2f}); tool CPU ratio {med(cpus):.2f} (from {min(cpus):.2f} to "
        f"{max(cpus):.2f})",
        flush=True,
    )
    return med(walls), med(cpus)


def show(label: str, argv: list[str]) -> None:
    print(f"  {label}: {shlex.join(argv)}", flush=True)


# -- the rows ------------------------------------------------------------------------------


def fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


Ratios = tuple[float, float]  # the medians of the rounds' ratios: wall time, tool CPU time


def ladder_row(clip: probe.MediaInfo, work: Path, settings: Settings, count: int) -> Ratios:
    params = video_convert.Schema().load({"url": URL, "format": "hls"})
    display = probe.require_video(clip)
    renditions, _ = streaming.ladder(display[1], streaming.asked(params["renditions"]))
    audio = {"audio_bitrate": params["audio_bitrate"], "sample_rate": params["sample_rate"]}

    def ladder_argv() -> list[str]:
        return streaming.argv(clip, renditions, "hls", fresh(work / "ladder"), settings, **audio)

    def separate_argvs() -> list[list[str]]:
        argvs = []
        for i, rendition in enumerate(renditions):
            info = clip if i == 0 else dataclasses.replace(clip, has_audio=False)
            folder = fresh(work / f"separate-{rendition.name}")
            argvs.append(streaming.argv(info, [rendition], "hls", folder, settings, **audio))
        return argvs

    names = ", ".join(r.name for r in renditions)
    print(f"\n== HLS ladder of {names}: one run vs one run per rendition")
    show("ladder", ladder_argv())
    for argv in separate_argvs():
        show("separate", argv)
    ours = Way("ladder", lambda: run_all([ladder_argv()]))
    baseline = Way("3 runs", lambda: run_all(separate_argvs()))
    return rounds(ours, baseline, count)


def two_pass(measure: list[str], encode: Callable[[str | None], list[str]]) -> None:
    """What ``loudness.normaliser`` and the task do: measure, then encode with the filter."""
    measured = loudness.parse(run(measure).stderr)
    run(encode(loudness.normalise_filter(measured, TARGET_LUFS)))


def loudness_rows(
    clip: probe.MediaInfo, song: probe.MediaInfo, work: Path, settings: Settings, count: int
) -> tuple[Ratios, Ratios]:
    params = audio_convert.Schema().load({"url": URL, "loudness": TARGET_LUFS})
    out = work / f"audio.{audio_convert.TARGETS[params['codec']][3]}"

    def audio(audio_filter: str | None) -> list[str]:
        return audio_convert.build_argv(
            song, params["codec"], params["force"], out, settings, audio_filter
        )

    vparams = video_convert.Schema().load({"url": URL, "loudness": TARGET_LUFS})
    vout = work / "video.mp4"

    def video(audio_filter: str | None) -> list[str]:
        return video_convert.build_argv(clip, vparams, vout, settings, audio_filter)[0]

    return (
        loudness_row(
            f"audio.convert loudness {TARGET_LUFS:g} of {AUDIO_SECONDS} s", song, audio, count
        ),
        loudness_row(
            f"video.convert loudness {TARGET_LUFS:g} of the 1080p clip", clip, video, count
        ),
    )


def loudness_row(
    title: str,
    source: probe.MediaInfo,
    encode: Callable[[str | None], list[str]],
    count: int,
) -> Ratios:
    """A task's two loudness passes over ``source`` against its plain encode, in turns."""
    print(f"\n== {title} vs a plain encode")
    measured = loudness.parse(run(loudness.measure_argv(source)).stderr)
    show("pass 1", loudness.measure_argv(source))
    show("pass 2", encode(loudness.normalise_filter(measured, TARGET_LUFS)))
    show("plain", encode(None))
    ours = Way("two-pass", lambda: two_pass(loudness.measure_argv(source), encode))
    baseline = Way("plain", lambda: run_all([encode(None)]))
    return rounds(ours, baseline, count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=20, help="length of the 1080p clip")
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "dragon-bench-outputs"
    )
    parser.add_argument("--only", choices=["ladder", "loudness"], help="run one part only")
    args = parser.parse_args()

    clip_path, song_path = make_sources(args.cache, args.seconds)
    clip = probed(clip_path, "mov", "video/mp4")
    song = probed(song_path, "mov", "audio/mp4")
    versions = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    print(
        f"nproc {os.cpu_count()}, {versions.splitlines()[0]}, rounds {args.rounds}, "
        f"load {os.getloadavg()[0]:.1f}; sources {clip_path} and {song_path}"
    )
    work = Path(tempfile.mkdtemp(prefix="bench-outputs-"))
    settings = Settings.load(env={"DRAGON_DATA_DIR": str(work)})
    try:
        verdicts: list[tuple[str, Ratios, str]] = []
        if args.only in (None, "ladder"):
            ratios = ladder_row(clip, work, settings, args.rounds)
            verdicts.append(("HLS ladder / 3 separate runs", ratios, "ladder"))
        if args.only in (None, "loudness"):
            audio, video = loudness_rows(clip, song, work, settings, args.rounds)
            verdicts.append(("audio.convert loudness / plain encode", audio, "loudness"))
            verdicts.append(("video.convert loudness / plain encode", video, "loudness"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload at the end {os.getloadavg()[0]:.1f}")
    for name, (wall, cpu), target in verdicts:
        check(f"{name}, wall time, x", wall, "<=", TARGETS[target])
        check(f"{name}, tool CPU time, x", cpu, "<=", TARGETS[target])


if __name__ == "__main__":
    main()
