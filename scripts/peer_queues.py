"""The peers of scripts/bench_api.py: arq and Celery, on a durable Redis, running ``hello``.

Each peer gets the same work as dragon's ``hello`` task (a greeting string) and is driven
the same way: 8 clients, each creating one task and waiting for its result before the
next. Redis runs with an append-only file fsynced on every write (``appendfsync always``),
the durability dragon's SQLite gives with ``synchronous=FULL``.

Workers are separate processes started from this module:

    python -m arq peer_queues.ArqWorker            (cwd: scripts/, REDIS_URL in the env)
    python -m celery -A peer_queues worker ...
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
HERE = Path(__file__).resolve().parent


def greet(name: str) -> dict:
    return {"message": f"hello {name}"}


# -- arq -------------------------------------------------------------------------------------

try:
    from arq.connections import RedisSettings
except ImportError:  # the bench extra is not installed: bench_api skips the peers
    RedisSettings = None


async def arq_hello(ctx: dict, name: str) -> dict:
    return greet(name)


class ArqWorker:
    """arq's worker settings; its queue polls every 5 ms instead of 500 (fairer to arq)."""

    functions = [arq_hello]
    redis_settings = RedisSettings.from_dsn(REDIS_URL) if RedisSettings else None
    poll_delay = 0.005
    max_jobs = 64
    keep_result = 3600


# -- Celery ----------------------------------------------------------------------------------

try:
    from celery import Celery
except ImportError:
    Celery = None

if Celery:
    celery_app = Celery("peer_queues", broker=REDIS_URL, backend=REDIS_URL)
    celery_app.conf.update(
        worker_hijack_root_logger=False,
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        result_expires=3600,
    )

    @celery_app.task(name="hello")
    def celery_hello(name: str) -> dict:
        return greet(name)


# -- Redis -----------------------------------------------------------------------------------


class DurableRedis:
    """A private ``redis-server`` with appendonly + appendfsync always, in a temp dir."""

    def __init__(self, port: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        self.argv = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ]
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
            )
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def worker_argv(kind: str) -> list[str]:
    """The arq or Celery worker command (Celery: prefork, one child per core, its default)."""
    if kind == "arq":
        return [sys.executable, "-m", "arq", "peer_queues.ArqWorker"]
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "peer_queues",
        "worker",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def start_worker(kind: str, redis_url: str, log: Path) -> subprocess.Popen:
    argv = worker_argv(kind)
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(HERE)}
    with open(log, "ab") as stderr:
        return subprocess.Popen(argv, cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
