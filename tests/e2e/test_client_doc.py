"""docs/client.md, read as a newcomer does: every example runs, top to bottom, against a live
server set up as the page says, and prints what the page shows (tests/support/doc_examples.py
says how keys, times and ``...`` are matched). The commands and programs run from a fresh
venv holding the client distribution alone (``client_venv``: ``dragon`` and ``python3``
are that venv's), as the page's first section installs it."""

from __future__ import annotations

import functools
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support import media
from tests.support.client_venv import clean_env
from tests.support.doc_examples import Page, examples, run

PAGE = Path(__file__).resolve().parents[2] / "docs" / "client.md"
# What the page shows of the machine it ran on.
SERVER, MEDIA, CONFIG = "http://127.0.0.1:8080", "http://127.0.0.1:8000", "/home/me/.config"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_folder(folder: Path) -> ThreadingHTTPServer:
    """``python3 -m http.server`` on ``folder``, as the page serves its media."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def only_the_client(venv: Path, folder: Path) -> None:
    """The venv's ``dragon.client`` is its own, and nothing of the server is importable."""
    probe = (
        "import importlib.util, dragon.client; print(dragon.client.__file__);"
        " print(importlib.util.find_spec('dragon.cli'), importlib.util.find_spec('aiohttp'))"
    )
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        cwd=folder,
        env=clean_env(),
        check=True,
    )
    where, missing = done.stdout.splitlines()
    assert where.startswith(str(venv)) and missing == "None None", done.stdout


@pytest.mark.timeout(360)  # dozens of CLI runs, each a Python start: slow on a loaded box
def test_every_example_of_the_client_page_prints_what_the_page_shows(
    make_server, client_venv, tmp_path
):
    folder = tmp_path / "media"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(media.image_bytes(640, 480, (200, 120, 40)))
    media.video(folder / "clip.mp4", duration=4, size="1280x720")
    media.video(folder / "long.mp4", duration=60, size="640x360", audio=False)
    httpd = serve_folder(folder)
    # Output URLs of the PostgreSQL backend point to its S3 bucket: the page shows a server
    # that stores its files itself.
    server = make_server(backend="sqlite")
    here = tmp_path / "reader"
    here.mkdir()
    config = tmp_path / "config"
    page = Page(
        {
            SERVER: server.url,
            MEDIA: f"http://127.0.0.1:{httpd.server_address[1]}",
            CONFIG: str(config),
        }
    )
    only_the_client(client_venv, here)
    env = {k: v for k, v in clean_env().items() if not k.startswith("DRAGON_")}
    env.update({"SECRET": server.secret, "DRAGON_CONFIG": str(config / "dragon" / "client.json")})
    try:
        found = examples(PAGE.read_text(encoding="utf-8"))
        assert sum(e.kind == "python" for e in found) >= 3 and len(found) >= 20
        for example in found:
            if example.code == "cat movie.xml":  # the page shows the file the reader wrote
                (here / "movie.xml").write_text(page.code(example.expected))
            page.check(example, run(example, page, here, env, client_venv / "bin"))
    finally:
        httpd.shutdown()
