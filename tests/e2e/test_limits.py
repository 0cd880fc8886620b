"""Limits that a client cannot talk its way around (issue 26): the result cache's memory,
the depth of every JSON a request carries, and the connection cap.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from tests.e2e.test_create_file import fetch
from tests.support.server import Server


def rss_bytes(server: Server) -> int:
    """The server process's resident memory."""
    assert server.proc is not None
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    [line] = [line for line in status.splitlines() if line.startswith("VmRSS:")]
    return int(line.split()[1]) * 1024


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- item 6: JSON in a query string meets the bodies' depth limit ----------------------------


@pytest.mark.parametrize("depth", [100, 400])
def test_deep_json_in_a_query_string_is_a_400(dragon_server, depth):
    query = {"task_name": "hello", "name": "x", "secret": dragon_server.secret}
    url = f"{dragon_server.url}/v1/create_file/x.jpg?{urlencode(query)}"
    status, _, body = fetch(f"{url}&task_metas={quote(nested(depth))}")
    assert status == 400, body
    error = json.loads(body)["errors"][0]
    assert error == {
        "name": "task_metas",
        "location": "querystring",
        "description": "JSON nests deeper than 64 levels",
    }
    # Just under the limit is JSON as before (the task runs; hello has no output file).
    status, _, body = fetch(f"{url}&task_metas={quote(nested(60))}")
    assert status == 404 and b"no output file" in body, body


# -- item 5: the result cache of /v1/create_file is bounded in bytes ------------------------


def test_large_definitions_do_not_grow_the_result_cache(dragon_server):
    url = f"{dragon_server.url}/v1/create_file/x"
    auth = {"Authorization": f"Secret {dragon_server.secret}"}

    def create(i: int) -> None:
        task = {"task_name": "hello", "name": "x", "task_metas": {"blob": f"{i}" + "x" * 4_000_000}}
        status, _, body = fetch(url, method="POST", body={"task": task}, headers=auth)
        assert status == 404 and b"no output file" in body, body

    for i in range(3):  # warm up: allocator arenas, database pages, first-task imports
        create(i)
    before = rss_bytes(dragon_server)
    started = time.monotonic()
    for i in range(3, 33):
        create(i)
    grown = rss_bytes(dragon_server) - before
    # Kept whole, the 30 definitions (4 MB each) held 120 MB; a digest per entry holds none.
    assert grown < 40_000_000, (grown, time.monotonic() - started)
