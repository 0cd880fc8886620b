"""Download throughput: ``Fetcher.download`` against ``curl -o``, side by side.

A 200 MB random file is served by a local aiohttp origin running in its own process (so it
does not share the fetcher's event loop), then fetched by each client into the same temp
dir (``--dest``, default: the system temp dir). The fetcher runs on uvloop, as
``dragon serve`` does. Prints the median wall-clock MB/s and the median CPU seconds per
download of each, and the ratio (target: fetcher >= 0.8x curl).

Wall-clock figures on a shared 2-core VM swing by 2x from run to run (disk writeback, the
origin and the client competing for cores); CPU seconds are the steadier comparison.

    .venv/bin/python scripts/bench_fetch.py [--size-mb 200] [--runs 3] [--dest /dev/shm]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop
from aiohttp import web

from dragon.config import Settings
from dragon.net.fetcher import AddressPolicy, Fetcher


def serve(folder: str, port: int) -> None:
    app = web.Application()
    app.router.add_static("/", folder)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("origin did not start")


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def measure(who: int, fn, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``fn(*args)``, starting with no dirty pages pending."""
    os.sync()
    cpu0, started = cpu(who), time.perf_counter()
    fn(*args)
    return time.perf_counter() - started, cpu(who) - cpu0


def curl(url: str, target: Path) -> None:
    subprocess.run(["curl", "-sSf", "-o", str(target / "curl.bin"), url], check=True)


def compare(url: str, dest: Path, runs: int, size: int) -> tuple[list, list]:
    """Alternate curl and the fetcher, so neither always pays for the other's writeback."""
    settings = Settings.load(env={}, max_download_bytes=size * 2)
    fetcher = Fetcher(settings, AddressPolicy(allow_private=True))
    loop = uvloop.new_event_loop()
    curls, fetches = [], []
    try:
        loop.run_until_complete(fetcher.start())
        for i in range(runs + 1):  # the first round only warms caches and connections
            target = dest / f"run{i}"
            target.mkdir()
            c = measure(resource.RUSAGE_CHILDREN, curl, url, target)
            f = measure(
                resource.RUSAGE_SELF, loop.run_until_complete, fetcher.download(url, target)
            )
            assert (target / "source").stat().st_size == size
            shutil.rmtree(target)
            if i:
                curls.append(c)
                fetches.append(f)
    finally:
        loop.run_until_complete(fetcher.close())
        loop.close()
    return curls, fetches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dest", default=None, help="folder for the temp files")
    parser.add_argument("--serve", nargs=2, metavar=("FOLDER", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    size = args.size_mb * 1000 * 1000
    with tempfile.TemporaryDirectory(dir=args.dest) as tmp:
        origin_dir, dest = Path(tmp, "origin"), Path(tmp, "dest")
        origin_dir.mkdir()
        dest.mkdir()
        with open(origin_dir / "big.bin", "wb") as f:
            for _ in range(args.size_mb):
                f.write(os.urandom(1000 * 1000))
        port = free_port()
        origin = subprocess.Popen([sys.executable, __file__, "--serve", str(origin_dir), str(port)])
        try:
            wait_for(port)
            curls, fetches = compare(f"http://127.0.0.1:{port}/big.bin", dest, args.runs, size)
        finally:
            origin.terminate()
            origin.wait()
    print(f"file: {args.size_mb} MB, runs: {args.runs} (medians), dest: {args.dest or 'tmp'}")
    rates = {}
    for name, results in (("curl -o", curls), ("Fetcher", fetches)):
        walls = [w for w, _ in results]
        rates[name] = args.size_mb / statistics.median(walls)
        cpu_s = statistics.median(c for _, c in results)
        runs = ", ".join(f"{w:.3f}" for w in walls)
        print(f"{name:9} {rates[name]:7.1f} MB/s  {cpu_s:.3f} CPU s  runs (s): {runs}")
    print(f"ratio fetcher/curl: {rates['Fetcher'] / rates['curl -o']:.2f} (target >= 0.8)")


if __name__ == "__main__":
    main()
