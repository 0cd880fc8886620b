"""Several nodes on one PostgreSQL: throughput against procrastinate, status latency, fan-out.

On one throwaway PostgreSQL (Debian's initdb/pg_ctl, as for the tests) and moto's S3:

1. 5,000 ``hello`` tasks through one dragon node, then through two, created in batches of
   500 by 4 clients spread over the nodes and waited for with ``block=true``; beside them,
   the same number of jobs doing the same work (a greeting) through procrastinate on the
   same database, its worker at concurrency 8. Target: dragon >= 2x procrastinate.
2. Status GET p99 with 64 concurrent clients over the two nodes (and, beside it, on one
   node with the default SQLite).
3. The delay from a change committed on node A to its arrival on 200 streams held on
   node B: each round creates a ``test.progress`` task, holds 200 status streams on B, and
   measures each stream's arrival of the final status against the ``completed`` time the
   running node recorded (rounds that B ran itself are skipped). Target: p99 <= 150 ms.

    .venv/bin/python scripts/bench_cluster.py [--tasks 5000]

Needs ``pip install -e '.[bench]'`` for procrastinate; PostgreSQL from ``make install``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from benchlib import BenchServer, check, free_port  # noqa: E402

from tests.support.postgres import PostgresCluster  # noqa: E402
from tests.support.s3 import MotoS3  # noqa: E402

BATCH = 500


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]


class Node(BenchServer):
    """Another node of ``first``'s cluster: same environment and account, own port."""

    def __init__(self, first: BenchServer, index: int) -> None:
        self.dir = first.dir.with_name(f"{first.dir.name}-{index}")
        self.dir.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **first.env,
            "DRAGON_DATA_DIR": str(self.dir),
            "DRAGON_PORT": str(self.port),
            "DRAGON_NODE_NAME": f"node-{index}",
        }
        self.secret = first.secret
        self.start()


def start_nodes(count: int, env: dict) -> list[BenchServer]:
    first = BenchServer({**env, "DRAGON_NODE_NAME": "node-0"})
    return [first, *(Node(first, i) for i in range(1, count))]


async def run_hellos(nodes: list[BenchServer], count: int) -> float:
    """Seconds from the first create to the last task's end."""
    headers = nodes[0].headers
    batches = [
        [{"task_name": "hello", "name": f"n{i + j}"} for j in range(min(BATCH, count - i))]
        for i in range(0, count, BATCH)
    ]
    queue: asyncio.Queue = asyncio.Queue()
    for i, batch in enumerate(batches):
        queue.put_nowait((nodes[i % len(nodes)], batch))

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            node, batch = queue.get_nowait()
            async with session.post(
                f"{node.url}/v2/create", json={"tasks": batch}, headers=headers
            ) as r:
                assert r.status == 200, await r.text()
                keys = [d["key"] for d in await r.json()]
            async with session.post(
                f"{node.url}/v2/status", headers=headers, json={"tasks": keys, "block": True}
            ) as r:
                body = await r.json()
                assert r.status == 200, body
                statuses = {d["status"] for d in body}
                assert statuses == {"success"}, statuses

    start = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        await asyncio.gather(*(client(session) for _ in range(4)))
    return time.perf_counter() - start


async def run_procrastinate(url: str, count: int) -> float:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="hello")
    async def hello(name: str) -> str:
        return f"Hello {name}"

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        start = time.perf_counter()
        for i in range(0, count, BATCH):
            await hello.batch_defer_async(
                *({"name": f"n{j}"} for j in range(i, min(i + BATCH, count)))
            )
        await app.run_worker_async(concurrency=8, wait=False)
        return time.perf_counter() - start


async def status_p99(nodes: list[BenchServer], seconds: float = 5.0) -> tuple[float, int]:
    """p99 (ms) of GET /v2/status of one task by 64 clients over the nodes, and the count."""
    headers = nodes[0].headers
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        async with session.post(
            f"{nodes[0].url}/v2/create",
            headers=headers,
            json={"tasks": [{"task_name": "hello", "name": "s"}], "block": True},
        ) as r:
            key = (await r.json())[0]["key"]
        end = time.perf_counter() + seconds

        async def client(i: int) -> None:
            url = f"{nodes[i % len(nodes)].url}/v2/status?tasks={key}"
            while time.perf_counter() < end:
                t = time.perf_counter()
                async with session.get(url, headers=headers) as r:
                    await r.read()
                    assert r.status == 200
                latencies.append(time.perf_counter() - t)

        await asyncio.gather(*(client(i) for i in range(64)))
    return p99(latencies) * 1000, len(latencies)


async def fanout_delays(
    a: BenchServer, b: BenchServer, rounds: int = 10, streams: int = 200
) -> list[float]:
    headers = a.headers
    delays: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=120)
    ) as session:
        for _ in range(rounds):
            async with session.post(
                f"{a.url}/v2/create",
                headers=headers,
                json={"tasks": [{"task_name": "test.progress", "seconds": 1.5}]},
            ) as r:
                key = (await r.json())[0]["key"]
            arrivals: list[tuple[float, dict]] = []

            async def stream(key: str = key, arrivals: list = arrivals) -> None:
                async with session.get(
                    f"{b.url}/v2/status_stream?tasks={key}", headers=headers
                ) as r:
                    async for line in r.content:
                        doc = json.loads(line)
                        if isinstance(doc, dict) and doc.get("status") == "success":
                            arrivals.append((time.time(), doc))

            await asyncio.gather(*(stream() for _ in range(streams)))
            async with session.post(
                f"{a.url}/v2/status", headers=headers, json={"tasks": [key], "details": True}
            ) as r:
                node = (await r.json())[0]["node"]
            if node == "node-1":  # ran on B itself: not a cross-node change
                continue
            for arrived, doc in arrivals:
                completed = datetime.fromisoformat(doc["events"]["completed"]).timestamp()
                delays.append((arrived - completed) * 1000)
    return delays


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=5000)
    args = parser.parse_args()
    pg = PostgresCluster()
    s3 = MotoS3()
    nodes: list[BenchServer] = []
    try:
        env = {
            "DRAGON_TASK_MODULES": "tests.plugins.progress",
            "DRAGON_MAX_QUEUED_TASKS": "1000000",
            "DRAGON_SHUTDOWN_GRACE_SECONDS": "2",
        }
        single = BenchServer({})  # the SQLite default, for the status latency side by side
        try:
            latency, requests = await status_p99([single])
        finally:
            single.stop()
        print(
            f"status GET, 64 clients, one SQLite node: {requests} requests, p99 {latency:.1f} ms",
            flush=True,
        )
        procrastinate_s = await run_procrastinate(pg.new_database(), args.tasks)
        print(
            f"procrastinate (concurrency 8): {args.tasks} jobs in {procrastinate_s:.2f} s"
            f" ({args.tasks / procrastinate_s:,.0f}/s)",
            flush=True,
        )
        results = {}
        for count in (1, 2):
            nodes = start_nodes(
                count,
                {**env, "DRAGON_DATABASE_URL": pg.new_database(), **s3.bucket(f"bench-{count}")},
            )
            await run_hellos(nodes, 200)  # warm up pools and connections
            results[count] = await run_hellos(nodes, args.tasks)
            print(
                f"dragon, {count} node(s): {args.tasks} hello in {results[count]:.2f} s"
                f" ({args.tasks / results[count]:,.0f}/s)",
                flush=True,
            )
            if count == 2:
                latency, requests = await status_p99(nodes)
                print(
                    f"status GET, 64 clients over 2 nodes: {requests} requests, p99"
                    f" {latency:.1f} ms",
                    flush=True,
                )
                delays = await fanout_delays(nodes[0], nodes[1])
                print(
                    f"fan-out A -> 200 streams on B: {len(delays)} arrivals, median"
                    f" {statistics.median(delays):.1f} ms, p99 {p99(delays):.1f} ms",
                    flush=True,
                )
            for node in nodes:
                node.stop()
            nodes = []
        for count in (1, 2):
            check(
                f"dragon {count} node(s) vs procrastinate",
                procrastinate_s / results[count],
                ">=",
                2.0,
                "x",
            )
        check("change on A to 200 streams on B, p99", p99(delays), "<=", 150.0, " ms")
    finally:
        for node in nodes:
            node.stop()
        s3.close()
        pg.close()


if __name__ == "__main__":
    asyncio.run(main())
