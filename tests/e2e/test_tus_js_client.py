"""tus-js-client (npm) against ``dragon serve``: in Node, a whole upload, a request cut off
mid-PATCH then resumed from the server's offset, and a checksum mismatch refused (460); in
headless Chromium, a page on another origin uploading with an api key.

The client is installed by ``make install`` (``npm ci`` in tests/js); without Node or the
package the tests are skipped, saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_resumable_uploads import TUS, fetched
from tests.support.browser import ARGS, chromium, site

CLIENTS = Path(__file__).resolve().parents[1] / "js"


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.skip("node is not installed (make install)")
    if not (CLIENTS / "node_modules" / "tus-js-client").is_dir():
        pytest.skip("tus-js-client is not installed in tests/js (make install runs npm ci)")
    return found


def upload(node: str, server, path: Path, mode: str, url: str = "") -> dict:
    done = subprocess.run(
        [
            node,
            str(CLIENTS / "tus_upload.mjs"),
            f"{server.url}/v2/uploads",
            f"Secret {server.secret}",
            str(path),
            mode,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_tus_js_client_uploads_resumes_after_a_cut_and_sees_a_checksum_refused(
    node, dragon_server, tmp_path
):
    source = tmp_path / "noise.bin"
    source.write_bytes(os.urandom(2 * 1024 * 1024 + 77))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()

    whole = upload(node, dragon_server, source, "whole")
    assert whole["status"] == "done", whole
    got = fetched(dragon_server, "upload:" + whole["url"].rsplit("/", 1)[1])
    assert got["status"] == "success" and got["result"]["sha256"] == digest, got

    cut = upload(node, dragon_server, source, "cut")
    assert cut["status"] == "aborted", cut
    head = dragon_server.request("HEAD", cut["url"].removeprefix(dragon_server.url), headers=TUS)
    assert 0 < int(head.headers["Upload-Offset"]) < source.stat().st_size
    resumed = upload(node, dragon_server, source, "resume", cut["url"])
    assert resumed == {"url": cut["url"], "status": "done"}, resumed
    got = fetched(dragon_server, cut["url"])
    assert got["status"] == "success" and got["result"]["sha256"] == digest, got

    refused = upload(node, dragon_server, source, "bad-checksum")
    assert refused["status"] == 460, refused


def test_a_page_on_another_origin_uploads_with_an_api_key(node, make_server, tmp_path):
    """tus-js-client's browser build in headless Chromium, on a page served from another
    origin: the preflights pass, the api key is admitted by the page's origin, and the
    client reads Location and Upload-Offset through CORS."""
    playwright = pytest.importorskip("playwright.sync_api")
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    shutil.copy(CLIENTS / "node_modules" / "tus-js-client" / "dist" / "tus.min.js", site_dir)
    server = make_server()
    size = 700 * 1024
    with site(site_dir) as origin:
        account = server.create_account("page", "--referrer", origin.removeprefix("http://"))
        (site_dir / "index.html").write_text(
            f"""<!doctype html><script src="tus.min.js"></script><script>
            const bytes = new Uint8Array({size}).map((_, i) => (i * 7) % 251);
            const upload = new tus.Upload(new Blob([bytes]), {{
              endpoint: "{server.url}/v2/uploads",
              headers: {{Authorization: "Api-Key {account["api_key"]}"}},
              chunkSize: 256 * 1024,
              retryDelays: null,
              onSuccess: () => {{ window.outcome = {{url: upload.url}}; }},
              onError: (e) => {{ window.outcome = {{error: String(e)}}; }},
            }});
            upload.start();
            </script>"""
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
    expected = hashlib.sha256(bytes((i * 7) % 251 for i in range(size))).hexdigest()
    task = {"task_name": "test.fetch", "url": outcome["url"]}
    created = server.request(
        "POST",
        "/v2/create",
        {"tasks": [task], "block": True},
        headers={"Authorization": f"Secret {account['secret']}"},
    )
    got = created.json()[0]
    assert got["status"] == "success" and got["result"]["sha256"] == expected, got
