"""Core API throughput on this box (issue "Core", benchmark section).

1. hello tasks end to end per second: 5,000 tasks in batches of 100 with block=true,
   4 clients at once.
2. status GET requests per second and p99 with 64 concurrent connections (wrk).
3. p50/p99 delay from a status change (the task's ``completed`` time) to its arrival on
   1,000 concurrent status_stream connections.

Run: .venv/bin/python scripts/bench_api.py    (targets: >= 2,000 tasks/s,
>= 10,000 status req/s, p99 stream delay <= 100 ms)
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import BenchServer  # noqa: E402


async def tasks_per_second(server: BenchServer, total=5000, batch=100, clients=4) -> float:
    async with aiohttp.ClientSession(headers=server.headers) as http:
        body = {"tasks": [{"task_name": "hello", "name": "bench"}] * batch, "block": True}

        async def client(n):
            for _ in range(n):
                async with http.post(server.url + "/v2/create", json=body) as r:
                    docs = await r.json()
                    bad = [d for d in docs if d["status"] != "success"]
                    assert not bad, bad[:1]

        batches = total // batch
        t0 = time.perf_counter()
        await asyncio.gather(*(client(batches // clients) for _ in range(clients)))
        return total / (time.perf_counter() - t0)


def status_rps(server: BenchServer, key: str) -> tuple[float, str]:
    if not shutil.which("wrk"):
        return float("nan"), "wrk not installed (apt-get install wrk)"
    out = subprocess.run(
        ["wrk", "-t1", "-c64", "-d8s", "--latency", "-H",
         f"Authorization: Secret {server.secret}", f"{server.url}/v2/status?tasks={key}"],
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, f"p99 {p99}" + (f", {non2xx.group(1)} non-2xx" if non2xx else "")


async def stream_delay(server: BenchServer, connections=1000) -> tuple[float, float]:
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(headers=server.headers, connector=conn) as http:
        async with http.post(server.url + "/v2/create", json={
                "tasks": [{"task_name": "test.sleep", "seconds": 3}]}) as r:
            key = (await r.json())[0]["key"]
        arrivals: list[tuple[float, bytes]] = []
        opened = asyncio.Event()
        count = 0

        async def watch():
            nonlocal count
            async with http.get(f"{server.url}/v2/status_stream?tasks={key}",
                                timeout=aiohttp.ClientTimeout(total=60)) as resp:
                await resp.content.readline()
                count += 1
                if count == connections:
                    opened.set()
                async for line in resp.content:
                    arrivals.append((time.time(), line))  # parse later, off the clock

        watchers = [asyncio.create_task(watch()) for _ in range(connections)]
        await asyncio.wait_for(opened.wait(), 30)
        await asyncio.gather(*watchers)
    delays = []
    for arrived, line in arrivals:
        doc = orjson.loads(line)
        if doc["status"] == "success":
            done = datetime.fromisoformat(doc["events"]["completed"]).timestamp()
            delays.append((arrived - done) * 1000)
    delays.sort()
    return statistics.median(delays), delays[int(len(delays) * 0.99) - 1]


async def main() -> None:
    print(f"cores: {os.cpu_count()}")
    server = BenchServer({"DRAGON_TASK_MODULES": "tests.plugins.tasks",
                          "DRAGON_STREAM_QUEUE_SIZE": "64"})
    try:
        rate = await tasks_per_second(server)
        print(f"hello end to end: {rate:,.0f} tasks/s (target >= 2,000)")
        body = {"tasks": [{"task_name": "hello", "name": "x"}], "block": True}
        async with aiohttp.ClientSession(headers=server.headers) as http, \
                http.post(server.url + "/v2/create", json=body) as r:
            key = (await r.json())[0]["key"]
        rps, detail = status_rps(server, key)
        print(f"status GET, 64 connections: {rps:,.0f} req/s, {detail} (target >= 10,000)")
        p50, p99 = await stream_delay(server)
        print(f"status_stream fan-out to 1,000 connections: p50 {p50:.1f} ms,"
              f" p99 {p99:.1f} ms (target p99 <= 100 ms)")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
