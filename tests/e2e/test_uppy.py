"""Uppy (``@uppy/core`` with ``@uppy/tus``) in headless Chromium against ``dragon serve``: a
page on another origin uploads a video with an api key, and the upload then feeds tasks.

Uppy ships as npm modules, not a browser build: the page script (tests/js/uppy_page.mjs) is
bundled by esbuild when the test runs, from what ``make install`` put in tests/js with
``npm ci``, so the test needs no network. Without Node's packages, Playwright or Chromium
the test is skipped, saying so.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.support import media
from tests.support.browser import ARGS, chromium, site

CLIENTS = Path(__file__).resolve().parents[1] / "js"
ESBUILD = CLIENTS / "node_modules" / ".bin" / "esbuild"


@pytest.fixture(scope="module")
def uppy_bundle(tmp_path_factory) -> Path:
    """The page script with Uppy in it, one file the browser loads."""
    for package in ("@uppy/core", "@uppy/tus"):
        if not (CLIENTS / "node_modules" / package).is_dir():
            pytest.skip(f"{package} is not installed in tests/js (make install runs npm ci)")
    if not ESBUILD.exists():
        pytest.skip("esbuild is not installed in tests/js (make install runs npm ci)")
    out = tmp_path_factory.mktemp("bundle") / "uppy.js"
    subprocess.run(
        [str(ESBUILD), "uppy_page.mjs", "--bundle", "--format=esm", f"--outfile={out}"],
        cwd=CLIENTS,
        capture_output=True,
        check=True,
        timeout=120,
    )
    return out


def test_uppy_on_another_origin_uploads_a_video_that_tasks_then_read(
    uppy_bundle, make_server, tmp_path
):
    """The preflights pass, the api key is admitted by the page's origin, Uppy's tus plugin
    sends the file in several PATCHes and reads Location through CORS; the upload is then a
    task input as ``upload:ID`` with the same bytes."""
    playwright = pytest.importorskip("playwright.sync_api")
    pages = tmp_path / "site"
    pages.mkdir()
    (pages / "uppy.js").write_bytes(uppy_bundle.read_bytes())
    clip = media.video(pages / "clip.mp4", duration=2.0, size="320x240")
    server = make_server()
    with site(pages) as origin:
        account = server.create_account("page", "--referrer", origin.removeprefix("http://"))
        options = {
            "endpoint": f"{server.url}/v2/uploads",
            "apiKey": account["api_key"],
            "file": "clip.mp4",
            "chunkSize": max(1, clip.stat().st_size // 3),
        }
        (pages / "index.html").write_text(
            f"<!doctype html><script>window.uppyOptions = {json.dumps(options)};</script>"
            '<script type="module" src="uppy.js"></script>'
        )
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=ARGS)
            try:
                page = browser.new_page()
                page.goto(origin + "/index.html")
                page.wait_for_function("window.outcome !== undefined", timeout=60_000)
                outcome = page.evaluate("window.outcome")
            finally:
                browser.close()
    assert "url" in outcome, outcome
    assert outcome["url"].startswith(f"{server.url}/v2/uploads/"), outcome
    source = "upload:" + outcome["url"].rsplit("/", 1)[1]
    tasks = [
        {"task_name": "video.info", "url": source},
        {"task_name": "test.fetch", "url": source},
    ]
    created = server.request(
        "POST",
        "/v2/create",
        {"tasks": tasks, "block": True},
        headers={"Authorization": f"Secret {account['secret']}"},
    )
    assert created.status == 200, created.body
    info, fetched = created.json()
    assert info["status"] == "success", info
    assert (info["result"]["width"], info["result"]["height"]) == (320, 240), info
    assert info["result"]["duration"] == pytest.approx(2.0, abs=0.1), info
    assert fetched["status"] == "success", fetched
    assert fetched["result"]["sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()
