"""Upload throughput: video.upload.youtube against curl, to the same local YouTube server.

A 1 GB video (random grey frames, raw video in Matroska, made from /dev/urandom at run time
in a temp dir) is served on loopback. The real task runs through ``dragon serve``
(download, probe, resumable upload in DRAGON_UPLOAD_CHUNK_BYTES chunks, the default
16 MiB); curl then PUTs the same file in one request to a session of the same server
(tests/support/platforms.py, bytes hashed, not kept). Both transfers are timed by the
server, from the first byte received to the last, and checked by SHA-256 against the
file. The server's peak RSS (VmHWM) is read after start-up and after the uploads: flat
means it does not grow with the file.

Run: .venv/bin/python scripts/bench_upload.py [--mb 1000] [--rounds 3] [--chunk-mb N]

Measured on the shared 2-core box (load ~5), 16 MiB chunks: curl 2.54 s (394 MB/s), the
task 2.13 s (469 MB/s), 1.19x; peak RSS 113 MB after start-up, 123 MB after three 1 GB
downloads and uploads. Both sides are bounded by the receiving Python server, so the
ratio says the task adds no cost of its own, not which client is faster in general.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchlib import BenchServer, start_origin  # noqa: E402

from tests.support.platforms import PlatformServer  # noqa: E402

TOKEN, KEY = "bench-token", "bench-key"
FRAME = 1000 * 1000  # one grey 1000x1000 frame


def make_source(path: Path, megabytes: int) -> None:
    frames = megabytes * 1_000_000 // FRAME
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-s",
            "1000x1000",
            "-r",
            "25",
            "-i",
            "/dev/urandom",
            "-frames:v",
            str(frames),
            "-c:v",
            "rawvideo",
            "-f",
            "matroska",
            str(path),
        ],
        check=True,
    )


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def curl_upload(platforms: PlatformServer, path: Path) -> None:
    """One PUT of the whole file with curl to a fresh resumable session."""
    size = path.stat().st_size
    req = urllib.request.Request(
        f"{platforms.url}/youtube/upload/youtube/v3/videos?uploadType=resumable"
        f"&part=snippet,status&key={KEY}",
        method="POST",
        data=b'{"snippet": {"title": "curl"}, "status": {"privacyStatus": "private"}}',
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/json",
            "X-Upload-Content-Length": str(size),
            "X-Upload-Content-Type": "video/x-matroska",
        },
    )
    with urllib.request.urlopen(req) as r:
        session = r.headers["Location"]
    subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-T",
            str(path),
            "-H",
            "Expect:",
            "-H",
            f"Content-Range: bytes 0-{size - 1}/{size}",
            "-H",
            "Content-Type: video/x-matroska",
            session,
        ],
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1000, help="source size in MB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--chunk-mb",
        type=int,
        default=0,
        help="DRAGON_UPLOAD_CHUNK_BYTES in MiB (default: the server's)",
    )
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="dragon-bench-upload-"))
    platforms = PlatformServer(keep_bytes=False)
    platforms.youtube.tokens, platforms.youtube.dev_keys = {TOKEN}, {KEY}
    httpd, origin = start_origin(folder)
    server = None
    try:
        source = folder / "source.mkv"
        make_source(source, args.mb)
        size, digest = source.stat().st_size, sha256(source)
        env = {
            **platforms.env,
            "DRAGON_MAX_DOWNLOAD_BYTES": str(4 * size),
            "DRAGON_CONCURRENCY": "1",
        }
        if args.chunk_mb:
            env["DRAGON_UPLOAD_CHUNK_BYTES"] = str(args.chunk_mb * 1024 * 1024)
        server = BenchServer(env, data_dir=folder / "dragon")
        rss_idle = peak_rss_mb(server.proc.pid)
        ours, plain = [], []
        for _ in range(args.rounds):
            result = server.task(
                {
                    "task_name": "video.upload.youtube",
                    "url": f"{origin}/source.mkv",
                    "access_token": TOKEN,
                    "developer_key": KEY,
                    "title": "bench",
                }
            )
            upload = platforms.youtube.last
            assert result["output"].endswith(upload.id) and upload.complete
            assert upload.sha256.hexdigest() == digest, "dragon uploaded different bytes"
            ours.append(upload.seconds)
            curl_upload(platforms, source)
            upload = platforms.youtube.last
            assert upload.complete and upload.sha256.hexdigest() == digest
            plain.append(upload.seconds)
        rss_peak = peak_rss_mb(server.proc.pid)
    finally:
        if server is not None:
            server.stop()
        httpd.shutdown()
        platforms.close()
        shutil.rmtree(folder, ignore_errors=True)

    mb = size / 1e6
    o, p = statistics.median(ours), statistics.median(plain)
    print(f"{mb:.0f} MB to the local YouTube-protocol server, median of {args.rounds}:")
    print(
        f"  curl -T (one PUT)            {p:6.2f} s  {mb / p:7.1f} MB/s  "
        f"({', '.join(f'{t:.2f}' for t in plain)})"
    )
    print(
        f"  video.upload.youtube (task)  {o:6.2f} s  {mb / o:7.1f} MB/s  "
        f"({', '.join(f'{t:.2f}' for t in ours)})"
    )
    print(
        f"  throughput ratio dragon/curl {p / o:.2f}x median, {min(plain) / min(ours):.2f}x best"
        " (target >= 0.8x)"
    )
    print(
        f"  dragon server peak RSS: {rss_idle:.0f} MB after start-up, {rss_peak:.0f} MB after"
        f" {args.rounds} downloads and uploads of {mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
