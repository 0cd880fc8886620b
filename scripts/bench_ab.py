"""Two checkouts of dragon side by side: bench_api's create and status figures, interleaved.

    .venv/bin/python scripts/bench_ab.py OLD_CHECKOUT NEW_CHECKOUT [--history 200000]
        [--creates 1000] [--rounds 6]

Each checkout runs its own ``dragon serve`` from its own ``.venv`` (an empty database and one
with ``--history`` ended tasks, as bench_api writes them). Every figure is taken on the old and
the new server one right after the other, the order flipping each round, so the box's other
load lands on both alike; a regression shows as a ratio that stays on one side of 1 in most
rounds, which one long run per checkout cannot tell apart from a change in that load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_api  # noqa: E402
from benchlib import BenchServer  # noqa: E402


class CheckoutServer(BenchServer):
    """A BenchServer run by another checkout's interpreter, from that checkout."""

    def __init__(self, checkout: Path, env: dict, data_dir: Path) -> None:
        self.checkout = checkout
        self.python = str(checkout / ".venv" / "bin" / "python")
        super().__init__({**env, "PYTHONPATH": str(checkout)}, data_dir=data_dir)


def cpu_seconds(server: BenchServer) -> float:
    """User + system CPU of the server process and its children (process-pool workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [str(server.proc.pid)]
    for tid in os.listdir(f"/proc/{server.proc.pid}/task"):
        try:
            pids += Path(f"/proc/{server.proc.pid}/task/{tid}/children").read_text().split()
        except OSError:
            pass
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


async def measure(kind: str, server: BenchServer, keys: list[str], creates: int) -> float:
    if kind.startswith("cpu_"):  # server CPU ms per task: less moved by the box's load
        before = cpu_seconds(server)
        if kind == "cpu_single":
            await bench_api.single_creates(server, creates)
        else:
            await bench_api.batch_rate(server, creates)
        return (cpu_seconds(server) - before) * 1000 / creates
    if kind == "single":
        return await bench_api.single_creates(server, creates)
    if kind == "batch":
        return await bench_api.batch_rate(server, creates)
    if kind == "status100_p99":
        return (await asyncio.to_thread(bench_api.wrk, server, keys, 8, 3))["p99"]
    return (await asyncio.to_thread(bench_api.wrk, server, keys[:1], 64, 4))["rps"]


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    servers: dict[str, BenchServer] = {}
    keys: dict[str, list[str]] = {}
    try:
        for side, checkout in (("old", args.old), ("new", args.new)):
            for db in ("empty", "history"):
                name = f"{side}-{db}"
                servers[name] = CheckoutServer(
                    Path(checkout).resolve(), bench_api.server_env(), work / name
                )
            keys[f"{side}-history"], _ = bench_api.load_history(
                servers[f"{side}-history"], args.history
            )
        for name, server in servers.items():
            await bench_api.single_creates(server, 200)  # warm-up
            if name.endswith("empty"):
                _, keys[name] = await bench_api.batch_creates(server, 200)
        kinds = ("single", "batch", "cpu_single", "cpu_batch", "status100_p99", "status1_rps")
        ratios: dict[str, list[float]] = {
            f"{k} {db}": [] for k in kinds for db in ("empty", "history")
        }
        order = ["old", "new"]
        for r in range(args.rounds):
            for db in ("empty", "history"):
                for kind in kinds:
                    if kind == "status1_rps" and db == "history":
                        continue
                    got = {}
                    for side in order:
                        name = f"{side}-{db}"
                        got[side] = await measure(kind, servers[name], keys[name], args.creates)
                    ratio = got["new"] / got["old"]
                    ratios[f"{kind} {db}"].append(ratio)
                    print(
                        f"round {r + 1} {kind} {db}: old {got['old']:,.1f} new {got['new']:,.1f}"
                        f" new/old {ratio:.2f}  (load {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
                order.reverse()
        print("\nnew/old per figure: median of rounds [rounds above 1 / rounds]")
        for figure, values in ratios.items():
            if values:
                above = sum(v > 1 for v in values)
                print(
                    f"  {figure}: {statistics.median(values):.2f} [{above}/{len(values)}]"
                    f"  ({', '.join(f'{v:.2f}' for v in values)})"
                )
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--history", type=int, default=200_000)
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=6)
    asyncio.run(main(parser.parse_args()))
