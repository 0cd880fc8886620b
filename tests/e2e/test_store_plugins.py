"""A store added by one plugin module (``DRAGON_STORE_MODULES``), end to end: a real
``dragon serve`` lists its files, counts them in the account's usage and subtracts them
when they are deleted, as its class declares (``tests/plugins/archive_store.py``)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def server(make_server):
    return make_server(env={"DRAGON_STORE_MODULES": "tests.plugins.archive_store"})


def test_a_plugin_store_is_listed_counted_and_subtracted(server):
    usage = server.request("GET", "/v2/storage/files/").json()["usage"]
    task = {"task_name": "test.file", "text": "a" * 700, "task_store": {"type": "archive"}}
    (doc,) = server.request("POST", "/v2/create", {"tasks": [task], "block": True}).json()
    assert doc["status"] == "success", doc
    url = doc["result"]["output"]
    assert server.get(url).body == b"a" * 700

    root = server.request("GET", "/v2/storage/files/").json()
    assert f"{doc['key']}/" in root["directories"]
    assert root["usage"] == usage + 700
    (entry,) = server.request("GET", f"/v2/storage/files/{doc['key']}/").json()["files"]
    assert entry["size"] == 700

    name = server.storage_name(url)
    done = server.request("DELETE", f"/v2/storage/files/{name}").json()
    assert done == {"deleted": [name], "freed": 700, "usage": usage}
    assert f"{doc['key']}/" not in server.request("GET", "/v2/storage/files/").json()["directories"]


def test_an_unknown_store_lists_the_plugin_among_the_choices(server):
    task = {"task_name": "test.file", "task_store": {"type": "tape"}}
    (doc,) = server.request("POST", "/v2/create", {"tasks": [task]}).json()
    (problem,) = doc["error"]["parameters"]["task_store"]
    assert problem.endswith("youtube, archive")
