"""Wire details that real clients trip on: where a refused credential was, numbers that stay
numbers (float durations, a 0-100 progress in every status), and what a dry run reports."""

from __future__ import annotations

import json

import pytest

from tests.support import media


@pytest.fixture(scope="module")
def server(make_server):
    return make_server()


def refused(server, path: str, body=None, headers: dict | None = None) -> dict:
    r = server.request(
        "POST" if body is not None else "GET", path, body, auth=False, headers=headers
    )
    assert r.status == 401, r.body
    [error] = r.json()["errors"]
    return error


@pytest.mark.parametrize("where", ["header", "body", "querystring"])
def test_401_names_where_the_refused_secret_was(server, where):
    headers, body, query = {}, {"tasks": ["K"]}, ""
    if where == "header":
        headers = {"Authorization": "Secret WRONG"}
    elif where == "body":
        body["secret"] = "WRONG"
    else:
        query = "&secret=WRONG"
    error = refused(
        server, "/v2/status?tasks=K" + query, body if where != "querystring" else None, headers
    )
    assert error == {
        "name": "authorization",
        "location": where,
        "description": "invalid secret key",
    }


def test_401_names_where_the_refused_api_key_was(server):
    site = server.create_account("wire-site", "--referrer", "https://good.example")
    body = {"tasks": [{"task_name": "hello", "name": "x"}], "api_key": site["api_key"]}
    error = refused(server, "/v2/create", body, {"Referer": "https://evil.example/"})
    assert error["location"] == "body" and "whitelist" in error["description"]
    error = refused(server, f"/v2/status?tasks=K&api_key={site['api_key']}")
    assert error["location"] == "querystring"
    error = refused(server, "/v2/status?tasks=K", headers={"Authorization": "Api-Key nope"})
    assert error["location"] == "header"


def is_progress(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 100


def test_progress_is_a_number_from_0_to_100_in_every_status(server):
    r = server.request(
        "POST",
        "/v2/create_stream",
        {
            "tasks": [
                {"task_name": "test.progress", "seconds": 1.5},
                {"task_name": "test.file", "fail": True},
                {"task_name": "nope"},
            ]
        },
    )
    first, *changes = r.lines()
    docs = [*first, *changes]
    assert all(is_progress(d["progress"]) for d in docs), docs
    assert [d["progress"] for d in first] == [0, 0, 100]  # queued, queued, refused
    executing = [d["progress"] for d in changes if d["status"] == "executing"]
    assert 50 in executing
    finals = {d["key"]: d for d in docs if d["status"] in ("success", "error")}
    assert {d["progress"] for d in finals.values()} == {100}
    keys = [d["key"] for d in first] + ["UNKNOWNKEY"]
    for version in ("v1", "v2"):
        statuses = server.request("GET", f"/{version}/status?tasks={','.join(keys)}").json()
        assert [d["progress"] for d in statuses] == [100, 100, 100, 100]


# Result fields the Dragon API documents as floats (section 4), per task.
FLOAT_FIELDS = {
    "video.thumb": ("duration",),
    "video.info": ("duration", "frame_rate", "rotation"),
    "video.strip": ("duration", "frame_rate"),
    "audio.info": ("duration",),
    "audio.convert": ("duration",),
    "audio.waveform": ("duration",),
}


@pytest.fixture(scope="module")
def sources(origin, tmp_path_factory):
    """A 4-second video and audio file: whole seconds, where an integer could sneak in."""
    folder = tmp_path_factory.mktemp("wire")
    video = media.video(folder / "four.mp4", duration=4.0)
    audio = media.audio(folder / "four.wav", duration=4.0)
    return {
        "video": origin.add("wire/four.mp4", video.read_bytes(), "video/mp4"),
        "audio": origin.add("wire/four.wav", audio.read_bytes(), "audio/wav"),
    }


@pytest.mark.parametrize("task_name", sorted(FLOAT_FIELDS))
def test_float_fields_are_json_floats(server, sources, task_name):
    r = server.request(
        "POST",
        "/v2/create",
        {
            "block": True,
            "tasks": [{"task_name": task_name, "url": sources[task_name.split(".")[0]]}],
        },
    )
    [doc] = r.json()
    assert doc["status"] == "success", doc
    for field in FLOAT_FIELDS[task_name]:
        value = doc["result"][field]
        assert isinstance(value, float), f"{task_name} {field}: {json.dumps(value)}"


def test_dry_run_reports_the_usage_the_delete_would_leave(server):
    def usage() -> int:
        return server.request("GET", "/v2/storage/files/").json()["usage"]

    before = usage()
    docs = server.create(
        [
            {"task_name": "test.file", "text": "x" * 300},
            {"task_name": "test.file", "text": "y" * 200},
        ]
    )
    assert usage() == before + 500
    name = server.storage_name(docs[0]["result"]["output"])
    dry = server.request("DELETE", f"/v2/storage/files/{name}", {"dry_run": True}).json()
    assert dry == {"deleted": [name], "freed": 300, "usage": before + 200}
    assert usage() == before + 500  # nothing was deleted
    done = server.request("DELETE", f"/v2/storage/files/{name}").json()
    assert done == dry
    assert usage() == before + 200
