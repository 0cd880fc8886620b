"""The storage API over HTTP: list and delete an account's persistent files, set expiration.

The work is done by ``dragon.engine.storage``; these handlers parse the request and shape
the answer.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from dragon.errors import RequestError
from dragon.handlers.credentials import credentials_of
from dragon.handlers.request import json_body, json_response, truthy
from dragon.handlers.state import state

MAX_EXPIRATION_DAYS = 36500


def _date(name: str, value) -> float:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise RequestError(name, f"{name} must be an ISO 8601 date, got {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


async def list_files(request: web.Request) -> web.Response:
    st = state(request)
    account = await st.auth.authenticate(credentials_of(request))
    path = request.match_info.get("path", "")
    recursive = truthy(request.query.get("recursive", ""))
    return json_response(await st.storage.listing(account, path, recursive))


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
            try:
                days = float(options["max_age"])
            except (TypeError, ValueError):
                raise RequestError("max_age", "max_age must be a number of days") from None
            older_than = time.time() - days * 86400
        chosen = await st.storage.select(
            account,
            path=request.match_info.get("path", ""),
            since=_date("from", options["from"]) if "from" in options else None,
            until=_date("to", options["to"]) if "to" in options else None,
            older_than=older_than,
        )
    dry_run = truthy(options.get("dry_run", False))
    return json_response(await st.storage.delete(account, chosen, dry_run))


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
