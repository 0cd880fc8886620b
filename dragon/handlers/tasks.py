"""The tasks API (docs/api.md): create, create_stream, status, status_stream, v1 and v2."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from dragon.engine.documents import in_version
from dragon.errors import Overloaded, RateLimited, RequestError
from dragon.handlers.credentials import credentials_of
from dragon.handlers.errors import CORS_HEADERS
from dragon.handlers.request import json_body, json_response, truthy
from dragon.handlers.state import state

# Largest piece of a stream line written at once (see ``_ndjson``).
WRITE_SLICE = 64 * 1024


def version_of(request: web.Request) -> int:
    return 1 if request.path.startswith("/v1/") else 2


def task_definitions(body: dict, limit: int) -> list[dict]:
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


def task_keys(request: web.Request, body: dict[str, Any]) -> list[str]:
    from_query = [k for value in request.query.getall("tasks", []) for k in value.split(",")]
    raw: Any = from_query if request.method == "GET" else body.get("tasks", from_query)
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(k, str) for k in raw):
        raise RequestError("tasks", "tasks must be a list of task keys")
    keys: list[str] = raw
    # Each distinct key once, first-seen order: repeats must not multiply the answer.
    keys = list(dict.fromkeys(k.strip() for k in keys if k.strip()))
    if not keys:
        raise RequestError(
            "tasks", "tasks is missing", "querystring" if request.method == "GET" else "body"
        )
    limit = state(request).settings.max_tasks_per_request
    if len(keys) > limit:
        raise RequestError(
            "tasks", f"too many distinct task keys: {len(keys)}; at most {limit} per request"
        )
    return keys


def option(request: web.Request, body: dict, name: str) -> bool:
    if name in body:
        return truthy(body[name])
    return truthy(request.query.get(name, ""))


async def authenticated(request: web.Request, body: dict):
    return await state(request).auth.authenticate(credentials_of(request, body))


def check_rate(request: web.Request, account, cost: int) -> None:
    wait = state(request).buckets.take(f"account:{account.id}", cost, account.create_rate)
    if wait:
        raise RateLimited(f"too many creates; retry in {wait:.1f} s", wait)


async def _creating(request: web.Request) -> tuple[Any, Any, dict, list[dict]]:
    """What both creates check first: open for business, body, credentials, tasks, rate."""
    service = state(request).service
    if service.closing.is_set():
        raise Overloaded("the server is shutting down; retry in a few seconds")
    body = await json_body(request)
    account = await authenticated(request, body)
    definitions = task_definitions(body, state(request).settings.max_tasks_per_request)
    check_rate(request, account, len(definitions))
    return service, account, body, definitions


async def create(request: web.Request) -> web.StreamResponse:
    service, account, body, definitions = await _creating(request)
    version = version_of(request)
    if option(request, body, "block"):
        # Followed from before they are queued, so no end can slip past the subscription.
        with service.bus.subscribe([], service.queue_size(len(definitions))) as sub:
            created = await asyncio.shield(service.create(account, definitions, watch=sub))
            return json_response(await service.until_ended(account, created, sub, version))
    created = await asyncio.shield(service.create(account, definitions))
    return json_response([in_version(doc, version) for _, doc in created])


async def create_stream(request: web.Request) -> web.StreamResponse:
    service, account, _, definitions = await _creating(request)
    version = version_of(request)
    with service.bus.subscribe([], service.queue_size(len(definitions))) as sub:
        created = await asyncio.shield(service.create(account, definitions, watch=sub))
        first = [in_version(doc, version) for _, doc in created]
        return await _ndjson(request, service.stream(account, first, sub, version))


async def status(request: web.Request) -> web.StreamResponse:
    service = state(request).service
    body = await json_body(request)
    account = await authenticated(request, body)
    keys = task_keys(request, body)
    version = version_of(request)
    details = option(request, body, "details")
    if option(request, body, "block"):
        return json_response(await service.wait(account, keys, version, details))
    return json_response(await service.statuses(account, keys, version, details))


async def status_stream(request: web.Request) -> web.StreamResponse:
    service = state(request).service
    body = await json_body(request)
    account = await authenticated(request, body)
    keys = task_keys(request, body)
    version = version_of(request)
    with service.bus.subscribe(keys, service.queue_size(len(keys))) as sub:
        # The first answer is held by the stream only, which lets it go once written.
        lines = service.stream(
            account, await service.statuses(account, keys, version), sub, version
        )
        return await _ndjson(request, lines)


async def _ndjson(request: web.Request, lines) -> web.StreamResponse:
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
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        async for line in lines:
            view = memoryview(line)
            for start in range(0, len(view), WRITE_SLICE):
                async with asyncio.timeout(stall):
                    await response.write(view[start : start + WRITE_SLICE])
        await response.write_eof()
    return response
