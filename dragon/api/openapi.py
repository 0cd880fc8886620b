"""The OpenAPI 3.1 description of the API, generated from the marshmallow schemas.

Task parameters come from each task's own ``Schema`` (so a new task or a plugin is described
as soon as it is registered), one component per task, chosen by ``task_name`` in a
discriminated ``oneOf``. The shapes of answers (status documents, errors, listings) are
marshmallow schemas too, declared here because they describe the wire, not a task. apispec's
MarshmallowPlugin turns both into JSON Schema.

The paths are written out one by one, after the routes in ``dragon.web.app``. A route
served but not described here still appears (its handler's docstring, any answer), so the
document never hides an endpoint; a test checks that the two lists agree. The server is
looser than the document in one place: a task definition that is not one of the schemas is
still accepted with HTTP 200 and ends ``error`` (old clients retry any other answer).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import EXCLUDE, Schema, fields, validate

import dragon
from dragon.tasks import TaskSpec
from dragon.tasks.schema import Url

LOCATIONS = ("body", "querystring", "header", "path", "server")
STATUSES = ("queued", "executing", "success", "error")


class _Wire(Schema):
    """Answers may gain fields; clients must ignore the ones they do not know."""

    class Meta:
        unknown = EXCLUDE


class ErrorItem(_Wire):
    name = fields.String(required=True, metadata={"description": "the parameter at fault"})
    location = fields.String(
        required=True,
        validate=validate.OneOf(LOCATIONS),
        metadata={
            "description": "where it was: body, querystring or"
            " header (credentials: where the refused one was)"
        },
    )
    description = fields.String(required=True)


class Error(_Wire):
    """A request the server refused (Cornice's error shape, as the original service)."""

    status = fields.String(required=True, validate=validate.OneOf(["error"]))
    errors = fields.List(fields.Nested(ErrorItem), required=True)


class FileError(_Wire):
    """create_file and file: no such output file, or no such task."""

    status = fields.String(required=True, validate=validate.OneOf(["error"]))
    message = fields.String(required=True)


class Events(_Wire):
    queued = fields.DateTime()
    started = fields.DateTime()
    completed = fields.DateTime()


class Callback(_Wire):
    url = fields.String(required=True)
    state = fields.String(required=True)
    attempts = fields.Integer(required=True)
    last_status = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    next_try = fields.DateTime(allow_none=True)
    webhook_id = fields.String(required=True)


class Status(_Wire):
    """A task's status document (v2; in v1, ``result`` holds the error details instead)."""

    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    key = fields.String(required=True)
    progress = fields.Float(
        required=True,
        validate=validate.Range(min=0, max=100),
        metadata={"description": "0 while queued, 100 once ended"},
    )
    events = fields.Nested(Events, required=True)
    result = fields.Raw(
        metadata={
            "description": "the result on success (output files as"
            " URLs); a partial result while executing"
        }
    )
    error = fields.Raw(metadata={"description": "a message, or {parameters: {field: [...]}}"})
    error_code = fields.String(allow_none=True)
    task_name = fields.String(metadata={"description": "with details=true"})
    parameters = fields.Dict(metadata={"description": "with details=true; secrets masked"})
    store = fields.Dict(metadata={"description": "with details=true"})
    attempts = fields.Integer(metadata={"description": "with details=true"})
    callbacks = fields.List(fields.Nested(Callback), metadata={"description": "with details=true"})


class StoredFile(_Wire):
    name = fields.String(required=True)
    size = fields.Integer(required=True)
    last_modified = fields.String(required=True)
    url = fields.String(required=True)
    content_type = fields.String(required=True)


class Listing(_Wire):
    files = fields.List(fields.Nested(StoredFile), required=True)
    directories = fields.List(fields.String(), required=True)
    usage = fields.Integer(required=True, metadata={"description": "persistent bytes in use"})


class Deleted(_Wire):
    deleted = fields.List(fields.String(), required=True)
    freed = fields.Integer(required=True)
    usage = fields.Integer(
        required=True,
        metadata={
            "description": "bytes in use after the delete (with dry_run: after it would run)"
        },
    )


class Health(_Wire):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "degraded", "closing"]))
    problems = fields.List(fields.String(), required=True)
    queued = fields.Integer(required=True)
    executing = fields.Integer(required=True)
    subscribers = fields.Integer(required=True)


class Credentials(Schema):
    """What every authenticated body may carry besides its own fields."""

    secret = fields.String()
    api_key = fields.String()


class DeleteFiles(Credentials):
    urls = fields.List(
        fields.String(),
        metadata={"description": "absolute URLs to delete; the other filters are then ignored"},
    )
    dry_run = fields.Boolean()
    from_ = fields.String(data_key="from", metadata={"description": "ISO 8601"})
    to = fields.String(metadata={"description": "ISO 8601"})
    max_age = fields.Float(metadata={"description": "days"})


class SetExpiration(Credentials):
    days = fields.Integer(
        required=True,
        validate=validate.Range(min=0, max=36500),
        metadata={"description": "0: never delete"},
    )


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Any, description: str = "") -> dict:
    return {"description": description or "OK", "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    meaning = {
        400: "malformed request",
        401: "bad credentials, or the account's limit of active tasks (with Retry-After)",
        403: "an api key cannot do this (it is public in web pages): use the secret key",
        404: "not found",
        408: "the request body stalled",
        410: "the cursor is older than the feed keeps",
        413: "body too large",
        416: "range not satisfiable",
        429: "too many creates (with Retry-After)",
        503: "overloaded, database busy or shutting down (with Retry-After)",
    }
    return {str(c): _json(_ref("Error"), meaning[c]) for c in codes}


def _query(name: str, schema: dict, description: str = "", **extra: Any) -> dict:
    return {"name": name, "in": "query", "schema": schema, "description": description, **extra}


BOOLEAN = {"type": "boolean"}
KEYS = {"type": "array", "items": {"type": "string"}}


def _task_component(plugin: MarshmallowPlugin, spec: TaskSpec) -> dict:
    """A task's parameters as JSON Schema, plus the ``task_name`` that selects it."""
    assert plugin.converter is not None  # set when the plugin joined the APISpec
    body = plugin.converter.schema2jsonschema(spec.schema)
    body["properties"] = {
        "task_name": {"type": "string", "enum": [spec.name]},
        **body.get("properties", {}),
    }
    body["required"] = ["task_name", *body.get("required", [])]
    doc = (importlib.import_module(spec.module).__doc__ or "").strip()
    if doc:
        body["description"] = doc.split("\n\n", 1)[0]
    return body


Route = tuple[str, str, str]  # (method, path with {name} parameters, summary)


def served_routes(router: Any) -> list[Route]:
    """What an aiohttp router serves, in OpenAPI's terms (HEAD and OPTIONS left out)."""
    out = []
    for route in router.routes():
        if route.method in ("HEAD", "OPTIONS") or route.resource is None:
            continue
        path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.resource.canonical)
        summary = (getattr(route.handler, "__doc__", None) or "").strip().split("\n")[0]
        out.append((route.method.lower(), path, summary))
    return out


def document(
    registry: dict[str, TaskSpec], max_tasks: int = 1000, routes: Iterable[Route] = ()
) -> dict:
    """The OpenAPI document of a server running the tasks of ``registry``.

    ``routes`` (from ``served_routes``) adds whatever the server serves that is not described
    here, with its handler's summary and no promise about its answers.
    """
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
    plugin.map_to_openapi_type(Url, "string", "uri")
    for schema in (Error, FileError, Status, Listing, Deleted, Health):
        spec.components.schema(schema.__name__, schema=schema)
    spec.components.schema("DeleteFiles", schema=DeleteFiles)
    spec.components.schema("SetExpiration", schema=SetExpiration)

    names = sorted(registry)
    for name in names:
        spec.components.schema(f"task.{name}", _task_component(plugin, registry[name]))
    spec.components.schema(
        "TaskDefinition",
        {
            "oneOf": [_ref(f"task.{n}") for n in names],
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

    _tasks_paths(spec, max_tasks)
    _file_paths(spec)
    _storage_paths(spec)
    _public_paths(spec)
    _events_paths(spec)
    body = spec.to_dict()
    for method, path, summary in routes:
        operations = body["paths"].setdefault(path, {})
        if method not in operations:
            operations[method] = {
                "summary": summary or path,
                "tags": ["undescribed"],
                "operationId": re.sub(r"\W+", "_", f"{method}{path}").strip("_"),
                "parameters": [
                    {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                    for name in re.findall(r"\{(\w+)\}", path)
                ],
                "responses": {"default": {"description": "not described yet"}},
            }
    return body


def _tasks_paths(spec: APISpec, max_tasks: int) -> None:
    tasks = {
        "oneOf": [
            _ref("TaskDefinition"),
            {
                "type": "array",
                "items": _ref("TaskDefinition"),
                "minItems": 1,
                "maxItems": max_tasks,
            },
        ]
    }
    create_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["tasks"],
                    "properties": {
                        "tasks": tasks,
                        "block": BOOLEAN,
                        "secret": {"type": "string"},
                        "api_key": {"type": "string"},
                    },
                }
            }
        },
    }
    status_body = {
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "tasks": {"oneOf": [{"type": "string"}, KEYS]},
                        "block": BOOLEAN,
                        "details": BOOLEAN,
                        "secret": {"type": "string"},
                        "api_key": {"type": "string"},
                    },
                }
            }
        }
    }
    status_query = [
        _query(
            "tasks", KEYS, "task keys (repeated, or comma-separated)", style="form", explode=True
        ),
        _query("block", BOOLEAN, "wait until every task has ended"),
        _query("details", BOOLEAN, "add task_name, parameters, store, attempts, callbacks"),
    ]
    statuses = _json({"type": "array", "items": _ref("Status")}, "statuses in request order")
    stream = {
        "description": "newline-delimited JSON: first the list of statuses, then one"
        " status per change until every task has ended",
        "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
    }
    for v in ("v1", "v2"):
        note = " (v1 statuses: error details under result)" if v == "v1" else ""
        spec.path(
            f"/{v}/create",
            operations={
                "post": {
                    "summary": "Queue tasks" + note,
                    "operationId": f"{v}_create",
                    "tags": [v],
                    "requestBody": create_body,
                    "responses": {"200": statuses, **_errors(400, 401, 408, 413, 429, 503)},
                }
            },
        )
        spec.path(
            f"/{v}/create_stream",
            operations={
                "post": {
                    "summary": "Queue tasks and stream their statuses" + note,
                    "operationId": f"{v}_create_stream",
                    "tags": [v],
                    "requestBody": create_body,
                    "responses": {"200": stream, **_errors(400, 401, 408, 413, 429, 503)},
                }
            },
        )
        spec.path(
            f"/{v}/status",
            operations={
                "get": {
                    "summary": "Statuses of tasks" + note,
                    "operationId": f"{v}_status_get",
                    "tags": [v],
                    "parameters": status_query,
                    "responses": {"200": statuses, **_errors(400, 401, 503)},
                },
                "post": {
                    "summary": "Statuses of tasks" + note,
                    "operationId": f"{v}_status_post",
                    "tags": [v],
                    "requestBody": status_body,
                    "responses": {"200": statuses, **_errors(400, 401, 408, 413, 503)},
                },
            },
        )
        for path in (f"/{v}/status_stream", f"/{v}/stream"):
            op = path.rsplit("/", 1)[1]
            spec.path(
                path,
                operations={
                    "get": {
                        "summary": "Stream the statuses of tasks" + note,
                        "operationId": f"{v}_{op}_get",
                        "tags": [v],
                        "parameters": status_query[:1],
                        "responses": {"200": stream, **_errors(400, 401, 503)},
                    },
                    "post": {
                        "summary": "Stream the statuses of tasks" + note,
                        "operationId": f"{v}_{op}_post",
                        "tags": [v],
                        "requestBody": status_body,
                        "responses": {"200": stream, **_errors(400, 401, 408, 413, 503)},
                    },
                },
            )


def _file_paths(spec: APISpec) -> None:
    found = {
        "description": "redirect to the chosen output file",
        "headers": {"Location": {"schema": {"type": "string"}}},
    }
    failed = {
        "description": "the task ended in error (its status), or a malformed request",
        "content": {"application/json": {"schema": {"anyOf": [_ref("Status"), _ref("Error")]}}},
    }
    missing = {
        "description": "no output file of that name (the message lists the names), or no such task",
        "content": {"application/json": {"schema": _ref("FileError")}},
    }
    filename = {
        "name": "filename",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "the output to redirect to; any name for a one-output task",
    }
    task_in_query = {
        "name": "parameters",
        "in": "query",
        "style": "form",
        "explode": True,
        "schema": {"type": "object", "additionalProperties": {"type": "string"}},
        "description": "the task's parameters, one query parameter each (a"
        " repeated name is a list; a value starting with { or [ is JSON)",
    }
    responses = {"302": found, "400": failed, "404": missing, **_errors(401, 408, 413, 429, 503)}
    for v in ("v1", "v2"):
        for suffix, params in (("", []), ("/{filename}", [filename])):
            spec.path(
                f"/{v}/create_file{suffix}",
                operations={
                    "get": {
                        "summary": "Create a task from the query string, wait, and redirect"
                        " to its output file (for <img src>)",
                        "operationId": f"{v}_create_file_get{'_named' if params else ''}",
                        "tags": ["files"],
                        "parameters": [
                            *params,
                            _query("task_name", {"type": "string"}, required=True),
                            task_in_query,
                        ],
                        "responses": responses,
                    },
                    "post": {
                        "summary": "Create a task, wait, and redirect to its output file",
                        "operationId": f"{v}_create_file_post{'_named' if params else ''}",
                        "tags": ["files"],
                        "parameters": params,
                        "requestBody": {
                            "required": True,
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["task"],
                                        "properties": {
                                            "task": _ref("TaskDefinition"),
                                            "secret": {"type": "string"},
                                            "api_key": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                        "responses": responses,
                    },
                },
            )
            spec.path(
                f"/{v}/file{suffix}",
                operations={
                    "get": {
                        "summary": "Wait for an existing task and redirect to its output file",
                        "operationId": f"{v}_file{'_named' if params else ''}",
                        "tags": ["files"],
                        "parameters": [
                            *params,
                            _query("task", {"type": "string"}, "the task key", required=True),
                        ],
                        "responses": {
                            code: r for code, r in responses.items() if code not in ("408", "413")
                        },
                    }
                },
            )


def _storage_paths(spec: APISpec) -> None:
    path = {
        "name": "path",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "a task key, or a task key and a file name",
    }
    delete_query = [
        _query("dry_run", BOOLEAN),
        _query("from", {"type": "string"}),
        _query("to", {"type": "string"}),
        _query("max_age", {"type": "number"}),
        _query("urls", KEYS, style="form", explode=True),
    ]
    delete_body = {"content": {"application/json": {"schema": _ref("DeleteFiles")}}}
    for suffix, params in (("", []), ("/{path}", [path])):
        spec.path(
            f"/v2/storage/files{suffix}",
            operations={
                "get": {
                    "summary": "List persistent output files",
                    "tags": ["storage"],
                    "operationId": f"storage_list{'_path' if params else ''}",
                    "parameters": [*params, _query("recursive", BOOLEAN)],
                    "responses": {"200": _json(_ref("Listing")), **_errors(400, 401, 404, 503)},
                },
                "delete": {
                    "summary": "Delete persistent output files",
                    "tags": ["storage"],
                    "operationId": f"storage_delete{'_path' if params else ''}",
                    "parameters": [*params, *delete_query],
                    "requestBody": delete_body,
                    "responses": {
                        "200": _json(_ref("Deleted")),
                        # 404: a path the router cannot match (a line break in it)
                        **_errors(400, 401, 403, 404, 408, 413, 503),
                    },
                },
            },
        )
    days = _json({"type": "integer", "minimum": 0}, "days files are kept (0: forever)")
    spec.path(
        "/v2/storage/expiration",
        operations={
            "get": {
                "summary": "How long persistent files are kept",
                "tags": ["storage"],
                "operationId": "storage_expiration_get",
                "responses": {"200": days, **_errors(400, 401, 503)},
            },
            "post": {
                "summary": "Set how long persistent files are kept",
                "tags": ["storage"],
                "operationId": "storage_expiration_post",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("SetExpiration")}},
                },
                "responses": {"200": days, **_errors(400, 401, 403, 408, 413, 503)},
            },
        },
    )


def _public_paths(spec: APISpec) -> None:
    public: list = []
    spec.path(
        "/storage/{location}",
        operations={
            "get": {
                "summary": "An output file of the local store (no credentials; Range works)",
                "operationId": "output_file",
                "tags": ["files"],
                "security": public,
                "parameters": [
                    {
                        "name": "location",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "the file",
                        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "206": {"description": "part of the file"},
                    **_errors(404, 416),
                },
            }
        },
    )
    spec.path(
        "/healthz",
        operations={
            "get": {
                "summary": "Liveness and queue depth",
                "operationId": "healthz",
                "tags": ["server"],
                "security": public,
                "responses": {
                    "200": _json(_ref("Health")),
                    "503": _json(_ref("Health"), "cannot take tasks: problems says why"),
                },
            }
        },
    )
    spec.path(
        "/metrics",
        operations={
            "get": {
                "summary": "This node's metrics (Prometheus text format)",
                "operationId": "metrics",
                "tags": ["server"],
                "security": public,
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    )
    spec.path(
        "/openapi.json",
        operations={
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "tags": ["server"],
                "security": public,
                "responses": {"200": _json({"type": "object"})},
            }
        },
    )
    spec.path(
        "/docs",
        operations={
            "get": {
                "summary": "This document in Swagger UI (works offline)",
                "operationId": "docs",
                "tags": ["server"],
                "security": public,
                "responses": {
                    "200": {
                        "description": "an HTML page",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    )
    spec.path(
        "/docs/{asset}",
        operations={
            "get": {
                "summary": "The scripts and styles of the /docs page",
                "operationId": "docs_asset",
                "tags": ["server"],
                "security": public,
                "parameters": [
                    {"name": "asset", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "the file",
                        "content": {"*/*": {"schema": {"type": "string"}}},
                    },
                    **_errors(404),
                },
            }
        },
    )
    page = {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}
    spec.path(
        "/dashboard",
        operations={
            "get": {
                "summary": "A live page of the account's tasks (signs in with a secret)",
                "operationId": "dashboard",
                "tags": ["server"],
                "security": public,
                "responses": {"200": page},
            }
        },
    )
    spec.path(
        "/dashboard/{name}",
        operations={
            "get": {
                "summary": "The dashboard's page, script and style",
                "operationId": "dashboard_file",
                "tags": ["server"],
                "security": public,
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "the file",
                        "content": {"*/*": {"schema": {"type": "string"}}},
                    },
                    **_errors(404),
                },
            }
        },
    )


def _events_paths(spec: APISpec) -> None:
    spec.path(
        "/v2/events",
        operations={
            "get": {
                "summary": "The account's event feed (NDJSON, or Server-Sent Events with Accept:"
                " text/event-stream)",
                "operationId": "events",
                "tags": ["v2"],
                "parameters": [
                    _query(
                        "after",
                        {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                        "the cursor to resume from (or the Last-Event-ID header, for SSE)",
                    ),
                    _query("follow", BOOLEAN, "keep the response open for new changes"),
                ],
                "responses": {
                    "200": {
                        "description": "one event per line (or per SSE message)",
                        "content": {
                            "application/x-ndjson": {"schema": {"type": "string"}},
                            "text/event-stream": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(400, 401, 410, 503),
                },
            }
        },
    )
