"""The storage API over HTTP: list and delete an account's persistent files, set expiration.

The work is done by ``dragon.engine.storage``; these handlers parse the request and shape
the answer.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
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
    path_parameter,
    query,
    ref,
)
from dragon.api.request import json_body, json_response, truthy
from dragon.api.state import state
from dragon.errors import RequestError
from dragon.handlers.credentials import credentials_of

MAX_EXPIRATION_DAYS = 36500


def _date(name: str, value: object) -> float:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise RequestError(name, f"{name} must be an ISO 8601 date, got {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _max_age(value: object) -> float:
    """``max_age`` in days: a finite number, 0 or more. A negative age would reach into the
    future and select every file, and ``nan`` or ``1e400`` select nothing anyone meant."""
    try:
        days = float(str(value))  # "5", 5 and 5.5 alike; true, [] and {} are refused
    except (TypeError, ValueError):
        days = math.nan
    if not (math.isfinite(days) and days >= 0):
        raise RequestError("max_age", "max_age must be a number of days, 0 or more")
    return days


# -- what the OpenAPI document says of these routes ------------------------------------------
PATH = path_parameter("path", "a task key, or a task key and a file name")
DAYS = json_answer({"type": "integer", "minimum": 0}, "days files are kept (0: forever)")


def _in_path(endpoint: Endpoint) -> tuple[list[Operation], str]:
    """The ``{path}`` parameter and operationId suffix of a route that takes one."""
    return ([PATH], "_path") if endpoint.has("path") else ([], "")


def _describe_list_files(endpoint: Endpoint) -> Operation:
    parameters, suffix = _in_path(endpoint)
    return {
        "summary": "List persistent output files",
        "tags": ["storage"],
        "operationId": f"storage_list{suffix}",
        "parameters": [*parameters, query("recursive", BOOLEAN)],
        "responses": {"200": json_answer(ref("Listing")), **errors(400, 401, 404, 503)},
    }


@documented(_describe_list_files)
async def list_files(request: web.Request) -> web.Response:
    st = state(request)
    account = await st.auth.authenticate(credentials_of(request))
    path = request.match_info.get("path", "")
    recursive = truthy(request.query.get("recursive", ""))
    return json_response(await st.storage.listing(account, path, recursive))


def _describe_delete_files(endpoint: Endpoint) -> Operation:
    """The filters come in the query string or in the body (``DeleteFiles``)."""
    parameters, suffix = _in_path(endpoint)
    return {
        "summary": "Delete persistent output files",
        "tags": ["storage"],
        "operationId": f"storage_delete{suffix}",
        "parameters": [
            *parameters,
            query("dry_run", BOOLEAN),
            query("from", STRING),
            query("to", STRING),
            query("max_age", {"type": "number", "minimum": 0}),
            query("urls", KEYS, style="form", explode=True),
        ],
        "requestBody": {"content": {"application/json": {"schema": ref("DeleteFiles")}}},
        "responses": {
            "200": json_answer(ref("Deleted")),
            # 404: a path the router cannot match (a line break in it)
            **errors(400, 401, 403, 404, 408, 413, 503),
        },
    }


@documented(_describe_delete_files)
async def delete_files(request: web.Request) -> web.Response:
    st = state(request)
    body = await json_body(request)
    account = await st.auth.authenticate(
        credentials_of(request, body), secret_only="deleting files"
    )
    options = {**request.query, **body}
    urls = options.get("urls")
    if urls is not None:
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise RequestError("urls", "urls must be a list of absolute URLs")
        chosen = await st.storage.select(account, urls=urls)
    else:
        older_than = None
        if "max_age" in options:
            older_than = time.time() - _max_age(options["max_age"]) * 86400
        chosen = await st.storage.select(
            account,
            path=request.match_info.get("path", ""),
            since=_date("from", options["from"]) if "from" in options else None,
            until=_date("to", options["to"]) if "to" in options else None,
            older_than=older_than,
        )
    dry_run = truthy(options.get("dry_run", False))
    return json_response(await st.storage.delete(account, chosen, dry_run))


def _describe_expiration(endpoint: Endpoint) -> Operation:
    """GET reads the expiration; POST sets it, with the secret key only."""
    if endpoint.method == "get":
        return {
            "summary": "How long persistent files are kept",
            "tags": ["storage"],
            "operationId": "storage_expiration_get",
            "responses": {"200": DAYS, **errors(400, 401, 503)},
        }
    return {
        "summary": "Set how long persistent files are kept",
        "tags": ["storage"],
        "operationId": "storage_expiration_post",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ref("SetExpiration")}},
        },
        "responses": {"200": DAYS, **errors(400, 401, 403, 408, 413, 503)},
    }


@documented(_describe_expiration)
async def expiration(request: web.Request) -> web.Response:
    st = state(request)
    body = await json_body(request)
    changing = "changing the expiration" if request.method == "POST" else None
    account = await st.auth.authenticate(credentials_of(request, body), secret_only=changing)
    if request.method == "POST":
        given: Any = body.get("days", request.query.get("days"))
        try:
            days = int(given)
        except (TypeError, ValueError):
            raise RequestError("days", "days must be a whole number (0: never delete)") from None
        if not 0 <= days <= MAX_EXPIRATION_DAYS:
            raise RequestError("days", f"days must be 0 to {MAX_EXPIRATION_DAYS} (0: never)")
        await st.storage.set_expiration(account, days)
        st.auth.forget(account)
        return json_response(days)
    return json_response(await st.storage.expiration(account))
