"""Every list of tasks a client sees comes from the task registry: the OpenAPI document and
the dashboard page name exactly the tasks the server runs, plugins included. (The README
and docs/tasks.md are checked against the built-in tasks in test_docs.py.)"""

from __future__ import annotations

import html
import json
import re

from dragon.api.openapi import document, served_routes
from dragon.config import Settings
from dragon.tasks import load_tasks
from dragon.web.app import create_app
from dragon.web.dashboard import index_page

WITH_PLUGINS = ("tests.plugins.tasks", "tests.plugins.spin")


def test_the_openapi_document_names_the_tasks_of_the_registry(tmp_path):
    registry = load_tasks(WITH_PLUGINS)
    app = create_app(Settings.load({"DRAGON_DATA_DIR": str(tmp_path)}))
    schemas = document(registry, served_routes(app.router), 1000)["components"]["schemas"]
    described = {name.removeprefix("task.") for name in schemas if name.startswith("task.")}
    assert described == set(registry) and {"test.sleep", "test.spin", "hello"} <= described
    assert all(schemas[f"task.{n}"]["properties"]["task_name"]["enum"] == [n] for n in registry)
    chooser = schemas["TaskDefinition"]
    assert set(chooser["discriminator"]["mapping"]) == set(registry)
    assert sorted(ref["$ref"].rpartition("/task.")[2] for ref in chooser["oneOf"]) == sorted(
        registry
    )


def test_the_dashboard_page_carries_the_registry_names():
    registry = load_tasks(WITH_PLUGINS)
    page = index_page(registry).decode()
    [attribute] = re.findall(r'<body data-tasks="([^"]*)">', page)
    assert json.loads(html.unescape(attribute)) == sorted(registry)


def test_a_task_name_cannot_break_out_of_the_dashboard_page():
    page = index_page(['a"><script>alert(1)</script>', "b&c"]).decode()
    [attribute] = re.findall(r'<body data-tasks="([^"]*)">', page)
    assert "<" not in attribute
    assert json.loads(html.unescape(attribute)) == ['a"><script>alert(1)</script>', "b&c"]
