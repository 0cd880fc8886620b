"""The tasks API (docs/api.md): create, create_stream, status, status_stream, v1 and v2."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from dragon.api.openapi import (
    BOOLEAN,
    KEYS,
    STRING,
    Endpoint,
    Operation,
    documented,
    errors,
    json_answer,
    query,
    ref,
)
from dragon.api.request import json_body, json_response, truthy
from dragon.api.state import state
from dragon.engine.auth import Account
from dragon.engine.documents import in_version
from dragon.engine.service import Service
from dragon.errors import Overloaded, RateLimited, RequestError
from dragon.handlers.credentials import credentials_of
from dragon.handlers.errors import CORS_HEADERS
from dragon.handlers.events import streams

# Largest piece of a stream line written at once (see ``_ndjson``).
WRITE_SLICE = 64 * 1024


def version_of(request: web.Request) -> int:
    return 1 if request.path.startswith("/v1/") else 2


def task_definitions(body: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    tasks = body.get("tasks")
    if tasks is None:
        raise RequestError("tasks", "tasks is missing")
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise RequestError("tasks", "tasks must be a list of task definitions or one definition")
    if not tasks:
        raise RequestError("tasks", "tasks is empty")
    if len(tasks) > limit:
        raise RequestError("tasks", f"too many tasks: {len(tasks)}; at most {limit} per request")
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise RequestError("tasks", f"tasks[{i}] must be an object with a task_name")
    return tasks


def task_keys(request: web.Request, body: dict[str, Any], limit: int) -> list[str]:
    """The distinct keys asked for (at most ``limit``), first-seen order: from the body's
    ``tasks`` if it has them, else from the query string (one or more ``tasks``, each
    comma-separated)."""
    raw: list[Any]
    if request.method != "GET" and "tasks" in body:
        given = body["tasks"]
        raw = [given] if isinstance(given, str) else given
        if not isinstance(raw, list) or not all(isinstance(k, str) for k in raw):
            raise RequestError("tasks", "tasks must be a list of task keys")
    else:
        raw = [k for value in request.query.getall("tasks", ()) for k in value.split(",")]
    # Each distinct key once: repeats must not multiply the answer.
    keys = [k for k in dict.fromkeys([k.strip() for k in raw]) if k]
    if not keys:
        raise RequestError(
            "tasks", "tasks is missing", "querystring" if request.method == "GET" else "body"
        )
    if len(keys) > limit:
        raise RequestError(
            "tasks", f"too many distinct task keys: {len(keys)}; at most {limit} per request"
        )
    return keys


def option(request: web.Request, body: dict[str, Any], name: str) -> bool:
    if name in body:
        return truthy(body[name])
    return truthy(request.query.get(name, ""))


async def authenticated(request: web.Request, body: dict[str, Any]) -> Account:
    return await state(request).auth.authenticate(credentials_of(request, body))


def check_rate(request: web.Request, account: Account, cost: int) -> None:
    wait = state(request).buckets.take(f"account:{account.id}", cost, account.create_rate)
    if wait:
        raise RateLimited(f"too many creates; retry in {wait:.1f} s", wait)


async def _creating(
    request: web.Request,
) -> tuple[Service, Account, dict[str, Any], list[dict[str, Any]]]:
    """What both creates check first: open for business, body, credentials, tasks, rate."""
    service = state(request).service
    if service.closing.is_set():
        raise Overloaded("the server is shutting down; retry in a few seconds")
    body = await json_body(request)
    account = await authenticated(request, body)
    definitions = task_definitions(body, state(request).settings.max_tasks_per_request)
    check_rate(request, account, len(definitions))
    return service, account, body, definitions


# -- what the OpenAPI document says of these routes ------------------------------------------
STATUSES = json_answer({"type": "array", "items": ref("Status")}, "statuses in request order")
STREAM = {
    "description": "newline-delimited JSON: first the list of statuses, then one"
    " status per change until every task has ended",
    "content": {"application/x-ndjson": {"schema": STRING}},
}
STATUS_QUERY = [
    query("tasks", KEYS, "task keys (repeated, or comma-separated)", style="form", explode=True),
    query("block", BOOLEAN, "wait until every task has ended"),
    query("details", BOOLEAN, "add task_name, parameters, store, attempts, callbacks"),
]
STATUS_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "tasks": {"oneOf": [STRING, KEYS]},
                    "block": BOOLEAN,
                    "details": BOOLEAN,
                    "secret": STRING,
                    "api_key": STRING,
                },
            }
        }
    }
}


def _create_body(max_tasks: int) -> Operation:
    """One task definition, or a list of at most ``max_tasks``, and the create options."""
    tasks = {
        "oneOf": [
            ref("TaskDefinition"),
            {"type": "array", "items": ref("TaskDefinition"), "minItems": 1, "maxItems": max_tasks},
        ]
    }
    properties = {"tasks": tasks, "block": BOOLEAN, "secret": STRING, "api_key": STRING}
    schema = {"type": "object", "required": ["tasks"], "properties": properties}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _summary(endpoint: Endpoint, summary: str) -> str:
    """``summary``, with what v1 answers differently for a v1 route."""
    if endpoint.version == "v1":
        return summary + " (v1 statuses: error details under result)"
    return summary


def _describe_create(endpoint: Endpoint) -> Operation:
    v = endpoint.version
    return {
        "summary": _summary(endpoint, "Queue tasks"),
        "operationId": f"{v}_create",
        "tags": [v],
        "requestBody": _create_body(endpoint.max_tasks),
        "responses": {"200": STATUSES, **errors(400, 401, 408, 413, 429, 503)},
    }


@documented(_describe_create)
async def create(request: web.Request) -> web.StreamResponse:
    service, account, body, definitions = await _creating(request)
    version = version_of(request)
    if option(request, body, "block"):
        # Followed from before they are queued, so no end can slip past the subscription.
        with service.bus.subscribe([], service.queue_size(len(definitions))) as sub:
            created = await asyncio.shield(service.create(account, definitions, watch=sub))
            with streams(request).hold(account.id, request):  # may wait as long as a stream
                ended = await service.until_ended(account, created, sub, version)
            return json_response(ended)
    created = await asyncio.shield(service.create(account, definitions))
    return json_response([in_version(doc, version) for _, doc in created])


def _describe_create_stream(endpoint: Endpoint) -> Operation:
    v = endpoint.version
    return {
        "summary": _summary(endpoint, "Queue tasks and stream their statuses"),
        "operationId": f"{v}_create_stream",
        "tags": [v],
        "requestBody": _create_body(endpoint.max_tasks),
        "responses": {"200": STREAM, **errors(400, 401, 408, 413, 429, 503)},
    }


@documented(_describe_create_stream)
async def create_stream(request: web.Request) -> web.StreamResponse:
    service, account, _, definitions = await _creating(request)
    version = version_of(request)
    with service.bus.subscribe([], service.queue_size(len(definitions))) as sub:
        created = await asyncio.shield(service.create(account, definitions, watch=sub))
        first = [in_version(doc, version) for _, doc in created]
        return await _ndjson(request, account, service.stream(account, first, sub, version))


def _describe_status(endpoint: Endpoint) -> Operation:
    """GET takes the keys in the query string, POST in its body."""
    v = endpoint.version
    operation = {
        "summary": _summary(endpoint, "Statuses of tasks"),
        "operationId": f"{v}_status_{endpoint.method}",
        "tags": [v],
    }
    if endpoint.method == "get":
        return {
            **operation,
            "parameters": STATUS_QUERY,
            "responses": {"200": STATUSES, **errors(400, 401, 503)},
        }
    return {
        **operation,
        "requestBody": STATUS_BODY,
        "responses": {"200": STATUSES, **errors(400, 401, 408, 413, 503)},
    }


@documented(_describe_status)
async def status(request: web.Request) -> web.StreamResponse:
    # The poll clients send by the thousand a second: state read once, no body to await.
    st = state(request)
    service = st.service
    body = {} if request.method == "GET" else await json_body(request)
    account = await st.auth.authenticate(credentials_of(request, body))
    keys = task_keys(request, body, st.settings.max_tasks_per_request)
    version = version_of(request)
    plain = not body and len(request.query) == 1  # ``?tasks=...`` and nothing else
    details = not plain and option(request, body, "details")
    if not plain and option(request, body, "block"):
        with streams(request).hold(account.id, request):  # may wait as long as a stream
            docs = await service.wait(account, keys, version, details)
        return json_response(docs)
    return json_response(await service.statuses(account, keys, version, details))


def _describe_status_stream(endpoint: Endpoint) -> Operation:
    """Served as ``status_stream`` and ``stream``; GET takes the keys in the query string."""
    v = endpoint.version
    operation = {
        "summary": _summary(endpoint, "Stream the statuses of tasks"),
        "operationId": f"{v}_{endpoint.name}_{endpoint.method}",
        "tags": [v],
    }
    if endpoint.method == "get":
        return {
            **operation,
            "parameters": STATUS_QUERY[:1],
            "responses": {"200": STREAM, **errors(400, 401, 503)},
        }
    return {
        **operation,
        "requestBody": STATUS_BODY,
        "responses": {"200": STREAM, **errors(400, 401, 408, 413, 503)},
    }


@documented(_describe_status_stream)
async def status_stream(request: web.Request) -> web.StreamResponse:
    service = state(request).service
    body = await json_body(request)
    account = await authenticated(request, body)
    keys = task_keys(request, body, state(request).settings.max_tasks_per_request)
    version = version_of(request)
    with service.bus.subscribe(keys, service.queue_size(len(keys))) as sub:
        # The first answer is held by the stream only, which lets it go once written.
        lines = service.stream(
            account, await service.statuses(account, keys, version), sub, version
        )
        return await _ndjson(request, account, lines)


async def _ndjson(
    request: web.Request, account: Account, lines: AsyncIterator[bytes]
) -> web.StreamResponse:
    """Write a stream's lines; the stream counts as one of the account's (``AccountStreams``)."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/x-ndjson; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    response.headers.update(CORS_HEADERS)
    await response.prepare(request)
    stall = state(request).settings.stream_write_timeout_seconds
    # A reader that stops reading blocks our writes once the socket buffers are full; past
    # the timeout its stream is closed, so it holds nothing for long. The lines are bytes
    # already (a change's line is shared by all its streams); a long one is written in
    # slices, each awaited, so a stalled reader holds one slice in our buffers, not a copy
    # of the line (the chunked framing copies what it frames).
    with (
        streams(request).hold(account.id, request),
        contextlib.suppress(ConnectionResetError, TimeoutError),
    ):
        async for line in lines:
            view = memoryview(line)
            for start in range(0, len(view), WRITE_SLICE):
                async with asyncio.timeout(stall):
                    await response.write(view[start : start + WRITE_SLICE])
        await response.write_eof()
    return response
