"""What the operations features cost, each beside its baseline in one run:

1. Recording feed events in the transactions of status changes: the SQLite backend alone
   (in this process), batches of 100 creates and the start and end of each task, with
   and without the event rows, in alternating rounds. Ratio = with / without.
2. Delivery: 200 hello tasks created in one create_stream request while a follower reads
   /v2/events?follow=true (from the start: the server is fresh) as Server-Sent Events;
   the delay from each task's ``completed`` time to its final line, on the feed and on
   the create_stream itself.
3. GET /metrics beside GET /healthz, 300 requests each, one after another.

    .venv/bin/python scripts/bench_events.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import BenchServer  # noqa: E402

from dragon.database.sqlite import SQLiteDatabase  # noqa: E402
from dragon.engine import documents  # noqa: E402
from dragon.engine.auth import new_secret  # noqa: E402

BATCH = 100


def rows(account_id: int, with_events: bool) -> list[dict]:
    now = time.time()
    out = []
    for _ in range(BATCH):
        row = {
            "key": new_secret(),
            "account_id": account_id,
            "task_name": "hello",
            "params": {"task_name": "hello", "name": "bench"},
            "status": "queued",
            "error": None,
            "error_code": None,
            "queued_at": now,
            "completed_at": None,
            "started_at": None,
            "progress": None,
            "result": None,
        }
        if with_events:
            row["document"] = documents.document(row)
        out.append(row)
    return out


async def database_rounds(rounds: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="dragon-bench-events-"))
    db = SQLiteDatabase(folder / "bench.db")
    db.open()
    account = await db.insert_account("bench", b"x" * 32, "key", "whsec", [], 0)
    spent = {True: 0.0, False: 0.0}
    tasks = {True: 0, False: 0}
    for _ in range(rounds):
        for with_events in (False, True):
            render = documents.document if with_events else None
            batch = rows(account, with_events)
            t0 = time.perf_counter()
            await db.insert_tasks(batch)
            await asyncio.gather(
                *(db.start_task(r["key"], "bench", time.time(), render) for r in batch)
            )
            await asyncio.gather(
                *(
                    db.finish_task(
                        r["key"],
                        "success",
                        {"ok": True},
                        None,
                        None,
                        time.time(),
                        None,
                        render=render,
                    )
                    for r in batch
                )
            )
            spent[with_events] += time.perf_counter() - t0
            tasks[with_events] += BATCH
    db.close()
    rate = {k: tasks[k] / spent[k] for k in spent}
    print(
        f"1. SQLite, create + start + end of {tasks[True]} tasks each way"
        f" (batches of {BATCH}, concurrent starts and ends)"
    )
    print(f"  without feed events: {rate[False]:,.0f} tasks/s")
    print(f"  with feed events:    {rate[True]:,.0f} tasks/s")
    print(f"  ratio with/without:  {rate[True] / rate[False]:.2f}")


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


async def delivery(server: BenchServer, count: int) -> None:
    headers = server.headers
    feed_at: dict[str, float] = {}
    stream_at: dict[str, float] = {}
    completed: dict[str, float] = {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{server.url}/v2/events?follow=true",
            headers={**headers, "Accept": "text/event-stream"},
        ) as feed,
    ):
        # The follower is waiting; now create and stream the tasks.
        async def read_feed() -> None:
            async for raw in feed.content:
                line = raw.decode().strip()
                if line.startswith("data: "):
                    doc = json.loads(line[6:])
                    if doc["status"] == "success":
                        feed_at[doc["key"]] = time.time()
                        if len(feed_at) == count:
                            return

        reader = asyncio.create_task(read_feed())
        await asyncio.sleep(0.2)
        body = {"tasks": [{"task_name": "hello", "name": str(i)} for i in range(count)]}
        async with session.post(
            f"{server.url}/v2/create_stream", json=body, headers=headers
        ) as stream:
            async for raw in stream.content:
                doc = json.loads(raw)
                if isinstance(doc, list):
                    continue
                if doc["status"] == "success":
                    stream_at[doc["key"]] = time.time()
                    completed[doc["key"]] = datetime.fromisoformat(
                        doc["events"]["completed"]
                    ).timestamp()
        await asyncio.wait_for(reader, 60)
    feed_delay = [1000 * (feed_at[k] - completed[k]) for k in completed]
    stream_delay = [1000 * (stream_at[k] - completed[k]) for k in completed]
    print(f"2. {count} hello tasks: delay from `completed` to the final line")
    for name, delays in (("create_stream", stream_delay), ("event feed (SSE)", feed_delay)):
        print(
            f"  {name:17} p50 {statistics.median(delays):6.1f} ms"
            f"  p99 {percentile(delays, 0.99):6.1f} ms"
        )
    print(
        f"  ratio feed/stream p50: "
        f"{statistics.median(feed_delay) / max(statistics.median(stream_delay), 1e-3):.2f}"
    )


async def scrapes(server: BenchServer, count: int) -> None:
    times: dict[str, list[float]] = {"/healthz": [], "/metrics": []}
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            for path in times:
                t0 = time.perf_counter()
                async with session.get(server.url + path) as r:
                    await r.read()
                times[path].append(1000 * (time.perf_counter() - t0))
    print(f"3. {count} requests each, one at a time")
    for path, values in times.items():
        print(
            f"  GET {path:9} p50 {statistics.median(values):5.2f} ms"
            f"  p99 {percentile(values, 0.99):5.2f} ms"
        )
    print(
        f"  ratio metrics/healthz p50: "
        f"{statistics.median(times['/metrics']) / statistics.median(times['/healthz']):.2f}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    print("(a shared machine: ratios are what to read)\n")
    await database_rounds(args.rounds)
    server = BenchServer()
    try:
        await delivery(server, 200)
        await scrapes(server, 300)
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
