"""The OpenAPI document describes every route the application serves, and every task."""

from __future__ import annotations

from aiohttp import web
from openapi_spec_validator import validate

from dragon.api.openapi import Endpoint, document, documented, path_parameter, served_routes
from dragon.config import Settings
from dragon.tasks import load_tasks
from dragon.web.app import create_app


def served(tmp_path):
    return served_routes(create_app(Settings.load({"DRAGON_DATA_DIR": str(tmp_path)})).router)


def test_every_route_is_described_and_nothing_else(tmp_path):
    routes = served(tmp_path)
    doc = document(load_tasks(), routes, 1000)
    documented_ops = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert documented_ops == {(route.method, route.path) for route in routes}
    undescribed = [
        (method, path)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if "undescribed" in op["tags"]
    ]
    assert undescribed == []  # a new route's handler needs its @documented(...) operation


def test_a_route_not_described_still_appears():
    async def hidden(request):
        """A new endpoint."""

    app = web.Application()
    app.router.add_get("/v3/things/{thing:.+}", hidden)
    doc = document(load_tasks(), served_routes(app.router), 1000)
    validate(doc)
    op = doc["paths"]["/v3/things/{thing}"]["get"]
    assert op["summary"] == "A new endpoint." and op["tags"] == ["undescribed"]
    assert op["parameters"][0]["name"] == "thing"


def test_a_handler_describes_each_route_it_serves():
    def describe(endpoint: Endpoint):
        return {
            "summary": f"Things of {endpoint.version}",
            "operationId": f"{endpoint.version}_{endpoint.name}_{endpoint.method}",
            "parameters": [path_parameter("thing")] if endpoint.has("thing") else [],
            "responses": {"200": {"description": "OK"}},
        }

    @documented(describe)
    async def things(request):
        """Not the summary: the declared operation wins."""

    app = web.Application()
    for path in ("/v1/things", "/v2/things/{thing}"):
        app.router.add_get(path, things)
    doc = document(load_tasks(), served_routes(app.router), 1000)
    validate(doc)
    assert doc["paths"]["/v1/things"]["get"]["operationId"] == "v1_things_get"
    named = doc["paths"]["/v2/things/{thing}"]["get"]
    assert named["summary"] == "Things of v2" and named["operationId"] == "v2_things_get"
    assert [p["name"] for p in named["parameters"]] == ["thing"]


def test_each_task_is_its_own_schema_chosen_by_task_name(tmp_path):
    registry = load_tasks(("tests.plugins.tasks",))
    doc = document(registry, served(tmp_path), max_tasks=7)
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
    # Wherever a task takes a URL, another task's output may stand (chains).
    url, reference = thumb["properties"]["url"]["oneOf"]
    assert url["format"] == "uri"
    assert reference == {"$ref": "#/components/schemas/TaskReference"}
    assert schemas["TaskReference"]["required"] == ["task"]
    assert "$ref" not in str(thumb["properties"]["width"])
    assert schemas["task.test.sleep"]["properties"]["seconds"]["type"] == "number"
    create = doc["paths"]["/v2/create"]["post"]
    tasks = create["requestBody"]["content"]["application/json"]["schema"]["properties"]["tasks"]
    assert tasks["oneOf"][1]["maxItems"] == 7
    assert set(create["responses"]) == {"200", "400", "401", "408", "413", "429", "503"}
