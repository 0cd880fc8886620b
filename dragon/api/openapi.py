"""The OpenAPI 3.1 description of the API, from what each handler declares beside itself.

A handler carries its operation (summary, parameters, request body, answers, tags) in a
``@documented(...)`` decorator, so the description is read and changed with the code it
describes. ``document`` walks the routes the application serves (``served_routes``) and
asks each handler for the operation of each route: a handler that serves several routes
(v1 and v2, with and without a file name) declares a function of the ``Endpoint``. A route
whose handler declares nothing still appears (its docstring's first line, any answer), so
the document never hides an endpoint; a test checks that no route is left so.

Task parameters come from each task's own ``Schema`` (so a new task or a plugin is described
as soon as it is registered), one component per task, chosen by ``task_name`` in a
discriminated ``oneOf``. The shapes of answers are the marshmallow schemas of
``dragon.api.wire``; apispec's MarshmallowPlugin turns both into JSON Schema. The server is
looser than the document in one place: a task definition that is not one of the schemas is
still accepted with HTTP 200 and ends ``error`` (old clients retry any other answer).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema

import dragon
from dragon.api import wire
from dragon.tasks import TaskSpec
from dragon.tasks.schema import Url

# An OpenAPI operation object, or any piece of one (JSON).
Operation = dict[str, Any]
HandlerT = TypeVar("HandlerT", bound=Callable[[web.Request], Awaitable[web.StreamResponse]])

BOOLEAN = {"type": "boolean"}
STRING = {"type": "string"}
KEYS = {"type": "array", "items": STRING}
# The ``security`` of an operation anyone may call, credentials or not.
PUBLIC: list[dict[str, list[str]]] = []

ERROR_MEANINGS = {
    400: "malformed request",
    401: "bad credentials, or the account's limit of active tasks (with Retry-After)",
    403: "an api key cannot do this (it is public in web pages): use the secret key",
    404: "not found",
    408: "the request body stalled",
    409: "the upload is not at that offset (HEAD it, then resume)",
    410: "gone: the cursor is older than the feed keeps, or the upload expired",
    412: "the request's Tus-Resumable is not this server's version",
    413: "body too large (an upload: past its length, the largest upload or the account's"
    " unfinished bytes)",
    415: "the body's Content-Type is not the one required",
    416: "range not satisfiable",
    423: "another request is writing this upload",
    429: "too many creates (with Retry-After)",
    460: "the body does not match its Upload-Checksum (nothing of it was stored)",
    503: "overloaded, database busy or shutting down (with Retry-After)",
}


def ref(name: str) -> Operation:
    """A reference to the component schema ``name`` (a ``wire`` schema, ``TaskDefinition``)."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_answer(schema: Operation, description: str = "") -> Operation:
    """An answer whose JSON body follows ``schema``."""
    return {"description": description or "OK", "content": {"application/json": {"schema": schema}}}


def errors(*codes: int) -> Operation:
    """The error answers ``codes``, each in the API's error shape with what it means."""
    return {str(code): json_answer(ref("Error"), ERROR_MEANINGS[code]) for code in codes}


def query(name: str, schema: Operation, description: str = "", **extra: object) -> Operation:
    """A query-string parameter (``extra``: ``required``, ``style``, ``explode``...)."""
    return {"name": name, "in": "query", "schema": schema, "description": description, **extra}


def path_parameter(name: str, description: str = "") -> Operation:
    """A ``{name}`` segment of the path, a string."""
    parameter: Operation = {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    if description:
        parameter["description"] = description
    return parameter


def file_answer(
    content_type: str, description: str = "the file", binary: bool = False
) -> Operation:
    """An answer whose body is a file of ``content_type`` (``*/*`` for any)."""
    schema: Operation = {"type": "string", "format": "binary"} if binary else {"type": "string"}
    return {"description": description, "content": {content_type: {"schema": schema}}}


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One method of one served path, as the operation that describes it needs to know it."""

    method: str  # lower case, as OpenAPI keys operations
    path: str  # the OpenAPI template: {name} parameters, no regular expressions
    max_tasks: int  # the most task definitions (or keys) one request may carry

    @property
    def version(self) -> str:
        """The API version of the path (``v1``, ``v2``): its first segment."""
        return self.path.split("/")[1]

    @property
    def name(self) -> str:
        """The last segment of the path that is not a parameter (``create_file``)."""
        return [part for part in self.path.split("/") if not part.startswith("{")][-1]

    def has(self, parameter: str) -> bool:
        """Does the path take the ``{parameter}`` segment?"""
        return f"{{{parameter}}}" in self.path


Describe = Callable[[Endpoint], Operation]


@dataclasses.dataclass(frozen=True)
class Description:
    """What ``documented`` attaches to a handler: its operation, for any route it serves."""

    describe: Describe


# The handler attribute that holds its ``Description`` (as aiohttp-apispec's ``__apispec__``).
ATTRIBUTE = "__openapi__"


def documented(operation: Operation | Describe) -> Callable[[HandlerT], HandlerT]:
    """Declare the OpenAPI operation of the decorated handler, beside it.

    ``operation`` is the operation object of a handler that serves one route, or a function
    of the ``Endpoint`` for a handler that serves several (its version in the summary, a
    path parameter, the server's task limit in the body's schema).
    """
    if callable(operation):
        describe = operation
    else:
        fixed = operation

        def describe(endpoint: Endpoint) -> Operation:
            return fixed

    def attach(handler: HandlerT) -> HandlerT:
        setattr(handler, ATTRIBUTE, Description(describe))
        return handler

    return attach


@dataclasses.dataclass(frozen=True)
class ServedRoute:
    """A route the application serves, in OpenAPI's terms."""

    method: str  # lower case
    path: str  # {name} parameters
    summary: str  # the first line of the handler's docstring
    description: Description | None  # what the handler declared with ``documented``


def served_routes(router: web.UrlDispatcher) -> list[ServedRoute]:
    """What an aiohttp router serves (HEAD, OPTIONS and the catch-all of unknown paths
    left out), with each declaration."""
    out = []
    for route in router.routes():
        if route.method in ("HEAD", "OPTIONS", "*") or route.resource is None:
            continue
        path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.resource.canonical)
        summary = (route.handler.__doc__ or "").strip().split("\n")[0]
        found = getattr(route.handler, ATTRIBUTE, None)
        description = found if isinstance(found, Description) else None
        out.append(ServedRoute(route.method.lower(), path, summary, description))
    return out


def document(
    registry: Mapping[str, TaskSpec], routes: Iterable[ServedRoute], max_tasks: int
) -> dict[str, Any]:
    """The OpenAPI document of a server running the tasks of ``registry`` on ``routes``.

    ``max_tasks`` is the server's limit of definitions per request, which the create bodies
    state. A route whose handler declared no operation appears with its handler's summary
    and no promise about its answers.
    """
    spec = _spec(registry)
    undescribed = []
    for route in routes:
        if route.description is None:
            undescribed.append(route)
            continue
        operation = route.description.describe(Endpoint(route.method, route.path, max_tasks))
        spec.path(route.path, operations={route.method: operation})
    body = spec.to_dict()
    for route in undescribed:
        body["paths"].setdefault(route.path, {}).setdefault(route.method, _undescribed(route))
    return body


def _spec(registry: Mapping[str, TaskSpec]) -> APISpec:
    """An APISpec with every component (answer shapes, one schema per task) and security."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="dragon",
        version=dragon.__version__,
        openapi_version="3.1.0",
        plugins=[plugin],
        info={
            "description": "A self-hosted media tasks server that speaks the Dragon tasks"
            " API. Task parameters are in the task.* schemas."
        },
    )
    # apispec's plugin methods are not annotated: called through typed names.
    map_type: Callable[[type[Url], str, str], None] = plugin.map_to_openapi_type
    map_type(Url, "string", "uri")
    for schema in wire.COMPONENTS:
        spec.components.schema(schema.__name__, schema=schema)
    names = sorted(registry)
    for name in names:
        spec.components.schema(f"task.{name}", _task_component(plugin, registry[name]))
    spec.components.schema("TaskReference", TASK_REFERENCE)
    spec.components.schema(
        "TaskDefinition",
        {
            "oneOf": [ref(f"task.{n}") for n in names],
            "discriminator": {
                "propertyName": "task_name",
                "mapping": {n: f"#/components/schemas/task.{n}" for n in names},
            },
        },
    )
    for name, where, field in (
        ("Authorization", "header", "Authorization"),
        ("secret", "query", "secret"),
        ("api_key", "query", "api_key"),
    ):
        spec.components.security_scheme(
            name,
            {
                "type": "apiKey",
                "in": where,
                "name": field,
                "description": "`Secret KEY` or `Api-Key KEY` (an api key needs a whitelisted"
                " Referer)"
                if where == "header"
                else f"the {field} in the query string (or in a JSON body)",
            },
        )
    spec.options["security"] = [{"Authorization": []}, {"secret": []}, {"api_key": []}]
    return spec


def _task_component(plugin: MarshmallowPlugin, spec: TaskSpec) -> Operation:
    """A task's parameters as JSON Schema, plus the ``task_name`` that selects it."""
    assert plugin.converter is not None  # set when the plugin joined the APISpec
    to_json_schema: Callable[[Schema], Operation] = plugin.converter.schema2jsonschema
    body = to_json_schema(spec.schema)
    body["properties"] = {
        "task_name": {"type": "string", "enum": [spec.name]},
        **body.get("properties", {}),
    }
    body["required"] = ["task_name", *body.get("required", [])]
    for name, field in body["properties"].items():
        body["properties"][name] = _or_reference(field)
    doc = (importlib.import_module(spec.module).__doc__ or "").strip()
    if doc:
        body["description"] = doc.split("\n\n", 1)[0]
    return body


# Task chains (docs/api.md): wherever a task takes a URL, another task's output may stand.
TASK_REFERENCE: Operation = {
    "type": "object",
    "description": "The URL in a result field (output) of another task: task is the index"
    " of an earlier definition of the same create, or the key of an earlier task of the"
    " account. The task waits (waiting_for) until that one ends, and ends dependency_failed"
    " if it did not succeed.",
    "properties": {
        "task": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]},
        "output": {"type": "string", "default": "output"},
    },
    "required": ["task"],
    "additionalProperties": False,
}


def _or_reference(field: Operation) -> Operation:
    """A URL parameter's schema, which a task reference may take the place of (also as the
    items of a list of URLs)."""
    if field.get("format") == "uri":
        return {"oneOf": [field, ref("TaskReference")]}
    items = field.get("items")
    if field.get("type") == "array" and isinstance(items, dict) and items.get("format") == "uri":
        return {**field, "items": {"oneOf": [items, ref("TaskReference")]}}
    return field


def _undescribed(route: ServedRoute) -> Operation:
    """The operation of a route whose handler declared none: served, so never hidden."""
    return {
        "summary": route.summary or route.path,
        "tags": ["undescribed"],
        "operationId": re.sub(r"\W+", "_", f"{route.method}{route.path}").strip("_"),
        "parameters": [path_parameter(name) for name in re.findall(r"\{(\w+)\}", route.path)],
        "responses": {"default": {"description": "not described yet"}},
    }
