"""Thumbnails by URL (v1 API, docs/compat.md): create or wait for a task, then 302 to its file.

``POST /v1/create_file/{filename}`` takes ``{"task": {...}}``; ``GET`` takes the definition
in the query string (``task_name`` plus the task's parameters), so an ``<img src>`` can point
at it; ``GET /v1/file/{filename}?task=KEY`` waits for an existing task. All three answer:

* 302 to the output file named ``filename`` (any name, or none at all, will do for a task
  with one output): only to a file the task made (``dragon.engine.outputs``: one this
  server stored, or one its store or the task sent elsewhere), never to a URL the result
  merely holds, such as a scraped page's title. A stored file's URL is this server's
  ``/storage/...`` (or the bucket's, with direct S3 URLs): what the result shows, so the
  client's ``/v2/file`` check finds it;
* 404 ``{"status": "error", "message": "'medium' is not a valid filename, choose one of: ..."}``,
  also when a task with several outputs is asked for none;
* 400 with the task's status document when the task ends in error.

GET requests carry ``secret`` or ``api_key`` in the query string (an api key only works from a
whitelisted Referer, as everywhere). The same definition asked again by the same account is
answered from the first task while its output file exists (``dragon.engine.result_cache``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web
from marshmallow import ValidationError
from multidict import MultiMapping

from dragon.api.openapi import (
    STRING,
    Endpoint,
    Operation,
    documented,
    errors,
    path_parameter,
    query,
    ref,
)
from dragon.api.request import json_body, parse_json
from dragon.api.state import state
from dragon.engine.auth import Account
from dragon.engine.outputs import Output, Outputs, url_values
from dragon.engine.result_cache import CacheKey, ResultCache, canonical
from dragon.errors import Overloaded, RequestError
from dragon.handlers.credentials import credentials_of
from dragon.handlers.errors import CORS_HEADERS
from dragon.handlers.events import streams
from dragon.handlers.tasks import check_rate, version_of

# Query-string names that are credentials or the task's name, never task parameters.
NOT_PARAMETERS = frozenset({"task_name", "secret", "api_key"})
RESULT_CACHE = web.AppKey("result_cache", ResultCache)


def setup(app: web.Application) -> None:
    """Give ``app`` its result cache (one per server, in memory)."""
    app[RESULT_CACHE] = ResultCache()


def query_definition(query: MultiMapping[str]) -> dict[str, Any]:
    """A task definition from a query string: ``task_name`` plus one entry per parameter.

    A repeated name becomes a list, and a value that starts with ``{`` or ``[`` is read as
    JSON when it parses (``task_store={"type":"volatile"}``; nesting deeper than a body may
    is a 400). Numbers and booleans stay strings: the task's schema converts them, as it
    does for JSON bodies.
    """
    name = query.get("task_name")
    if not name:
        raise RequestError("task_name", "task_name is missing", "querystring")
    definition: dict[str, Any] = {"task_name": name}
    for field in dict.fromkeys(query.keys()):
        if field in NOT_PARAMETERS:
            continue
        values = [_value(field, v) for v in query.getall(field)]
        definition[field] = values[0] if len(values) == 1 else values
    return definition


def _value(field: str, text: str) -> object:
    """A query value: JSON when it looks like and parses as JSON (within the depth limit)."""
    if text[:1] in ("{", "["):
        try:
            return parse_json(text.encode(), field, "querystring")
        except orjson.JSONDecodeError:
            pass
    return text


def _message(status: int, message: str) -> web.Response:
    return web.Response(
        body=orjson.dumps({"status": "error", "message": message}),
        status=status,
        content_type="application/json",
        headers=CORS_HEADERS,
    )


def _failed(doc: dict[str, Any]) -> web.Response:
    return web.Response(
        body=orjson.dumps(doc), status=400, content_type="application/json", headers=CORS_HEADERS
    )


def task_outputs(request: web.Request) -> Outputs:
    """What tells a task's output files from the other URLs of its result."""
    st = state(request)
    return Outputs(st.db, st.stores, st.registry)


def choose(files: dict[str, Output], filename: str) -> Output | web.Response:
    """The output ``filename`` names (any name, or none, for a task with one output), or
    the 404 that says which names exist."""
    if len(files) == 1:
        return next(iter(files.values()))
    if filename in files:
        return files[filename]
    if not files:
        return _message(404, "this task has no output file")
    names = ", ".join(repr(n) for n in files)
    if not filename:
        return _message(
            404, f"this task has several output files: add one's name to the path: {names}"
        )
    return _message(404, f"{filename[:100]!r} is not a valid filename, choose one of: {names}")


def redirect(output: Output) -> web.Response:
    """302 to ``output``. ``Dragon-Output`` says whether this server keeps the file
    (``stored``) or the task sent it elsewhere (``sent``: a platform's page, an object in
    the account's own bucket), which ``dragon download`` has nothing to fetch from."""
    kind = "sent" if output.file is None else "stored"
    return web.Response(
        status=302, headers={"Location": output.url, "Dragon-Output": kind, **CORS_HEADERS}
    )


async def _wait(request: web.Request, account: Account, key: str) -> dict[str, Any]:
    """The task's document once it has ended (or the server stops); the wait counts as
    one of the account's streams (``AccountStreams``), since a task may run for long."""
    with streams(request).hold(account.id, request):
        [doc] = await state(request).service.wait(account, [key], version_of(request))
    return doc


async def _answer(request: web.Request, account: Account, key: str, filename: str) -> web.Response:
    doc = await _wait(request, account, key)
    if doc["status"] == "error":
        return _failed(doc)
    if doc["status"] != "success":  # the wait ended early: the server is shutting down
        raise Overloaded("the server is shutting down; retry in a few seconds")
    chosen = choose(await task_outputs(request).of(account.id, key, doc), filename)
    return chosen if isinstance(chosen, web.Response) else redirect(chosen)


def _canonical_definition(request: web.Request, definition: dict[str, Any]) -> dict[str, Any]:
    """The definition as its task reads it (defaults filled in), so equivalent URLs match."""
    name = definition.get("task_name")
    spec = state(request).registry.get(name) if isinstance(name, str) else None
    if spec is None:
        return definition
    params = {k: v for k, v in definition.items() if k != "task_name"}
    try:
        return {"task_name": spec.name, **spec.schema.load(params)}
    except ValidationError:
        return definition


async def _from_cache(
    request: web.Request, account: Account, cache_key: CacheKey, filename: str
) -> web.Response | None:
    """The answer of the task that already served this definition, if its file still lives
    (its row goes when the file is deleted, and an expired one is about to; a file sent
    elsewhere is taken to live)."""
    cache = request.app[RESULT_CACHE]
    key = cache.get(cache_key)
    if key is None:
        return None
    doc = await _wait(request, account, key)
    if doc["status"] == "success":
        files = await task_outputs(request).of(account.id, key, doc)
        chosen = choose(files, filename)
        if isinstance(chosen, web.Response):
            if files or not url_values(doc):  # the name is wrong, or it never had a file
                return chosen
        elif chosen.lives():
            return redirect(chosen)
    cache.forget(cache_key, key)
    return None


# -- what the OpenAPI document says of these routes ------------------------------------------
FILENAME = path_parameter(
    "filename",
    "the output to redirect to; any name, or none (an empty segment), for a one-output task",
)
DEFINITION_IN_QUERY = {
    "name": "parameters",
    "in": "query",
    "style": "form",
    "explode": True,
    "schema": {"type": "object", "additionalProperties": STRING},
    "description": "the task's parameters, one query parameter each (a"
    " repeated name is a list; a value starting with { or [ is JSON)",
}
DEFINITION_IN_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["task"],
                "properties": {
                    "task": ref("TaskDefinition"),
                    "secret": STRING,
                    "api_key": STRING,
                },
            }
        }
    },
}
ANSWERS = {
    "302": {
        "description": "redirect to the chosen output file",
        "headers": {
            "Location": {"schema": STRING},
            "Dragon-Output": {
                "schema": {"type": "string", "enum": ["stored", "sent"]},
                "description": "stored: a file of this server; sent: one the task or its"
                " store sent elsewhere (a video platform, a signed URL)",
            },
        },
    },
    "400": {
        "description": "the task ended in error (its status), or a malformed request",
        "content": {"application/json": {"schema": {"anyOf": [ref("Status"), ref("Error")]}}},
    },
    "404": {
        "description": "no output file of that name (the message lists the names), or no such task",
        "content": {"application/json": {"schema": ref("FileError")}},
    },
    **errors(401, 408, 413, 429, 503),
}


def _named(endpoint: Endpoint) -> tuple[list[Operation], str]:
    """The ``{filename}`` parameter and operationId suffix of a route that takes one."""
    return ([FILENAME], "_named") if endpoint.has("filename") else ([], "")


def _describe_create_file(endpoint: Endpoint) -> Operation:
    """GET takes the definition in the query string, POST in its body."""
    parameters, suffix = _named(endpoint)
    operation = {
        "operationId": f"{endpoint.version}_create_file_{endpoint.method}{suffix}",
        "tags": ["files"],
        "responses": ANSWERS,
    }
    if endpoint.method == "get":
        return {
            **operation,
            "summary": "Create a task from the query string, wait, and redirect"
            " to its output file (for <img src>)",
            "parameters": [
                *parameters,
                query("task_name", STRING, required=True),
                DEFINITION_IN_QUERY,
            ],
        }
    return {
        **operation,
        "summary": "Create a task, wait, and redirect to its output file",
        "parameters": parameters,
        "requestBody": DEFINITION_IN_BODY,
    }


@documented(_describe_create_file)
async def create_file(request: web.Request) -> web.Response:
    st = state(request)
    if st.service.closing.is_set():
        raise Overloaded("the server is shutting down; retry in a few seconds")
    filename = request.match_info.get("filename", "")
    if request.method == "POST":
        body = await json_body(request)
        definition = body.get("task")
        if not isinstance(definition, dict):
            raise RequestError(
                "task",
                "task is missing"
                if definition is None
                else "task must be an object with a task_name",
            )
    else:
        body = {}
        definition = query_definition(request.query)
    account = await st.auth.authenticate(credentials_of(request, body))
    cache_key = canonical(account.id, _canonical_definition(request, definition))
    cached = await _from_cache(request, account, cache_key, filename)
    if cached is not None:
        return cached
    check_rate(request, account, 1)
    [(key, _)] = await asyncio.shield(st.service.create(account, [definition]))
    request.app[RESULT_CACHE].put(cache_key, key)
    response = await _answer(request, account, key, filename)
    if response.status == 400:
        request.app[RESULT_CACHE].forget(cache_key, key)
    return response


def _describe_file(endpoint: Endpoint) -> Operation:
    parameters, suffix = _named(endpoint)
    return {
        "summary": "Wait for an existing task and redirect to its output file",
        "operationId": f"{endpoint.version}_file{suffix}",
        "tags": ["files"],
        "parameters": [*parameters, query("task", STRING, "the task key", required=True)],
        # No body is read: it can neither stall nor be too large.
        "responses": {code: r for code, r in ANSWERS.items() if code not in ("408", "413")},
    }


@documented(_describe_file)
async def file(request: web.Request) -> web.Response:
    st = state(request)
    account = await st.auth.authenticate(credentials_of(request, {}))
    key = request.query.get("task", "").strip()
    if not key:
        raise RequestError("task", "task is missing: pass the task key", "querystring")
    [doc] = await st.service.statuses(account, [key])
    if doc.get("error_code") == "unknown_task":
        return _message(404, f"no task {key[:100]!r}")
    return await _answer(request, account, key, request.match_info.get("filename", ""))
