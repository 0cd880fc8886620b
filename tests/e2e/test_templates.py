"""Templates (``/v2/templates``): stored per account, filled at create with XML-escaped
fields, so a field can never add markup to the movie."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tests.e2e.test_video_create import H, fetch, frame
from tests.support import media

CARD = (
    '<movie service="craftsman-1.0"><body><stack duration="2"><effect type="none">'
    '<image filename="{{photo}}"/></effect><text type="legend">{{caption}}</text>'
    "</stack></body></movie>"
)
INJECTION = '</text><video filename="file:///etc/passwd"/>'


def put(server, name: str, definition: str, **headers):
    return server.request(
        "POST", "/v2/templates", {"name": name, "definition": definition}, headers=headers
    )


def test_templates_are_stored_listed_read_and_deleted_per_account(dragon_server):
    server = dragon_server
    r = put(server, "card", CARD)
    assert r.status == 200, r.body
    stored = r.json()
    assert (stored["name"], stored["fields"]) == ("card", ["photo", "caption"])
    assert stored["definition"] == CARD
    # The api key is public in web pages: it reads templates but does not change them.
    r = put(server, "card", "<movie/>", Authorization=f"Api-Key {server.api_key}")
    assert r.status == 403, r.body
    r = server.request(
        "GET", "/v2/templates/card", headers={"Authorization": f"Api-Key {server.api_key}"}
    )
    assert r.status == 200 and r.json()["definition"] == CARD
    assert put(server, "other", "<movie/>").status == 200
    names = [t["name"] for t in server.request("GET", "/v2/templates").json()["templates"]]
    assert names[:2] == sorted(names)[:2] and {"card", "other"} <= set(names)
    # Another account sees none of them.
    someone = server.create_account("templates-other")
    theirs = {"Authorization": f"Secret {someone['secret']}"}
    assert server.request("GET", "/v2/templates/card", headers=theirs).status == 404
    assert server.request("GET", "/v2/templates", headers=theirs).json() == {"templates": []}
    assert server.request("DELETE", "/v2/templates/card", headers=theirs).status == 404
    # A bad name is a 400 that names it; a definition that is not text too.
    r = put(server, "no spaces", CARD)
    assert r.status == 400 and r.json()["errors"][0]["name"] == "name"
    r = server.request("POST", "/v2/templates", {"name": "x", "definition": 3})
    assert r.status == 400 and r.json()["errors"][0]["name"] == "definition"
    assert server.request("DELETE", "/v2/templates/other").status == 200
    assert server.request("DELETE", "/v2/templates/other").status == 404
    assert server.request("GET", "/v2/templates/other").status == 404


def test_a_template_filled_at_create_draws_a_field_literally(dragon_server, origin, tmp_path):
    server = dragon_server
    black = origin.add("templates/black.png", media.image_bytes(64, 36, (0, 0, 0), "PNG"))
    assert put(server, "card", CARD).status == 200
    task = {
        "task_name": "video.create",
        "template": "card",
        "fields": {"photo": black, "caption": INJECTION},
        "profile": "240p",
    }
    final = server.run_task(task)
    assert final["status"] == "success", final
    result = final["result"]
    # Nothing was added to the movie: the stack's two seconds, no video, no refused URL.
    assert result["duration"] == pytest.approx(2.0)
    assert not any("file" in w for w in result.get("warnings", [])), result
    # The caption is drawn in the legend's band...
    picture = frame(fetch(server, result["export"], tmp_path, "card.mp4"), 25)
    rows = np.nonzero((picture.sum(axis=2) > 600).any(axis=1))[0]
    assert rows.size and rows.min() > 0.75 * H
    # ...and it is the field's characters: the task holds the filled definition, whose
    # text is the field as given.
    r = server.request("GET", f"/v2/status?tasks={final['key']}&details=true")
    params = r.json()[0]["parameters"]
    assert params["template"] == "card" and "fields" not in params
    [text] = ET.fromstring(params["definition"]).iter("text")
    assert text.text == INJECTION


def test_a_missing_field_or_template_refuses_the_create(dragon_server):
    server = dragon_server
    assert put(server, "card", CARD).status == 200
    task = {"task_name": "video.create", "template": "card", "fields": {"photo": "x"}}
    r = server.request("POST", "/v2/create", {"tasks": [{"task_name": "hello"}, task]})
    assert r.status == 400, r.body
    [error] = r.json()["errors"]
    assert error["name"] == "tasks[1].fields" and "'caption'" in error["description"]
    r = server.request(
        "POST", "/v2/create", {"tasks": [{**task, "template": "nosuch", "fields": {}}]}
    )
    assert r.status == 400 and "nosuch" in r.json()["errors"][0]["description"]
    r = server.request("POST", "/v2/create", {"tasks": [{**task, "definition": CARD}]})
    assert r.status == 400 and r.json()["errors"][0]["name"] == "tasks[0].template"
