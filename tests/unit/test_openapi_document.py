"""The OpenAPI document describes every route the application serves, and every task."""

from __future__ import annotations

from openapi_spec_validator import validate

from dragon.api.openapi import document, served_routes
from dragon.config import Settings
from dragon.tasks import load_tasks
from dragon.web.app import create_app


def test_every_route_is_described_and_nothing_else(tmp_path):
    app = create_app(Settings.load({"DRAGON_DATA_DIR": str(tmp_path)}))
    routes = served_routes(app.router)
    doc = document(load_tasks(), routes=routes)
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == {(method, path) for method, path, _ in routes}
    undescribed = [
        (method, path)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if "undescribed" in op["tags"]
    ]
    assert undescribed == []  # a new route needs its entry in dragon.api.openapi


def test_a_route_not_described_still_appears():
    async def hidden(request):
        """A new endpoint."""

    doc = document(load_tasks(), routes=[("get", "/v3/things/{thing}", hidden.__doc__)])
    validate(doc)
    op = doc["paths"]["/v3/things/{thing}"]["get"]
    assert op["summary"] == "A new endpoint." and op["parameters"][0]["name"] == "thing"


def test_each_task_is_its_own_schema_chosen_by_task_name():
    registry = load_tasks(("tests.plugins.tasks",))
    doc = document(registry, max_tasks=7)
    validate(doc)
    schemas = doc["components"]["schemas"]
    chooser = schemas["TaskDefinition"]
    assert chooser["discriminator"]["propertyName"] == "task_name"
    assert set(chooser["discriminator"]["mapping"]) == set(registry)
    assert len(chooser["oneOf"]) == len(registry)
    thumb = schemas["task.image.thumb"]
    assert thumb["properties"]["task_name"] == {"type": "string", "enum": ["image.thumb"]}
    assert {"task_name", "url"} <= set(thumb["required"])
    assert thumb["properties"]["width"]["maximum"] == 16384
    assert thumb["properties"]["url"]["format"] == "uri"
    assert schemas["task.test.sleep"]["properties"]["seconds"]["type"] == "number"
    create = doc["paths"]["/v2/create"]["post"]
    tasks = create["requestBody"]["content"]["application/json"]["schema"]["properties"]["tasks"]
    assert tasks["oneOf"][1]["maxItems"] == 7
    assert set(create["responses"]) == {"200", "400", "401", "408", "413", "429", "503"}
