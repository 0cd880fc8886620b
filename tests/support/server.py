"""A real ``dragon serve`` subprocess driven over HTTP, and a local origin for source media.

The server runs with ``DRAGON_ALLOW_PRIVATE_URLS=1`` because the origin listens on 127.0.0.1;
the tests of the address policy start servers without it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# tests/plugins/*.py: tasks for tests only
PLUGINS = ("tasks", "progress", "file", "fetch", "spin", "crash", "write", "result")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dragon(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dragon", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=check,
    )


class Response:
    def __init__(self, status: int, headers, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def lines(self) -> list:
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


class Server:
    def __init__(
        self, data_dir: Path, env: dict, port: int | None = None, account: dict | None = None
    ) -> None:
        """``account``: credentials of an existing account (another node of a cluster)
        instead of a new ``test`` account."""
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "DRAGON_ALLOW_PRIVATE_URLS": "1",
            "DRAGON_CONCURRENCY": "2",
            "DRAGON_SHUTDOWN_GRACE_SECONDS": "5",
            "DRAGON_TASK_MODULES": ",".join(f"tests.plugins.{name}" for name in PLUGINS),
            **env,
            "DRAGON_DATA_DIR": str(data_dir),
            "DRAGON_PORT": str(self.port),
        }
        self.proc: subprocess.Popen | None = None
        self.argv_prefix: list[str] = []  # e.g. ["prlimit", "--nofile=256:256", "--"]
        self.log_path = data_dir / "server.log"
        account = account or self.create_account("test", "--referrer", "*")
        self.secret = account["secret"]
        self.api_key = account["api_key"]
        self.account = account

    def create_account(self, name: str, *args: str) -> dict:
        out = dragon(
            "accounts", "create", name, "--data-dir", str(self.data_dir), *args, env=self.env
        )
        return json.loads(out.stdout)

    def start(self, ready: tuple[int, ...] = (200,)) -> Server:
        """Start ``dragon serve``; return once ``/healthz`` answers one of ``ready``."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [*self.argv_prefix, sys.executable, "-m", "dragon", "serve"],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            try:
                if self.request("GET", "/healthz", auth=False).status in ready:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = 15, timeout: float = 30) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def request(
        self,
        method: str,
        path: str,
        body=None,
        *,
        headers: dict | None = None,
        auth: bool = True,
        raw: bytes | None = None,
        timeout: float = 120,
    ) -> Response:
        headers = dict(headers or {})
        if auth and "Authorization" not in headers:
            headers["Authorization"] = f"Secret {self.secret}"
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return Response(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read())

    def create(self, tasks, *, block: bool = True, **extra) -> list[dict]:
        r = self.request("POST", "/v2/create", {"tasks": tasks, "block": block, **extra})
        assert r.status == 200, r.body
        return r.json()

    def run_task(self, task: dict) -> dict:
        """Create one task, wait for its end, and return its final status."""
        return self.create([task])[0]

    def _direct_prefix(self) -> str | None:
        """Where output URLs point when they go straight into a bucket, else None."""
        bucket = self.env.get("DRAGON_S3_BUCKET")
        if not bucket:
            return None
        if public := self.env.get("DRAGON_S3_PUBLIC_URL"):
            return public.rstrip("/") + "/"
        if self.env.get("DRAGON_S3_DIRECT_URLS", "0") not in ("", "0"):
            return f"{self.env['DRAGON_S3_ENDPOINT_URL']}/{bucket}/"
        return None

    def storage_name(self, url: str) -> str:
        """The storage API's name of an output file, from its URL (this server's, which on
        S3 redirects to the bucket, or the bucket's own with direct URLs)."""
        direct = self._direct_prefix()
        return url.removeprefix(direct) if direct else url.split("/storage/", 1)[1]

    def stores(self, url: str) -> bool:
        """Whether ``url`` is one of this server's stored files."""
        return url.startswith(self._direct_prefix() or f"{self.url}/storage/")

    def get(self, url: str) -> Response:
        """GET an absolute URL (an output file)."""
        req = urllib.request.Request(url)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return Response(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read())


def task_result(server: Server, task: dict) -> dict:
    """Run one task to its end and return its result, failing the test if it did not succeed."""
    status = server.run_task(task)
    assert status["status"] == "success", status
    return status["result"]


def download(server: Server, url: str, dest: Path) -> Path:
    """Save an output file to ``dest``."""
    r = server.get(url)
    assert r.status == 200
    dest.write_bytes(r.body)
    return dest


class Origin:
    """A local HTTP origin serving registered bytes; records every request path."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str | None, dict]] = {}
        self.hits: list[str] = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                origin.hits.append(self.path)
                entry = origin.files.get(self.path.split("?")[0])
                if entry is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data, ctype, headers = entry
                status = headers.get("status", 200)
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                for k, v in headers.items():
                    if k != "status":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, name: str, data: bytes, content_type: str | None = None, **headers) -> str:
        path = "/" + name.lstrip("/")
        self.files[path] = (data, content_type, headers)
        return self.url + path

    def add_file(self, name: str, path: Path, content_type: str | None = None) -> str:
        return self.add(name, Path(path).read_bytes(), content_type)
