"""The storage API (seed 1.8): list and delete an account's persistent files, set expiration.

Everything is read from the ``files`` table of the caller's own account; usage comes from
the ``usage`` table that every store and delete keeps up to date. A delete forgets the rows
first (the file server stops serving them at once) and then removes the bytes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aiohttp import web

from dragon.backends import sqlite as db
from dragon.errors import RequestError
from dragon.handlers.request import json_body, json_response, truthy
from dragon.web.state import state

MAX_EXPIRATION_DAYS = 36500


def _iso_z(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _date(name: str, value) -> float:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise RequestError(name, f"{name} must be an ISO 8601 date, got {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _name(row) -> str:
    return f"{row['task_key']}/{row['name']}"


def _in_path(row, path: str, recursive: bool = True) -> bool:
    """Is the file at or under ``path`` (relative to the account root)?"""
    path = path.strip("/")
    if not path:
        return recursive
    name = _name(row)
    return name == path or name.startswith(path + "/")


async def list_files(request: web.Request) -> web.Response:
    st = state(request)
    account = await st.auth.authenticate(request)
    path = request.match_info.get("path", "").strip("/")
    recursive = truthy(request.query.get("recursive", ""))
    directories = []
    if not path:
        directories = [f"{k}/" for k in await st.db.read(db.file_directories(account.id))]
        chosen = await st.db.read(db.list_files(account.id)) if recursive else []
    else:
        rows = await st.db.read(db.list_files(account.id, task_key=path.split("/", 1)[0]))
        chosen = [r for r in rows if _in_path(r, path)]
        if not chosen:
            raise web.HTTPNotFound(reason=f"no file or directory {path!r}")
    files = [{"name": _name(r), "size": r["size"], "last_modified": _iso_z(r["created_at"]),
              "url": r["url"], "content_type": r["content_type"]} for r in chosen]
    usage = await st.db.read(db.usage(account.id))
    return json_response({"files": files, "directories": directories, "usage": usage})


async def delete_files(request: web.Request) -> web.Response:
    st = state(request)
    body = await json_body(request)
    account = await st.auth.authenticate(request, body)
    options = {**request.query, **body}
    urls = options.get("urls")
    if urls is not None:
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise RequestError("urls", "urls must be a list of absolute URLs")
        wanted = sorted({u.split("?", 1)[0] for u in urls})[:10_000]
        chosen = await st.db.read(db.list_files(account.id, urls=wanted)) if wanted else []
    else:
        path = request.match_info.get("path", "").strip("/")
        key = path.split("/", 1)[0] if path else None
        rows = await st.db.read(db.list_files(account.id, task_key=key))
        chosen = [r for r in rows if _in_path(r, path)]
        if "from" in options:
            since = _date("from", options["from"])
            chosen = [r for r in chosen if r["created_at"] >= since]
        if "to" in options:
            until = _date("to", options["to"])
            chosen = [r for r in chosen if r["created_at"] <= until]
        if "max_age" in options:
            try:
                days = float(options["max_age"])
            except (TypeError, ValueError):
                raise RequestError("max_age", "max_age must be a number of days") from None
            cutoff = time.time() - days * 86400
            chosen = [r for r in chosen if r["created_at"] < cutoff]
    if truthy(options.get("dry_run", False)):
        freed = sum(r["size"] for r in chosen)
        usage = await st.db.read(db.usage(account.id))
        return json_response({"deleted": [_name(r) for r in chosen], "freed": freed,
                      "usage": usage - freed})
    freed = await remove_files(st, chosen)
    usage = await st.db.read(db.usage(account.id))
    return json_response({"deleted": [_name(r) for r in chosen], "freed": freed, "usage": usage})


async def remove_files(st, rows) -> int:
    """Forget ``rows`` in the database, then delete their bytes; returns bytes freed."""
    if not rows:
        return 0
    freed = await st.db.write(db.delete_files([r["id"] for r in rows]))
    for r in rows:
        await st.stores.backend.delete(r["location"])
    return freed


async def expiration(request: web.Request) -> web.Response:
    st = state(request)
    body = await json_body(request)
    account = await st.auth.authenticate(request, body)
    if request.method == "POST":
        days = body.get("days", request.query.get("days"))
        try:
            days = int(days)
        except (TypeError, ValueError):
            raise RequestError("days", "days must be a whole number (0: never delete)") from None
        if not 0 <= days <= MAX_EXPIRATION_DAYS:
            raise RequestError("days", f"days must be 0 to {MAX_EXPIRATION_DAYS} (0: never)")
        await st.db.write(db.set_expiration(account.id, days))
        st.auth.forget(account)
        return json_response(days)
    row = await st.db.read(db.account_by_id(account.id))
    return json_response(row["expiration_days"])
