"""Resumable uploads (tus at /v2/uploads) against a curl PUT, then video.convert of the upload.

The source is a real video made at run time: testsrc2 at 1920x1080, 25 fps, H.264 lossless
(x264 ultrafast, qp 0: a low-complexity picture at a high bitrate, about 28 Mbit/s) with AAC
audio, in MP4, cut by ffmpeg at ``--mb`` megabytes (1000 by default, about 4.7 minutes).
``--source FILE`` reuses a file instead.

Each round, alternately:

- baseline: ``curl -T FILE`` (one PUT, ``Expect:`` off) to a plain receiver on this box: a
  stdlib ``http.server`` in a process of its own that reads the body into two 1 MiB
  buffers in turn, writes each to a file in a thread while the next one arrives, and
  ``fdatasync``s the file before answering 201 (the bytes are on disk when the client is
  told, as tus's stored offset promises; no protocol, no database). The same curl to the
  receiver's ``/null``, which keeps nothing, shows what the loopback alone allows;
- tus: ``tuspy`` (the client of the e2e tests) uploads the same file to ``dragon serve`` in
  ``--chunk-mb`` PATCHes (64 by default), from the creation POST to the last 204.

Both are timed by the client, and both receivers write to the same disk. While the tus
upload runs, the server's RSS is read from /proc every 50 ms: "flat" means it does not grow
with the file (the target: at most 64 MB over its RSS before the upload). Then the last
upload is converted (``video.convert`` of ``upload:ID`` to 640 px wide, blocking), checked
by ffprobe against the source's duration, with the server's RSS read the same way.

Run: .venv/bin/python scripts/bench_tus.py [--mb 1000] [--rounds 2] [--chunk-mb 64]
     [--source FILE] [--dir DIR] [--no-convert]

Targets: tus upload throughput >= 0.8x the curl PUT's; server RSS growth <= 64 MB.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchlib import BenchServer, check, free_port  # noqa: E402

MB = 1_000_000
GiB = 1024**3
RSS_GROWTH_MB = 64  # the most the server's RSS may grow while a 1 GB upload goes through
TUS = {"Tus-Resumable": "1.0.0"}
CURL = ["curl", "-sS", "-f", "-o", "/dev/null", "-H", "Expect:"]


def make_video(path: Path, megabytes: int) -> None:
    """A 1080p H.264 (lossless) + AAC MP4 of about ``megabytes`` MB (ffmpeg's -fs cut)."""
    print(f"making a {megabytes} MB 1080p H.264 clip ...", flush=True)
    seconds = megabytes * 8 / 25 + 60  # longer than needed at ~28 Mbit/s; -fs ends it
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=25:duration={seconds:.0f}",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds:.0f}",
            "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-shortest", "-fs", str(megabytes * MB), str(path),
        ],
        check=True,
    )  # fmt: skip


def duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        text=True,
    )
    return float(json.loads(out.stdout)["format"]["duration"])


# -- the baseline's receiver ------------------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    """PUT: the body to ``directory/put.bin``, fdatasync, then 201. Reading the socket and
    writing the file overlap (two 1 MiB buffers, the writes in a thread), as dragon's do.
    ``PUT /null`` reads the body and keeps nothing: what the loopback alone allows."""

    protocol_version = "HTTP/1.1"
    directory = Path()

    def do_PUT(self) -> None:  # noqa: N802 - the base class's naming
        left = int(self.headers["Content-Length"])
        buffers = [memoryview(bytearray(1024**2)) for _ in range(2)]
        fd = os.open(self.directory / "put.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with ThreadPoolExecutor(1) as disk:
            writing: Future[None] | None = None
            while left:
                buffers.reverse()  # not the one being written
                buffer = buffers[0]
                got = self.rfile.readinto(buffer[: min(left, len(buffer))])
                if not got:
                    break
                if writing is not None:
                    writing.result()
                if self.path != "/null":
                    writing = disk.submit(write_all, fd, buffer[:got])
                left -= got
            if writing is not None:
                writing.result()
        synced = time.monotonic()
        os.fdatasync(fd)
        os.close(fd)
        self.send_response(201 if not left else 400)
        self.send_header("Content-Length", "0")
        self.send_header("Sync-Seconds", f"{time.monotonic() - synced:.3f}")
        self.end_headers()

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


def receive(directory: str, port: int) -> None:
    """The receiver's process: serve until terminated."""
    Receiver.directory = Path(directory)
    HTTPServer(("127.0.0.1", port), Receiver).serve_forever()


def curl_put(url: str, path: Path) -> tuple[float, float]:
    """Seconds for ``curl -T`` of ``path`` to ``url``, as the client sees them, and the
    receiver's final fdatasync's share of them."""
    t0 = time.monotonic()
    done = subprocess.run(
        [*CURL, "-w", "%header{sync-seconds}", "-T", str(path), url],
        check=True,
        capture_output=True,
        text=True,
    )
    return time.monotonic() - t0, float(done.stdout)


# -- dragon's side ----------------------------------------------------------------------------


class RSS:
    """The peak RSS (MB) of process ``pid`` while the ``with`` block runs, read from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = self.now()
        self.peak = self.before
        self._done = threading.Event()

    def now(self) -> float:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def _sample(self) -> None:
        while not self._done.wait(0.05):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> RSS:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def tus_upload(server: BenchServer, path: Path, chunk: int) -> tuple[str, float]:
    """Upload ``path`` with tuspy in ``chunk``-byte PATCHes: (its URL, seconds)."""
    from tusclient import client

    tus = client.TusClient(f"{server.url}/v2/uploads", headers=server.headers)
    t0 = time.monotonic()
    uploader = tus.uploader(str(path), chunk_size=chunk, metadata={"filename": path.name})
    uploader.upload()
    return str(uploader.url), time.monotonic() - t0


def delete_upload(server: BenchServer, url: str) -> None:
    req = urllib.request.Request(url, method="DELETE", headers={**server.headers, **TUS})
    urllib.request.urlopen(req, timeout=60).close()


def convert(server: BenchServer, url: str, source: Path) -> bool:
    """video.convert of the upload at ``url`` to 640 px wide, as long as ``source``."""
    upload_id = url.rsplit("/", 1)[1]
    task = {"task_name": "video.convert", "url": f"upload:{upload_id}", "width": 640}
    with RSS(server.proc.pid) as rss:
        t0 = time.monotonic()
        result = server.task(task, timeout=7200)
        took = time.monotonic() - t0
    print(
        f"video.convert of upload:{upload_id} to 640 px: {took:.1f} s,"
        f" {result['width']}x{result['height']}, {result['duration']:.1f} s long;"
        f" server RSS {rss.before:.0f} MB before, {rss.peak:.0f} MB at most"
    )
    ratio = result["duration"] / duration(source)
    return check("converted / source duration", ratio, ">=", 0.99)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mb", type=int, default=1000, help="size of the made clip, MB")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chunk-mb", type=int, default=64, help="bytes per tus PATCH, MiB")
    parser.add_argument("--source", type=Path, help="upload this file instead of making one")
    parser.add_argument("--dir", type=Path, help="work folder (default: a temp dir)")
    parser.add_argument(
        "--no-convert", action="store_true", help="the uploads alone, no video.convert"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dragon-bench-tus-", dir=args.dir))
    source = args.source or work / "source.mp4"
    if args.source is None:
        make_video(source, args.mb)
    size = source.stat().st_size
    print(f"source: {size / MB:,.0f} MB, {duration(source):.1f} s; work folder {work}")

    put_dir = work / "put"
    put_dir.mkdir()
    port = free_port()
    receiver = multiprocessing.get_context("spawn").Process(
        target=receive, args=(str(put_dir), port), daemon=True
    )
    receiver.start()
    limits = str(4 * GiB + size)
    server = BenchServer(
        env={
            "DRAGON_MAX_UPLOAD_BYTES": limits,
            "DRAGON_MAX_PENDING_UPLOAD_BYTES": limits,
            "DRAGON_MAX_DOWNLOAD_BYTES": limits,
        },
        data_dir=work / "dragon",
    )
    chunk = args.chunk_mb * 1024**2
    print(f"baseline: {' '.join(CURL)} -T {source} http://127.0.0.1:{port}/")
    try:
        time.sleep(0.5)  # the receiver's process is listening
        puts, syncs, nulls, tuses, growths = [], [], [], [], []
        url = ""
        for n in range(args.rounds):
            nulls.append(curl_put(f"http://127.0.0.1:{port}/null", source)[0])
            put_s, sync_s = curl_put(f"http://127.0.0.1:{port}/", source)
            puts.append(put_s)
            syncs.append(sync_s)
            (put_dir / "put.bin").unlink()
            if url:
                delete_upload(server, url)
            with RSS(server.proc.pid) as rss:
                url, seconds = tus_upload(server, source, chunk)
            tuses.append(seconds)
            growths.append(rss.peak - rss.before)
            print(
                f"round {n + 1}: curl PUT {put_s:.2f} s ({size / MB / put_s:,.0f} MB/s;"
                f" {sync_s:.2f} s of it the receiver's final fdatasync),"
                f" tus {seconds:.2f} s ({size / MB / seconds:,.0f} MB/s);"
                f" curl PUT to /null {size / MB / nulls[-1]:,.0f} MB/s;"
                f" server RSS {rss.before:.0f} MB before, {rss.peak:.0f} MB at most"
                f" (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
        put, tus = statistics.median(puts), statistics.median(tuses)
        unsynced = statistics.median(p - s for p, s in zip(puts, syncs, strict=True))
        print(
            f"median: curl PUT {size / MB / put:,.0f} MB/s, tus ({args.chunk_mb} MiB PATCHes)"
            f" {size / MB / tus:,.0f} MB/s; without the PUT receiver's final fdatasync (its"
            f" bytes then not yet durable) {size / MB / unsynced:,.0f} MB/s, tus at"
            f" {unsynced / tus:.2f}x of that (no target); curl PUT to /null (no disk)"
            f" {size / MB / statistics.median(nulls):,.0f} MB/s"
        )
        met = [
            check("tus upload throughput / curl PUT", put / tus, ">=", 0.8, "x"),
            check("server RSS growth during the upload", max(growths), "<=", RSS_GROWTH_MB, " MB"),
        ]
        if not args.no_convert:
            met.append(convert(server, url, source))
    finally:
        server.stop()
        receiver.terminate()
        receiver.join()
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
