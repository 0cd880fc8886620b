"""tus-js-client (npm) in Node against ``dragon serve``: a whole upload, a request cut off
mid-PATCH then resumed from the server's offset, and a checksum mismatch refused (460).

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
