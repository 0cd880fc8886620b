"""Status of one key: dragon's ``GET /v2/status`` against a bare aiohttp handler, side by side.

    .venv/bin/python scripts/bench_status.py [--seconds 5] [--rounds 3] [--connections 64]

A real ``dragon serve`` (its defaults) runs one ``hello`` task; the body it answers to
``GET /v2/status?tasks=KEY`` is then served byte for byte by a bare aiohttp application
in a process of its own: one route, no middleware, no access log, on the same event loop
as ``dragon serve`` (uvloop). wrk (``-t1``, ``--connections``, the same secret header)
drives one server, then the other, ``--rounds`` times, so a change in the box's other load
hits both alike; each figure is the median of its rounds. Needs ``wrk`` (``make bench``
installs it).

Target (issue 21): dragon >= 0.6x the bare handler's requests per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from benchlib import BenchServer, check, free_port, wrk_ms  # noqa: E402

TARGET = 0.6


def wrk(url: str, secret: str, connections: int, seconds: int) -> dict:
    """wrk against ``url``: req/s, p50/p99 ms, non-2xx count."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    argv += ["-H", f"Authorization: Secret {secret}", url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": wrk_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        "p99": wrk_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
        "bad": int(non2xx.group(1)) if non2xx else 0,
    }


# -- the bare handler (run in its own process: ``bench_status.py --bare PORT BODY``) ----------


def serve_bare(port: int, body_file: Path) -> None:
    """Answer ``GET /v2/status`` with the bytes of ``body_file``, nothing else."""
    from aiohttp import web

    body = body_file.read_bytes()

    async def status(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/v2/status", status)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    try:
        import uvloop
    except ImportError:  # dragon serve falls back alike
        asyncio.run(main())
    else:
        uvloop.run(main())


def start_bare(body: bytes, work: Path) -> tuple[subprocess.Popen, str]:
    path = work / "status.json"
    path.write_bytes(body)
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--bare", str(port), str(path)])
    url = f"http://127.0.0.1:{port}/v2/status"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the bare server did not start")


def get(url: str, secret: str) -> bytes:
    req = urllib.request.Request(url, headers={"Authorization": f"Secret {secret}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read()


def measure(args: argparse.Namespace, work: Path) -> dict[str, list[dict]]:
    server = BenchServer({"DRAGON_TOOL_NICE": None})
    bare = None
    try:
        body = json.dumps({"block": True, "tasks": [{"task_name": "hello", "name": "bench"}]})
        req = urllib.request.Request(
            f"{server.url}/v2/create", data=body.encode(), headers=server.headers
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            key = json.loads(r.read())[0]["key"]
        ours = f"{server.url}/v2/status?tasks={key}"
        answer = get(ours, server.secret)
        bare, theirs = start_bare(answer, work)
        assert get(theirs, server.secret) == answer
        print(f"the document ({len(answer)} bytes): {answer.decode()}")
        print(
            f"command: wrk -t1 -c{args.connections} -d{args.seconds}s --latency -H "
            f"'Authorization: Secret <secret>' URL"
        )
        runs: dict[str, list[dict]] = {"bare aiohttp": [], "dragon": []}
        order = list(runs)
        for n in range(args.rounds):
            for name in order:
                url = theirs if name == "bare aiohttp" else ours
                w = wrk(url, server.secret, args.connections, args.seconds)
                runs[name].append(w)
                extra = f", {w['bad']} non-2xx" if w["bad"] else ""
                print(
                    f"  round {n + 1}, {name}: {w['rps']:,.0f} req/s, p50 {w['p50']:.1f} ms,"
                    f" p99 {w['p99']:.1f} ms{extra}",
                    flush=True,
                )
            order.reverse()
        return runs
    finally:
        if bare is not None:
            bare.terminate()
            bare.wait()
        server.stop()


def main(args: argparse.Namespace) -> int:
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk; make bench does)")
        return 1
    print(
        f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} (a shared box: "
        "figures move with the other load)"
    )
    print(
        f"status of one key (an ended hello), {args.connections} connections, "
        f"{args.rounds} rounds of {args.seconds} s each, in turns"
    )
    work = Path(tempfile.mkdtemp(prefix="bench-status-"))
    try:
        runs = measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rps = {name: statistics.median(w["rps"] for w in ws) for name, ws in runs.items()}
    p99 = {name: statistics.median(w["p99"] for w in ws) for name, ws in runs.items()}
    ratio = rps["dragon"] / rps["bare aiohttp"]
    print()
    print(f"{'':16}{'req/s':>10}{'p99 ms':>10}")
    for name in runs:
        print(f"{name:16}{rps[name]:>10,.0f}{p99[name]:>10.1f}")
    print(f"{'dragon / bare':16}{ratio:>9.2f}x")
    print()
    check("status of one key, dragon / bare aiohttp req/s, x", ratio, ">=", TARGET)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--bare"]:
        serve_bare(int(sys.argv[2]), Path(sys.argv[3]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs of each server")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    sys.exit(main(parser.parse_args()))
