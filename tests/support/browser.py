"""Headless Chromium for page tests: Debian's ``chromium``, driven by Playwright.

Playwright's own browser download is never used (``executable_path``): the browser comes
from apt, installed here when missing (as ``make system-tools`` does), and a test that
cannot have it is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """The browser's path, installing Debian's package first if needed; else skip."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(
            f"{CHROMIUM} is missing and cannot be installed here (needs root and"
            " apt-get): run `make system-tools` as root"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
    done = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, check=False)
        done = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"could not install chromium with apt-get: {done.stderr.strip()[-300:]}")
    return CHROMIUM


@contextlib.contextmanager
def site(directory: Path) -> Iterator[str]:
    """Serve ``directory``'s files on a free local port: a page's origin (``http://…``) that
    differs from the API server's, for cross-origin tests."""
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietFiles, directory=str(directory))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass
