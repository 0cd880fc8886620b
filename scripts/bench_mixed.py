"""Thumbnails while batch encodes run: interactive latency and batch throughput (issue 21).

    .venv/bin/python scripts/bench_mixed.py [--window 60] [--rounds 3] [--idle 15]
                                            [--think 0.5] [--clip-seconds 20]
    a quick run (2-3 minutes): --window 25 --idle 8 --clip-seconds 10

A real ``dragon serve`` with its defaults (slots, CPU priorities; the benchmarks' usual
private URLs for the local origin and no create rate limit, and a 1 s shutdown grace so
a case ends without waiting for its encodes) fetches a 24-megapixel JPEG (6000x4000,
gradients and noise, Pillow) and a 1080p30 H.264/AAC clip (ffmpeg lavfi testsrc2 + sine,
``--clip-seconds`` long) from a local HTTP origin. Each case runs on a fresh server:

1. idle: ``--idle`` image.thumb (400 px wide) of the JPEG, one blocking create after
   another with ``--think`` seconds between them, after two warm-ups. Their median is
   the idle latency.
2. an account keeps 2 x cores video.convert of the clip outstanding (each of 2 x cores
   workers creates one, waits for its end and creates the next): with one batch slot
   per core, cores of them encode and cores wait. Once every slot's encode reports
   progress, ``--window`` seconds of the encodes alone and ``--window`` seconds of
   thumbnails (one after another as in step 1; the last one is waited for) take turns,
   in ``--rounds`` turns each (alone/2, mixed, alone, ..., mixed, alone/2), so the box's
   other load and where the encodes stand in their runs land on both alike. Each
   thumbnail's latency is the round trip of its blocking create, as a user sees it.

Two cases: the encodes from another account, then from the thumbnails' own account.

Throughput is what the encodes got done over a span, with the encodes alone as the
baseline in the same run. The target's figure is the CPU time of the encoders (the
server's ffmpeg children, sampled from /proc every 0.2 s): one clip at fixed settings
costs the same CPU per frame, so this is the encode rate without rounding to whole
encodes. Also shown, from the status documents read at each span's start and end (an
ended encode counts 1, an executing one its ``progress`` / 100): encodes per minute and
seconds of video encoded per second; ffmpeg's progress is uneven (x264 holds its first
frames back), so over short spans that figure moves more.

Targets (issue 21), in both cases: every thumbnail (the max, not the median) <= 3x the
idle median; the encoders' CPU with thumbnails >= 0.85x alone. The script also prints
the niceness of the server's child processes (ffmpeg for the encodes, the pool's python
workers for the thumbnails) and the encodes queued at the start of each span alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from PIL import Image, ImageChops

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from benchlib import BenchServer, check, start_origin  # noqa: E402

CORES = os.cpu_count() or 1
OUTSTANDING = 2 * CORES
THUMB_WIDTH = 400
TARGET_LATENCY = 3.0  # max thumbnail latency during encodes, x the idle median
TARGET_THROUGHPUT = 0.85  # encodes with thumbnails, x alone
CASES = {"other": "encodes from another account", "same": "encodes from the same account"}


# -- media -----------------------------------------------------------------------------------


def make_jpeg(path: Path) -> None:
    """6000x4000, q90: a gradient per channel plus noise, so it compresses like a photo."""
    size = (6000, 4000)
    ramp = Image.linear_gradient("L")  # 256x256, dark at the top
    planes = [
        ramp.rotate(90).resize(size),
        ramp.resize(size),
        ramp.rotate(45).resize(size),
    ]
    noisy = [ImageChops.add(p, Image.effect_noise(size, 20), 1.0, -128) for p in planes]
    Image.merge("RGB", noisy).save(path, "JPEG", quality=90)


def make_clip(path: Path, seconds: int) -> None:
    """A 1080p30 H.264 clip with a 440 Hz AAC tone."""
    subprocess.run(
        [
            *("ffmpeg", "-v", "error", "-y"),
            *("-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds}"),
            *("-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
            *("-c:a", "aac", "-shortest", str(path)),
        ],
        check=True,
    )


def media(clip_seconds: int) -> Path:
    """The folder holding ``big.jpg`` and ``clip{N}.mp4`` (made once, kept in /tmp)."""
    folder = Path(tempfile.gettempdir()) / "dragon-bench-mixed"
    folder.mkdir(exist_ok=True)
    jpeg, clip = folder / "big.jpg", folder / f"clip{clip_seconds}.mp4"
    if not jpeg.exists():
        make_jpeg(folder / "big.part.jpg")
        (folder / "big.part.jpg").rename(jpeg)
    if not clip.exists():
        make_clip(folder / "clip.part.mp4", clip_seconds)
        (folder / "clip.part.mp4").rename(clip)
    return folder


# -- clients ---------------------------------------------------------------------------------


class Api:
    """One account's view of the server."""

    def __init__(self, http: aiohttp.ClientSession, base: str, secret: str) -> None:
        self.http = http
        self.base = base
        self.headers = {"Authorization": f"Secret {secret}"}

    async def post(self, path: str, body: dict) -> list[dict]:
        async with self.http.post(self.base + path, json=body, headers=self.headers) as r:
            if r.status != 200:
                raise RuntimeError(f"{path} answered {r.status}: {await r.text()}")
            return await r.json()

    async def statuses(self, keys: list[str]) -> list[dict]:
        docs: list[dict] = []
        for start in range(0, len(keys), 100):
            docs += await self.post("/v2/status", {"tasks": keys[start : start + 100]})
        return docs


async def run_thumbnails(
    api: Api, url: str, think: float, *, count: int = 0, until: float = 0.0
) -> list[float]:
    """Latencies (s) of image.thumb blocking creates one after another, ``think`` seconds
    apart: ``count`` of them, or as many as start before ``until`` (monotonic)."""
    task = {"task_name": "image.thumb", "url": url, "width": THUMB_WIDTH}
    took: list[float] = []

    def more() -> bool:
        return len(took) < count if count else time.monotonic() < until

    while more():
        if took:
            await asyncio.sleep(think)
        t0 = time.perf_counter()
        [doc] = await api.post("/v2/create", {"block": True, "tasks": [task]})
        took.append(time.perf_counter() - t0)
        if doc["status"] != "success":
            raise RuntimeError(f"image.thumb failed: {doc}")
    return took


@dataclass
class Encodes:
    """``count`` video.convert of ``url`` kept outstanding for ``api``'s account."""

    api: Api
    url: str
    count: int
    keys: list[str] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)
    failed: list[dict] = field(default_factory=list)
    workers: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self.workers = [asyncio.create_task(self._worker()) for _ in range(self.count)]

    async def stop(self) -> None:
        for worker in self.workers:
            worker.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)

    async def _worker(self) -> None:
        task = {"task_name": "video.convert", "url": self.url}
        while True:
            [doc] = await self.api.post("/v2/create", {"tasks": [task]})
            key = doc["key"]
            self.keys.append(key)
            while doc["status"] not in ("success", "error"):
                [doc] = await self.api.post("/v2/status", {"tasks": [key], "block": True})
            self.ended.add(key)
            if doc["status"] != "success":
                self.failed.append(doc)

    async def open_documents(self) -> tuple[int, list[dict]]:
        """(encodes known to have ended, the documents of the others)."""
        done = len(self.ended)
        return done, await self.api.statuses([k for k in self.keys if k not in self.ended])

    async def work(self) -> float:
        """Encodes' worth of work done so far: ended ones count 1, running ones their part."""
        done, docs = await self.open_documents()
        return done + sum(
            1.0 if d["status"] in ("success", "error") else d["progress"] / 100 for d in docs
        )

    async def lane(self) -> tuple[int, int]:
        """(executing, queued) among the outstanding encodes."""
        _, docs = await self.open_documents()
        statuses = [d["status"] for d in docs]
        return statuses.count("executing"), statuses.count("queued")

    async def saturated(self, timeout: float = 300) -> None:
        """Wait until every batch slot (one per core by default) holds an encode that has
        begun to report progress (x264 holds its first frames back for a while)."""
        deadline = time.monotonic() + timeout
        while True:
            _, docs = await self.open_documents()
            going = [d for d in docs if d["status"] == "executing" and d["progress"] > 0]
            if len(going) >= min(CORES, self.count):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the encodes did not fill the batch slots")
            await asyncio.sleep(0.25)


class Tools:
    """The server's child processes, sampled from /proc: their niceness, and the CPU time
    of its encoders (ffmpeg), counted per process so one that ends keeps its count."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu: dict[tuple[int, int], float] = {}  # (pid, start time): CPU seconds
        self.priorities: set[tuple[str, int]] = set()

    def sample(self) -> None:
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                kids = Path(f"/proc/{self.pid}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            for kid in kids:
                try:
                    comm = Path(f"/proc/{kid}/comm").read_text().strip()
                    stat = Path(f"/proc/{kid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                # Fields 14, 15, 19 and 22 of stat: utime, stime, nice, start time.
                self.priorities.add((comm, int(stat[16])))
                if comm == "ffmpeg":
                    used = (int(stat[11]) + int(stat[12])) / self.TICK
                    self.cpu[(int(kid), int(stat[19]))] = used

    def encoders_cpu(self) -> float:
        """CPU seconds the encoders have used so far (up to the last sample of each)."""
        self.sample()
        return sum(self.cpu.values())

    async def watch(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.2)


# -- one case --------------------------------------------------------------------------------


@dataclass
class Window:
    """What the encodes did over spans of time."""

    work: float = 0.0  # encodes' worth, from their progress
    cpu: float = 0.0  # CPU seconds of the encoders
    seconds: float = 0.0

    def add(self, work: float, cpu: float, seconds: float) -> None:
        self.work += work
        self.cpu += cpu
        self.seconds += seconds

    @property
    def per_minute(self) -> float:
        return 60 * self.work / self.seconds if self.seconds else 0.0

    @property
    def cores(self) -> float:
        return self.cpu / self.seconds if self.seconds else 0.0


@dataclass
class Result:
    idle: list[float] = field(default_factory=list)
    mixed: list[float] = field(default_factory=list)
    alone: Window = field(default_factory=Window)
    together: Window = field(default_factory=Window)
    queued: list[int] = field(default_factory=list)
    priorities: set[tuple[str, int]] = field(default_factory=set)
    ended: int = 0
    failed: int = 0


class Case:
    """One case on its own server: the idle thumbnails, then the turns with encodes."""

    def __init__(self, server: BenchServer, user: Api, encodes: Encodes, args, jpeg: str):
        self.user = user
        self.encodes = encodes
        self.tools = Tools(server.proc.pid)
        self.args = args
        self.jpeg = jpeg
        self.result = Result()

    async def span(self, window: Window, seconds: float, thumbnails: bool) -> None:
        """``seconds`` of the encodes, with thumbnails one after another or alone."""
        w0, c0, t0 = await self.encodes.work(), self.tools.encoders_cpu(), time.monotonic()
        if thumbnails:
            until = t0 + seconds  # the last thumbnail is waited for
            self.result.mixed += await run_thumbnails(
                self.user, self.jpeg, self.args.think, until=until
            )
        else:
            self.result.queued.append((await self.encodes.lane())[1])
            await asyncio.sleep(seconds)
        work, cpu = await self.encodes.work() - w0, self.tools.encoders_cpu() - c0
        window.add(work, cpu, time.monotonic() - t0)

    async def run(self) -> Result:
        args, result = self.args, self.result
        await run_thumbnails(self.user, self.jpeg, args.think, count=2)  # warm-up
        result.idle = await run_thumbnails(self.user, self.jpeg, args.think, count=args.idle)
        self.encodes.start()
        watch = asyncio.create_task(self.tools.watch())
        try:
            await self.encodes.saturated()
            # Alone and with thumbnails take turns, so the box's other load and where the
            # encodes stand in their runs land on both alike: alone/2, with, alone, ...,
            # with, alone/2.
            turn = args.window / args.rounds
            await self.span(result.alone, turn / 2, thumbnails=False)
            for n in range(args.rounds):
                await self.span(result.together, turn, thumbnails=True)
                last = n == args.rounds - 1
                await self.span(result.alone, turn / 2 if last else turn, thumbnails=False)
        finally:
            watch.cancel()
            await self.encodes.stop()
        result.priorities = self.tools.priorities
        result.ended, result.failed = len(self.encodes.ended), len(self.encodes.failed)
        return result


async def run_case(case: str, args: argparse.Namespace, urls: dict[str, str]) -> Result:
    server = BenchServer({"DRAGON_TOOL_NICE": None, "DRAGON_SHUTDOWN_GRACE_SECONDS": "1"})
    try:
        batch_secret = server.secret
        if case == "other":
            batch_secret = server.create_account("batch")["secret"]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
            user = Api(http, server.url, server.secret)
            encodes = Encodes(Api(http, server.url, batch_secret), urls["clip"], OUTSTANDING)
            return await Case(server, user, encodes, args, urls["jpeg"]).run()
    finally:
        server.stop()


# -- report ----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def report(results: dict[str, Result], clip_seconds: int) -> None:
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, value) -> None:
        rows.append((label, [value(r) for r in results.values()]))

    row("idle thumbnails", lambda r: str(len(r.idle)))
    row("  median, ms", lambda r: ms(statistics.median(r.idle)))
    row("  max, ms", lambda r: ms(max(r.idle)))
    row("thumbnails during encodes", lambda r: str(len(r.mixed)))
    row("  median, ms", lambda r: ms(statistics.median(r.mixed)))
    row("  max, ms", lambda r: ms(max(r.mixed)))
    row("  median / idle median", lambda r: f"{latency(r, statistics.median):.2f}x")
    row(f"  max / idle median (<= {TARGET_LATENCY:g}x)", lambda r: f"{latency(r, max):.2f}x")
    row("encodes queued (samples)", lambda r: ", ".join(map(str, r.queued)))
    row("encoders' CPU alone, cores", lambda r: f"{r.alone.cores:.2f}")
    row("encoders' CPU with thumbnails, cores", lambda r: f"{r.together.cores:.2f}")
    row(f"  with / alone (>= {TARGET_THROUGHPUT:g}x)", lambda r: f"{throughput(r):.2f}x")
    row("encodes alone, per min (progress)", lambda r: f"{r.alone.per_minute:.2f}")
    row("  s of video per s", lambda r: f"{r.alone.per_minute * clip_seconds / 60:.2f}")
    row("encodes with thumbnails, per min", lambda r: f"{r.together.per_minute:.2f}")
    row("  s of video per s", lambda r: f"{r.together.per_minute * clip_seconds / 60:.2f}")
    row("  with / alone", lambda r: f"{by_progress(r):.2f}x")
    row("encodes ended (failed)", lambda r: f"{r.ended} ({r.failed})")
    width = max(len(label) for label, _ in rows) + 2
    heads = [CASES[case] for case in results]
    cols = [max(len(h), *(len(v[i]) for _, v in rows)) + 2 for i, h in enumerate(heads)]
    print("".ljust(width) + "".join(h.rjust(c) for h, c in zip(heads, cols, strict=True)))
    for label, values in rows:
        print(label.ljust(width) + "".join(v.rjust(c) for v, c in zip(values, cols, strict=True)))
    for case, r in results.items():
        seen = " ".join(f"{command}:{nice}" for command, nice in sorted(r.priorities))
        print(f"server's child processes (command:nice), {CASES[case]}: {seen}")


def latency(r: Result, how) -> float:
    return how(r.mixed) / statistics.median(r.idle)


def throughput(r: Result) -> float:
    """The encoders' CPU with thumbnails against alone: the target's figure."""
    return r.together.cores / r.alone.cores if r.alone.cores else 0.0


def by_progress(r: Result) -> float:
    return r.together.per_minute / r.alone.per_minute if r.alone.per_minute else 0.0


async def main(args: argparse.Namespace) -> int:
    print(
        f"cores: {CORES}, load average {os.getloadavg()[0]:.1f} (a shared box: figures move "
        "with the other load)",
        flush=True,
    )
    folder = media(args.clip_seconds)
    origin, base = start_origin(folder)
    urls = {"jpeg": f"{base}/big.jpg", "clip": f"{base}/clip{args.clip_seconds}.mp4"}
    print(
        f"image.thumb ({THUMB_WIDTH} px) of a 6000x4000 JPEG, one blocking create after "
        f"another with {args.think} s think time between them; {OUTSTANDING} video.convert "
        f"of a {args.clip_seconds} s 1080p30 clip kept outstanding (2 x cores); {args.window} s "
        f"alone and {args.window} s with thumbnails, in {args.rounds} turns each",
        flush=True,
    )
    results: dict[str, Result] = {}
    try:
        for case in CASES:
            print(f"\n{CASES[case]} (a fresh server) ...", flush=True)
            results[case] = await run_case(case, args, urls)
    finally:
        origin.shutdown()
    print()
    report(results, args.clip_seconds)
    print()
    for case, r in results.items():
        name = CASES[case]
        check(
            f"max thumbnail latency, {name}, x idle median", latency(r, max), "<=", TARGET_LATENCY
        )
        batch = f"encoders' CPU (batch throughput), {name}, x alone"
        check(batch, throughput(r), ">=", TARGET_THROUGHPUT)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--window", type=float, default=60, help="seconds with thumbnails, and alone, per case"
    )
    parser.add_argument("--idle", type=int, default=15, help="idle thumbnails per case")
    parser.add_argument(
        "--think", type=float, default=0.5, help="seconds between one thumbnail and the next"
    )
    parser.add_argument("--clip-seconds", type=int, default=20, help="length of the 1080p clip")
    parser.add_argument(
        "--rounds", type=int, default=3, help="turns of thumbnails and alone in each window"
    )
    sys.exit(asyncio.run(main(parser.parse_args())))
