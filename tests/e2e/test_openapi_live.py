"""/openapi.json and /docs on a live server, and schemathesis against it from the document."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from openapi_spec_validator import validate

ROOT = Path(__file__).resolve().parents[2]


def test_document_validates_and_lists_the_server_tasks(dragon_server):
    r = dragon_server.request("GET", "/openapi.json", auth=False)
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"] == "3.1.0"
    validate(doc)
    mapping = doc["components"]["schemas"]["TaskDefinition"]["discriminator"]["mapping"]
    assert {"hello", "image.thumb", "video.create", "test.sleep"} <= set(mapping)


def test_docs_page_needs_nothing_from_outside(dragon_server):
    r = dragon_server.request("GET", "/docs", auth=False)
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    page = r.body.decode()
    assert "SwaggerUIBundle" in page and "openapi.json" in page
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(links) >= 3
    for link in links:
        assert "//" not in link, link  # no CDN: every asset comes from this server
        got = dragon_server.request("GET", "/" + link, auth=False)
        assert got.status == 200 and len(got.body) > 100, link
    assert dragon_server.request("GET", "/docs/../setup.cfg", auth=False).status == 404
    assert dragon_server.request("GET", "/docs/index.j2", auth=False).status == 404


def test_docs_with_a_trailing_slash_lands_on_the_page(dragon_server):
    with urllib.request.urlopen(dragon_server.url + "/docs/", timeout=30) as r:
        assert r.status == 200 and r.url == dragon_server.url + "/docs"
        assert "SwaggerUIBundle" in r.read().decode()
    connection = http.client.HTTPConnection("127.0.0.1", dragon_server.port, timeout=30)
    connection.request("GET", "/docs/?tag=v2")
    moved = connection.getresponse()
    assert moved.status == 301 and moved.headers["Location"] == "../docs?tag=v2"
    connection.close()


CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance"
)


@pytest.mark.timeout(300)
def test_schemathesis_finds_nothing_against_a_live_server(make_server, tmp_path):
    """Every operation, fuzzed from the document: no 5xx, and every answer as documented.

    Tasks fail fast here (no network: unresolvable hosts), so blocking calls stay short;
    the example count keeps the whole run around half a minute. The event feed is asked
    without ``follow``, which by design never ends. The seed is fixed so that a run is
    reproducible; a wider hunt (``--seed`` left out, more examples) is run by hand, and what
    it finds becomes a case of ``test_what_schemathesis_found_stays_fixed``.
    """
    server = make_server(
        env={
            "DRAGON_TASK_MODULES": "tests.plugins.file",
            "DRAGON_TASK_TIMEOUT_SECONDS": "10",
            "DRAGON_FETCH_CONNECT_TIMEOUT": "2",
        }
    )
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        '[[operations]]\ninclude-name = "GET /v2/events"\nparameters = { follow = false }\n'
    )
    cli = Path(sys.executable).with_name("schemathesis")
    run = subprocess.run(
        [
            str(cli),
            "--config-file",
            str(config),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            CHECKS,
            "--phases",
            "examples,fuzzing",
            "--max-examples",
            "10",
            "--seed",
            "20261201",
            "--max-redirects",
            "0",
            "--request-timeout",
            "30",
            "--no-color",
            "-H",
            f"Authorization: Secret {server.secret}",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,  # where the hooks module is imported from
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks"},
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    # Every operation was run, but /openapi.json itself: schemathesis skips the URL it
    # loaded the document from (the first test here checks that one).
    tested = re.search(r"Tested: (\d+)", run.stdout)
    paths = server.request("GET", "/openapi.json").json()["paths"]
    assert tested and int(tested.group(1)) == sum(map(len, paths.values())) - 1, run.stdout
    assert not re.search(r'HTTP/1\.1" 5\d\d ', server.log())


def test_what_schemathesis_found_stays_fixed(dragon_server):
    # An event cursor past 64 bits reached the database and failed mid-stream (HTTP 500).
    r = dragon_server.request("GET", f"/v2/events?after={2**63}")
    assert r.status == 400 and r.json()["errors"][0]["name"] == "after"
    assert dragon_server.request("GET", f"/v2/events?after={2**63 - 1}").status == 200
    # An integer past 64 bits in a create_file definition broke its result-cache key (500).
    task = {"task_name": "image.thumb", "url": "https://unresolvable.invalid/a.jpg"}
    r = dragon_server.request("POST", "/v1/create_file/a.jpg", {"task": {**task, "width": 2**103}})
    assert r.status == 400, r.body
