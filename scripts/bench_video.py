"""Benchmark video.thumb, video.strip, video.reverse and video.convert against raw ffmpeg.

Each task and its raw ffmpeg equivalent, side by side in one run:

    .venv/bin/python scripts/bench_video.py [--runs 5] [--long-reverse] [--cache DIR]

Sources (lavfi testsrc2 + sine, x264 veryfast, GOP 250, AAC), made once and cached in
``--cache`` (default: <tmp>/dragon-bench-video): ``src120.mp4`` (1080p30, 2 minutes) and
``src20.mp4`` (its first 20 s, stream copy).

Each row times the raw ffmpeg command, then the same work as a task through the HTTP API
(a real ``dragon serve`` with a temp data dir, a local HTTP origin, ``block=true``
creates), median of ``--runs`` after one warm-up. Every row prints the raw command and
the end-to-end ratio job / raw. A job includes what raw ffmpeg never pays: the HTTP
download of the source (80 MB for the 2-minute clip) and the probe. So strip, reverse and
convert also show ``job - info``: the job minus a video.info job on the same URL
(download + sniff + probe), which those tasks run before their ffmpeg. video.thumb does
not: it probes while it seeks, so subtracting a separate probe would take off time the
job never spent; its figure is end to end.

Raw and job runs alternate, so a change of load on the box hits both alike. Besides wall
time, each row gives the tools' CPU time (raw: ``RUSAGE_CHILDREN``; job: the server's
ffmpeg/ffprobe children sampled every 10 ms from /proc), which load disturbs far less.
Peak RSS: raw commands under ``/usr/bin/time -f %M``; jobs from those samples' ``VmHWM``
(which also count the processes each job spawns).

Targets (printed as MET or MISSED): thumb end to end <= raw + 60 ms and >= 50x faster
than output seeking; strip (job - info) <= 1.2x the one-process nokey command, >= 5x
faster than the fps filter, RSS <= 400 MB; reverse RSS <= 1 GB and (job - info) <= 1.15x
the single pass on the 20 s clip; convert <= 1.05x raw + 150 ms with 1 ffprobe + 1 ffmpeg.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import BenchServer, check, start_origin  # noqa: E402

from dragon.config import Settings  # noqa: E402
from dragon.media import probe  # noqa: E402
from dragon.tasks import video_convert  # noqa: E402

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]


# -- sources -------------------------------------------------------------------------------


def make_sources(cache: Path) -> tuple[Path, Path]:
    cache.mkdir(parents=True, exist_ok=True)
    long, short = cache / "src120.mp4", cache / "src20.mp4"
    if not long.exists():
        print("generating a 2-minute 1080p30 clip (about a minute)...", flush=True)
        part = cache / "src120.part.mp4"
        subprocess.run(
            [
                *FFMPEG,
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1920x1080:rate=30:duration=120",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:duration=120",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-pix_fmt",
                "yuv420p",
                "-g",
                "250",
                "-c:a",
                "aac",
                "-shortest",
                str(part),
            ],
            check=True,
        )
        part.rename(long)
    if not short.exists():
        subprocess.run([*FFMPEG, "-i", str(long), "-t", "20", "-c", "copy", str(short)], check=True)
    return long, short


# -- measuring -----------------------------------------------------------------------------


def run(argv: list[str], cwd: Path | None = None) -> None:
    subprocess.run(argv, check=True, cwd=cwd, stdout=subprocess.DEVNULL)


def peak_rss_mb(argv: list[str], cwd: Path | None = None) -> float:
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *argv], check=True, cwd=cwd, capture_output=True, text=True
    )
    return int(out.stderr.strip().splitlines()[-1]) / 1024


class ToolWatch(threading.Thread):
    """Samples the server's ffmpeg/ffprobe children: peak RSS (VmHWM), CPU time, count."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, server_pid: int) -> None:
        super().__init__(daemon=True)
        self.server = server_pid
        self.seen: dict[int, tuple[str, int, float]] = {}  # pid -> (name, hwm KB, cpu s)
        self.done = threading.Event()

    def children(self) -> list[str]:
        pids = []
        for tid in os.listdir(f"/proc/{self.server}/task"):
            try:
                pids += Path(f"/proc/{self.server}/task/{tid}/children").read_text().split()
            except OSError:
                pass
        return pids

    def sample(self) -> None:
        for pid in self.children():
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
                if name not in ("ffmpeg", "ffprobe"):
                    continue
                status = Path(f"/proc/{pid}/status").read_text()
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            hwm = next(
                (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")),
                0,
            )
            cpu = (int(stat[11]) + int(stat[12])) / self.TICK
            old = self.seen.get(int(pid), (name, 0, 0.0))
            self.seen[int(pid)] = (name, max(old[1], hwm), max(old[2], cpu))

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            time.sleep(0.01)

    def __enter__(self) -> ToolWatch:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.join()

    @property
    def cpu(self) -> float:
        return sum(cpu for _, _, cpu in self.seen.values())

    def counts(self) -> dict[str, int]:
        return {
            n: sum(1 for name, _, _ in self.seen.values() if name == n)
            for n in ("ffprobe", "ffmpeg")
        }

    @property
    def peak_mb(self) -> float:
        return max((kb for _, kb, _ in self.seen.values()), default=0) / 1024

    def summary(self) -> str:
        counts = self.counts()
        return (
            f"{counts['ffprobe']} ffprobe + {counts['ffmpeg']} ffmpeg, "
            f"peak RSS {self.peak_mb:.0f} MB"
        )


# -- the server ----------------------------------------------------------------------------


# -- the rows --------------------------------------------------------------------------------


class Row:
    """Raw command and API job, run alternately so load changes hit both alike."""

    def __init__(self, api: BenchServer, raw: list[str], task: dict, runs: int) -> None:
        self.raw = raw
        self.raw_wall: list[float] = []
        self.raw_cpu: list[float] = []
        self.job_wall: list[float] = []
        self.job_cpu: list[float] = []
        run(raw)
        self.result = api.task(task)  # warm-up
        for _ in range(runs):
            cpu, t = child_cpu(), time.perf_counter()
            run(raw)
            self.raw_wall.append(time.perf_counter() - t)
            self.raw_cpu.append(child_cpu() - cpu)
            with ToolWatch(api.proc.pid) as watch:
                t = time.perf_counter()
                self.result = api.task(task)
                self.job_wall.append(time.perf_counter() - t)
            self.job_cpu.append(watch.cpu)
            self.tools = watch.summary()
            self.counts, self.job_rss = watch.counts(), watch.peak_mb
        self.raw_rss = peak_rss_mb(raw)

    @property
    def ratio(self) -> float:
        return med(self.job_wall) / med(self.raw_wall)

    def report(self, name: str, info: list[float] | None, extra: str = "") -> None:
        """Print the row; ``info``: video.info times to show ``job - info`` against."""
        r, j = med(self.raw_wall), med(self.job_wall)
        print(
            f"{name:<8} raw {r * 1000:7.0f} ms (p95 {p95(self.raw_wall) * 1000:6.0f})   "
            f"job {j * 1000:7.0f} ms (p95 {p95(self.job_wall) * 1000:6.0f})   "
            f"job/raw {j / r:5.2f} end to end, {(j - r) * 1000:+.0f} ms"
        )
        print(f"{'':<8} raw command: {shlex.join(self.raw)}")
        if info is not None:
            i = med(info)
            print(
                f"{'':<8} job - info {(j - i) * 1000:7.0f} ms: {(j - i) / r:5.2f}x raw, "
                f"{(j - i - r) * 1000:+.0f} ms"
            )
        print(
            f"{'':<8} tool CPU raw {med(self.raw_cpu):.2f} s, job {med(self.job_cpu):.2f} s "
            f"({med(self.job_cpu) / med(self.raw_cpu):.2f}x); raw RSS {self.raw_rss:.0f} MB; "
            f"job: {self.tools}. {extra}"
        )

    def minus_info(self, info: list[float]) -> float:
        """(job - info) / raw."""
        return (med(self.job_wall) - med(info)) / med(self.raw_wall)


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def med(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def once(argv: list[str]) -> float:
    t = time.perf_counter()
    run(argv)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "dragon-bench-video"
    )
    parser.add_argument(
        "--long-reverse",
        action="store_true",
        help="also reverse the 2-minute clip through the API (RSS check)",
    )
    parser.add_argument(
        "--skip-slow-baselines",
        action="store_true",
        help="skip output seeking and the fps-filter strip (about 15 s)",
    )
    args = parser.parse_args()

    long, short = make_sources(args.cache)
    versions = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    print(
        f"nproc {os.cpu_count()}, {versions.splitlines()[0]}, runs {args.runs}, "
        f"load {os.getloadavg()[0]:.1f}"
    )

    work = Path(tempfile.mkdtemp(prefix="bench-video-"))
    origin, base = start_origin(args.cache)
    api = BenchServer(data_dir=work / "data")
    try:
        bench(api, base, long, short, work, args)
    finally:
        api.stop()
        origin.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    print(f"load at the end {os.getloadavg()[0]:.1f}")


def bench(api: BenchServer, base: str, long: Path, short: Path, work: Path, args) -> None:
    runs = args.runs
    url_long, url_short = f"{base}/{long.name}", f"{base}/{short.name}"
    info_long, info_short = [], []
    for _ in range(runs + 1):
        for url, out in ((url_long, info_long), (url_short, info_short)):
            t = time.perf_counter()
            api.task({"task_name": "video.info", "url": url})
            out.append(time.perf_counter() - t)
    info_long, info_short = info_long[1:], info_short[1:]
    print(
        f"video.info (download + sniff + probe): 2-minute {med(info_long) * 1000:.0f} ms, "
        f"20 s {med(info_short) * 1000:.0f} ms"
    )

    # 5. video.thumb at t = 100 s
    raw = [*FFMPEG, "-ss", "100", "-i", str(long), "-frames:v", "1", str(work / "t.jpg")]
    row = Row(api, raw, {"task_name": "video.thumb", "url": url_long, "time": 100}, runs)
    row.report("thumb", None)
    check(
        "thumb: job - raw, end to end, ms", (med(row.job_wall) - med(row.raw_wall)) * 1000, "<=", 60
    )
    if not args.skip_slow_baselines:
        seek = [*FFMPEG, "-i", str(long), "-ss", "100", "-frames:v", "1", str(work / "t2.jpg")]
        took = once(seek)
        print(f"{'':<8} output seeking: {took:.2f} s: {shlex.join(seek)}")
        check("thumb: output seeking / job, x", took / med(row.job_wall), ">=", 50)

    # 6. video.strip, 10 frames of the 2-minute clip, 320 px wide
    inputs, graph = [], []
    for i in range(10):
        inputs += ["-skip_frame", "nokey", "-ss", str(i * 12 + 6), "-i", str(long)]
        graph.append(f"[{i}:v]trim=end_frame=1,scale=320:-2[v{i}]")
    graph.append("".join(f"[v{i}]" for i in range(10)) + "hstack=inputs=10")
    raw = [
        *FFMPEG,
        *inputs,
        "-filter_complex",
        ";".join(graph),
        "-frames:v",
        "1",
        str(work / "s.jpg"),
    ]
    row = Row(
        api, raw, {"task_name": "video.strip", "url": url_long, "width": 320, "count": 10}, runs
    )
    row.report("strip", info_long)
    check("strip: (job - info) / raw, x", row.minus_info(info_long), "<=", 1.2)
    check("strip: job tools' peak RSS, MB", row.job_rss, "<=", 400)
    if not args.skip_slow_baselines:
        fps = [
            *FFMPEG,
            "-i",
            str(long),
            "-vf",
            "fps=1/12,scale=320:-2,tile=10x1",
            "-frames:v",
            "1",
            str(work / "f.jpg"),
        ]
        took = once(fps)
        print(f"{'':<8} fps filter: {took:.2f} s: {shlex.join(fps)}")
        check("strip: fps filter / job, x", took / med(row.job_wall), ">=", 5)

    # 7. video.reverse of the 20 s clip against a single pass with the same encoder settings
    data = json.loads(
        subprocess.run(probe.ffprobe_argv(short, "mov"), capture_output=True, check=True).stdout
    )
    info = probe.parse_probe(data, path=short, demuxer="mov", mime="video/mp4")
    rate = info.bit_rate // 1000
    raw = [
        *FFMPEG,
        "-i",
        str(short),
        "-vf",
        "reverse",
        "-af",
        "areverse",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "23",
        "-g",
        "250",
        "-maxrate",
        f"{rate}k",
        "-bufsize",
        f"{2 * rate}k",
        "-c:a",
        "aac",
        str(work / "r.mp4"),
    ]
    row = Row(api, raw, {"task_name": "video.reverse", "url": url_short}, max(1, min(runs, 3)))
    row.report("reverse", info_short, f"Output {row.result['duration']} s.")
    check("reverse: (job - info) / raw, x", row.minus_info(info_short), "<=", 1.15)
    check("reverse: job tools' peak RSS, MB", row.job_rss, "<=", 1024)
    if args.long_reverse:
        with ToolWatch(api.proc.pid) as watch:
            t = time.perf_counter()
            result = api.task({"task_name": "video.reverse", "url": url_long})
        print(
            f"{'':<8} 2-minute reverse: {time.perf_counter() - t:.1f} s, {watch.summary()}, "
            f"output {result['duration']} s"
        )

    # 8. video.convert of the 20 s clip: the server's own argv, run raw
    params = dict(
        width=None,
        height=None,
        crop=False,
        audio_codec="aac",
        video_codec="h264",
        video_bitrate=3000,
        audio_bitrate=128,
        sample_rate=44100,
        crf=23,
        gop=250,
    )
    raw, _ = video_convert.build_argv(info, params, work / "c.mp4", Settings.load(env={}))
    row = Row(api, raw, {"task_name": "video.convert", "url": url_short}, max(1, min(runs, 3)))
    row.report("convert", info_short)
    check(
        "convert: job / (1.05 raw + 150 ms), x",
        med(row.job_wall) / (1.05 * med(row.raw_wall) + 0.150),
        "<=",
        1,
    )
    check("convert: ffprobe runs per job", row.counts["ffprobe"], "<=", 1)


if __name__ == "__main__":
    main()
