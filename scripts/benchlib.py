"""Shared by the benchmarks: start a real ``dragon serve`` in a temp dir with an account."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_origin(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``folder`` over HTTP on loopback (the benchmarks' source origin)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(folder), **kw)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


class BenchServer:
    """A real ``dragon serve`` with an account, in ``data_dir`` (default: a temp dir).

    Its tools run at this script's own niceness, not the server's default of 10: the
    benchmarks compare a job with the raw tool run from here, and on a shared machine a
    lower priority would charge the job for the other users' load. bench_api, which
    measures what the priority buys, sets ``DRAGON_TOOL_NICE`` itself.

    ``python`` and ``checkout``: the interpreter and the source tree it runs (another
    checkout's, for scripts/bench_ab.py).
    """

    python: str = sys.executable
    checkout: Path = ROOT

    def __init__(self, env: dict | None = None, data_dir: Path | None = None) -> None:
        """``env`` adds or overrides settings; a value of None removes one (the server's
        default then applies, e.g. ``{"DRAGON_TOOL_NICE": None}``)."""
        self.dir = Path(data_dir or tempfile.mkdtemp(prefix="dragon-bench-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DRAGON_DATA_DIR": str(self.dir),
            "DRAGON_PORT": str(self.port),
            "DRAGON_ALLOW_PRIVATE_URLS": "1",
            "DRAGON_LOG_LEVEL": "WARNING",
            "DRAGON_CREATE_RATE": "0",
            "DRAGON_TOOL_NICE": str(os.nice(0)),
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        self.env = {name: value for name, value in env.items() if value is not None}
        self.secret = self.create_account("bench")["secret"]
        self.start()

    def create_account(self, name: str) -> dict:
        """A new account (``dragon accounts create``): its credentials."""
        out = subprocess.run(
            [self.python, "-m", "dragon", "accounts", "create", name],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            cwd=self.checkout,
        )
        return json.loads(out.stdout)

    def start(self) -> None:
        """Start ``dragon serve`` (again, after ``stop``) and wait until it answers."""
        self.log = open(self.dir / "server.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [self.python, "-m", "dragon", "serve"],
            env=self.env,
            cwd=self.checkout,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start; see {self.dir / 'server.log'}")

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Secret {self.secret}"}

    def task(self, task: dict, timeout: float = 1200) -> dict:
        """Run one task with block=true; its result, or RuntimeError if it failed."""
        body = json.dumps({"block": True, "tasks": [task]}).encode()
        req = urllib.request.Request(f"{self.url}/v2/create", data=body, headers=self.headers)
        with urllib.request.urlopen(req, timeout=timeout) as r:
            [status] = json.loads(r.read())
        if status["status"] != "success":
            raise RuntimeError(f"{task['task_name']} failed: {status}")
        return status["result"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def check(name: str, value: float, op: str, target: float, unit: str = "") -> bool:
    """Print ``MET`` or ``MISSED`` for one target (scripts/bench.py collects these lines)."""
    met = value <= target if op == "<=" else value >= target
    verdict = "MET" if met else "MISSED"
    print(f"{verdict} {name}: {value:,.2f}{unit} (target {op} {target:,g}{unit})", flush=True)
    return met


def wrk_ms(text: str) -> float:
    """A wrk latency such as ``812.00us``, ``4.21ms`` or ``1.02s``, in milliseconds."""
    for suffix, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60000.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    raise ValueError(f"not a wrk latency: {text!r}")


class TreePeak:
    """The peak memory (resident MB) of process ``pid`` and everything it started, summed,
    while the ``with`` block runs: /proc sampled every ``every`` seconds. ``tool`` is the
    peak of the largest single descendant (an ffmpeg run)."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.pid = pid
        self.every = every
        self.peak = 0.0
        self.tool = 0.0
        self._done = threading.Event()

    @staticmethod
    def _rss(pid: int) -> float:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:  # gone meanwhile
            pass
        return 0.0

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
        tree, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(children.get(pid, []))
        return tree

    def sample(self) -> None:
        tree = self._tree()
        sizes = {pid: self._rss(pid) for pid in tree}
        self.peak = max(self.peak, sum(sizes.values()))
        self.tool = max(self.tool, max((v for p, v in sizes.items() if p != self.pid), default=0))

    def _run(self) -> None:
        while not self._done.wait(self.every):
            self.sample()

    def __enter__(self) -> TreePeak:
        self.sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
