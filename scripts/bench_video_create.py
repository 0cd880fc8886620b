"""Benchmark video.create against a hand-written ffmpeg command making the same slideshow.

    .venv/bin/python scripts/bench_video_create.py [--runs 3] [--profiles 360p 720p]

The movie: 30 s, six 2000x1500 photo-like JPEGs, each a 6 s kenburns zoom, joined by
1.2 s crossfades whose middles snap to the beats of the music (``sync="beats"``), a legend
over the whole movie that slides in from the right during the first second (an
animator), and music (tones over a 120 BPM click) bound to the movie with a 2 s fade-out.
The baseline is one ffmpeg command a person would write for it (scale+crop to twice the
frame, zoompan, an xfade chain at the same beat-aligned offsets, drawtext with a moving x,
afade), with the same encoder settings as the export (x264 veryfast, CRF 23 capped at the
profile's bitrate, AAC). The task also tracks the music's beats, which the baseline,
knowing the tempo, does not.

The dragon figure is the whole task through the HTTP API (a real ``dragon serve`` with a
temp data dir, a local origin, ``block=true``): download, probe, Pillow, the render and
the thumbnail, i.e. more than the baseline does. Raw and task runs alternate (median of
``--runs`` after a warm-up each) so a busy machine slows both alike.

Target: task <= 1.3x the raw command. Also printed: seconds per output second.

``--scene`` also renders a 30 s 720p scene: a photo behind ten photos moving in 3D (each
turning a full circle about the vertical axis while it crosses the frame and comes
nearer, through the camera's perspective), one of them blurred and the background tinted.
Target: rendered at least as fast as it plays (output seconds per second >= 1). Its peak
memory (the server and its tools, resident, sampled from /proc) is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import BenchServer, TreePeak, start_origin  # noqa: E402

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
LEGEND = "A legend over the whole slideshow"
STILLS, STILL, FADE, FPS = 6, 6.0, 1.2, 25
DURATION = STILLS * STILL - (STILLS - 1) * FADE  # 30 s
BEAT = 0.5  # the music's click, 120 BPM from 0 s
SLIDE = 1.0  # the legend's slide-in, seconds
PROFILES = {"360p": (640, 360, 1024, 128), "720p": (1280, 720, 1500, 256)}


def make_media(folder: Path) -> None:
    rng = np.random.default_rng(1)
    for i in range(STILLS):
        path = folder / f"photo{i}.jpg"
        if path.exists():
            continue
        h, w = 1500, 2000
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack(
            [
                (x * 255 // w + 40 * i) % 256,
                (y * 255 // h + 70 * i) % 256,
                ((x + y) * 255 // (w + h) + 20 * i) % 256,
            ],
            -1,
        ).astype(np.float32)
        grain = rng.normal(128, 25, (h // 4, w // 4, 3)).clip(0, 255).astype(np.uint8)
        grain = np.asarray(Image.fromarray(grain).resize((w, h), Image.BICUBIC), np.float32)
        picture = Image.fromarray((base + grain - 128).clip(0, 255).astype(np.uint8))
        picture.filter(ImageFilter.GaussianBlur(1)).save(path, quality=90)
    music = folder / "music.mp3"
    if not music.exists():
        click = f"0.5*sin(2*PI*1000*t)*exp(-40*mod(t,{BEAT}))"
        subprocess.run(
            [
                *FFMPEG,
                "-f",
                "lavfi",
                "-i",
                f"aevalsrc=exprs='0.2*sin(2*PI*330*t)+{click}|0.2*sin(2*PI*440*t)"
                f"+{click}':s=44100:d=35",
                "-ac",
                "2",
                "-b:a",
                "128k",
                str(music),
            ],
            check=True,
        )


def definition(base: str) -> str:
    items = [
        f'<effect type="kenburns" duration="{STILL:g}">'
        f'<image filename="{base}/photo{i}.jpg"/></effect>'
        for i in range(STILLS)
    ]
    sequence = f'<transition type="crossfade" duration="{FADE:g}"/>'.join(items)
    return (
        f'<movie service="craftsman-1.0"><body><stack><sequence sync="beats">{sequence}'
        f'</sequence><text type="legend">{LEGEND}<animator type="slide-in" '
        f'direction="left" duration="{SLIDE:g}"/></text>'
        f'<audio filename="{base}/music.mp3" duration=".." fadeout="2"/>'
        f"</stack></body></movie>"
    )


def scene_definition(base: str) -> str:
    """Ten photos turning and moving in depth over a tinted photo, one blurred."""
    layers = []
    for i in range(10):
        x0, y0 = -1.2 + 0.25 * i, 0.6 - 0.12 * i
        blur = '<filter type="blur" radius="0.01"/>' if i == 3 else ""
        layers.append(
            f'<overlay left="{0.05 + 0.08 * i:.2f}" top="{0.1 + 0.06 * i:.2f}" width="0.2"'
            f' height="0.2"><image filename="{base}/photo{i % STILLS}.jpg"/>{blur}'
            f'<animator type="custom"><key time="0" pos="{x0:.2f},{y0:.2f},-1"'
            f' rot="0,0,1,0"/><key time="{DURATION:g}" pos="{-x0:.2f},{-y0:.2f},0.3"'
            f' rot="360,0,1,0"/></animator></overlay>'
        )
    return (
        f'<movie service="craftsman-1.0"><body><stack duration="{DURATION:g}">'
        f'<effect type="none"><image filename="{base}/photo0.jpg"/>'
        f'<filter type="tint" color="#6080C0"/></effect>{"".join(layers)}'
        f"</stack></body></movie>"
    )


def raw_argv(folder: Path, profile: str, out: Path) -> list[str]:
    w, h, video_kbps, audio_kbps = PROFILES[profile]
    font = round(0.06 * h)
    # The middle of each crossfade on the nearest beat, as sync="beats" puts it; each
    # still then lasts from the start of the crossfade before it to the end of the next.
    middles = [round((i * (STILL - FADE) + FADE / 2) / BEAT) * BEAT for i in range(1, STILLS)]
    starts = [0.0] + [m - FADE / 2 for m in middles]
    ends = [m + FADE / 2 for m in middles] + [DURATION]
    graph = []
    for i in range(STILLS):
        frames = round((ends[i] - starts[i]) * FPS)
        graph.append(
            f"[{i}:v]scale={2 * w}:{2 * h}:force_original_aspect_ratio=increase,"
            f"crop={2 * w}:{2 * h},format=yuv420p,zoompan=z='1+0.15*on/{frames}'"
            f":x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':d={frames}:s={w}x{h}"
            f":fps={FPS}[s{i}]"
        )
    last = "s0"
    for i in range(1, STILLS):
        graph.append(
            f"[{last}][s{i}]xfade=transition=fade:duration={FADE}:offset={starts[i]:g}[x{i}]"
        )
        last = f"x{i}"
    graph.append(
        f"[{last}]drawtext=fontfile={FONT}:text='{LEGEND}':fontsize={font}"
        f":fontcolor=white:box=1:boxcolor=black@0.5:boxborderw={font // 3}"
        f":x=(w-text_w)/2+(w+text_w)/2*max(0\\,1-t/{SLIDE:g}):y=h*0.92-text_h[v]"
    )
    graph.append(f"[{STILLS}:a]afade=t=out:st={DURATION - 2:g}:d=2,atrim=0:{DURATION:g}[a]")
    inputs = [arg for i in range(STILLS) for arg in ("-i", str(folder / f"photo{i}.jpg"))]
    return [
        *FFMPEG,
        *inputs,
        "-i",
        str(folder / "music.mp3"),
        "-filter_complex",
        ";".join(graph),
        "-map",
        "[v]",
        "-map",
        "[a]",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "23",
        "-g",
        str(2 * FPS),
        "-pix_fmt",
        "yuv420p",
        "-maxrate",
        f"{video_kbps}k",
        "-bufsize",
        f"{2 * video_kbps}k",
        "-c:a",
        "aac",
        "-b:a",
        f"{audio_kbps}k",
        "-ar",
        "44100",
        "-ac",
        "2",
        "-movflags",
        "+faststart",
        str(out),
    ]


def create(server: BenchServer, task: dict) -> dict:
    body = json.dumps({"block": True, "tasks": [task]}).encode()
    req = urllib.request.Request(f"{server.url}/v2/create", data=body, headers=server.headers)
    with urllib.request.urlopen(req, timeout=1200) as r:
        [status] = json.loads(r.read())
    if status["status"] != "success":
        raise RuntimeError(f"video.create failed: {status}")
    return status["result"]


def duration_of(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout)


def scene(server: BenchServer, base: str, work: Path, runs: int) -> None:
    """The 3D scene at 720p: the task's seconds, and output seconds per second."""
    task = {"task_name": "video.create", "definition": scene_definition(base), "profile": "720p"}
    times = []
    result = None
    with TreePeak(server.proc.pid) as memory:
        for i in range(runs + 1):
            t = time.perf_counter()
            result = create(server, task)
            if i:
                times.append(time.perf_counter() - t)
    assert result is not None
    export = work / "scene-720p.mp4"
    with urllib.request.urlopen(result["export"]) as r:
        export.write_bytes(r.read())
    task_s = statistics.median(times)
    speed = duration_of(export) / task_s
    print(
        f"3D scene, 720p, 10 layers turning in depth, blur and tint: {task_s:.2f} s for"
        f" {duration_of(export):.2f} s of movie, {speed:.2f}x real time (target >= 1)",
        flush=True,
    )
    print(
        f"peak memory while it rendered: {memory.peak:.0f} MB resident for the server and its"
        f" tools together, {memory.tool:.0f} MB for the largest tool (sampled every 50 ms)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=PROFILES)
    parser.add_argument("--scene", action="store_true", help="also the 3D scene (720p)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dragon-bench-create-"))
    make_media(work)
    httpd, base = start_origin(work)
    server = BenchServer()
    try:
        print(
            f"{'profile':8} {'raw s':>7} {'task s':>7} {'ratio':>6} {'raw s/s':>8} "
            f"{'task s/s':>9}  (median of {args.runs}, 30 s movie)"
        )
        for profile in args.profiles:
            task = {"task_name": "video.create", "definition": definition(base), "profile": profile}
            raw_out = work / f"raw-{profile}.mp4"
            argv = raw_argv(work, profile, raw_out)
            raw_times, task_times = [], []
            result = None
            for i in range(args.runs + 1):
                t = time.perf_counter()
                subprocess.run(argv, check=True)
                raw = time.perf_counter() - t
                t = time.perf_counter()
                result = create(server, task)
                job = time.perf_counter() - t
                if i:  # the first round warms caches up
                    raw_times.append(raw)
                    task_times.append(job)
            raw_s, task_s = statistics.median(raw_times), statistics.median(task_times)
            export = work / f"task-{profile}.mp4"
            with urllib.request.urlopen(result["export"]) as r:
                export.write_bytes(r.read())
            durations = f"{duration_of(raw_out):.2f}/{duration_of(export):.2f}"
            print(
                f"{profile:8} {raw_s:7.2f} {task_s:7.2f} {task_s / raw_s:5.2f}x "
                f"{raw_s / DURATION:8.3f} {task_s / DURATION:9.3f}  "
                f"(durations raw/task {durations} s)",
                flush=True,
            )
        if args.scene:
            scene(server, base, work, args.runs)
    finally:
        server.stop()
        httpd.shutdown()


if __name__ == "__main__":
    main()
