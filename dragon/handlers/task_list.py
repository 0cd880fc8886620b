"""``GET /v2/tasks``: an account's tasks, newest first, filtered and paged (docs/api.md);
``GET /v2/tasks/summary``: their counts, as the dashboard's tiles show them.

The cursor is opaque to clients: the place ``(queued_at, seq)`` of the last task of the
page, as base64url JSON. A place, not an offset, so the tasks created while a client pages
(newer than every cursor it holds) never shift the pages that follow, and each task comes
once. The filters are not in it: a client sends the same ones with each page.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from datetime import UTC, datetime

import orjson
from aiohttp import web

from dragon.api.openapi import STRING, documented, errors, json_answer, query, ref
from dragon.api.request import json_response
from dragon.api.state import state
from dragon.api.wire import STATUSES
from dragon.engine.overview import Window, overview
from dragon.errors import RequestError
from dragon.handlers.credentials import credentials_of

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_SEQ = 2**63 - 1


def encode_cursor(place: tuple[float, int]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(place))).decode().rstrip("=")


def decode_cursor(raw: str) -> tuple[float, int]:
    """The place a cursor of ``encode_cursor`` holds; anything else is a 400."""
    try:
        place = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        place = None
    if (
        isinstance(place, list)
        and len(place) == 2
        and isinstance(place[0], int | float)
        and not isinstance(place[0], bool)
        and math.isfinite(place[0])
        and type(place[1]) is int
        and 0 <= place[1] <= MAX_SEQ
    ):
        return float(place[0]), place[1]
    raise RequestError("cursor", "cursor must be the next_cursor of an earlier page", "querystring")


def time_of(name: str, raw: str) -> float:
    """A time as seconds since the epoch, or ISO 8601 (UTC when it names no offset)."""
    try:
        seconds = float(raw)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is None:
            seconds = math.nan
        else:
            seconds = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(seconds):
        raise RequestError(
            name,
            f"{name} must be an ISO 8601 time or seconds since the epoch, not {raw[:40]!r}",
            "querystring",
        )
    return seconds


def statuses_of(request: web.Request) -> list[str]:
    wanted = [
        s.strip()
        for value in request.query.getall("status", [])
        for s in value.split(",")
        if s.strip()
    ]
    for status in wanted:
        if status not in STATUSES:
            raise RequestError(
                "status",
                f"status must be one of {', '.join(STATUSES)}, not {status[:40]!r}",
                "querystring",
            )
    return wanted


def limit_of(request: web.Request) -> int:
    raw = request.query.get("limit", "").strip()
    if not raw:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise RequestError(
            "limit", f"limit must be an integer from 1 to {MAX_LIMIT}", "querystring"
        )
    return limit


def optional_time(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name, "")
    return time_of(name, raw) if raw.strip() else None


PAGE = {
    "type": "object",
    "required": ["tasks", "next_cursor"],
    "properties": {
        "tasks": {"type": "array", "items": ref("Status")},
        "next_cursor": {
            "type": ["string", "null"],
            "description": "give it as cursor (with the same filters) for the next page;"
            " null on the last page",
        },
    },
}
TIME = {"type": "string", "description": "ISO 8601, or seconds since the epoch"}


@documented(
    {
        "summary": "The account's tasks, newest first, filtered and paged",
        "operationId": "v2_tasks",
        "tags": ["v2"],
        "parameters": [
            query(
                "status",
                {"type": "array", "items": {"type": "string", "enum": list(STATUSES)}},
                "only tasks in these statuses (repeated, or comma-separated)",
                style="form",
                explode=True,
            ),
            query("task_name", STRING, "only tasks of this task name"),
            query("created_after", TIME, "only tasks created at or after this time"),
            query("created_before", TIME, "only tasks created before this time"),
            query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                "the most tasks in the page",
            ),
            query("cursor", STRING, "the next_cursor of the previous page"),
        ],
        "responses": {
            "200": json_answer(PAGE, "status documents with task_name, newest first"),
            **errors(400, 401, 503),
        },
    }
)
async def list_tasks(request: web.Request) -> web.StreamResponse:
    account = await state(request).auth.authenticate(credentials_of(request, {}))
    raw_cursor = request.query.get("cursor", "").strip()
    task_name = request.query.get("task_name", "").strip()
    docs, place = await state(request).service.list_tasks(
        account,
        statuses=statuses_of(request),
        task_name=task_name or None,
        after=optional_time(request, "created_after"),
        before=optional_time(request, "created_before"),
        cursor=decode_cursor(raw_cursor) if raw_cursor else None,
        limit=limit_of(request),
    )
    return json_response(
        {"tasks": docs, "next_cursor": None if place is None else encode_cursor(place)}
    )


WINDOW = (60, 7 * 86400, 3600)  # the timeline's span in seconds: least, most, default
BUCKETS = (1, 240, 60)  # its slots: least, most, default
COUNT = {"type": "integer", "minimum": 0}
SECONDS = {"type": ["number", "null"], "minimum": 0}
COUNTS = {
    "type": "object",
    "required": list(STATUSES),
    "properties": {status: COUNT for status in STATUSES},
    "description": "tasks by status, as their documents show it",
}
SUMMARY = {
    "type": "object",
    "required": ["counts", "total", "error_codes", "timeline", "lanes"],
    "properties": {
        "counts": COUNTS,
        "total": COUNT,
        "error_codes": {
            "type": "object",
            "additionalProperties": COUNT,
            "description": "tasks in error by error_code, the most frequent first",
        },
        "timeline": {
            "type": "object",
            "required": ["start", "end", "bucket_seconds", "slots"],
            "properties": {
                "start": {"type": "string", "format": "date-time"},
                "end": {"type": "string", "format": "date-time"},
                "bucket_seconds": {"type": "number"},
                "slots": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["start", "success", "error", "mean_seconds", "max_seconds"],
                        "properties": {
                            "start": {"type": "string", "format": "date-time"},
                            "success": COUNT,
                            "error": COUNT,
                            "mean_seconds": SECONDS,
                            "max_seconds": SECONDS,
                        },
                    },
                },
            },
            "description": "the tasks that ended in the window, slot by slot (oldest"
            " first): how many in each status, and the mean and longest run time of those"
            " that ran",
        },
        "lanes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["lane", "queued", "running", "slots"],
                "properties": {
                    "lane": {"type": "string", "enum": ["light", "interactive", "batch"]},
                    "queued": COUNT,
                    "running": COUNT,
                    "slots": COUNT,
                },
            },
            "description": "this node's lanes (every account's tasks): tasks waiting,"
            " slots busy, slots in all",
        },
    },
}


def bounded(request: web.Request, name: str, bounds: tuple[int, int, int]) -> int:
    """An integer query parameter from ``bounds[0]`` to ``bounds[1]`` (``bounds[2]`` when
    absent); anything else is a 400."""
    least, most, default = bounds
    raw = request.query.get(name, "").strip()
    if not raw:
        return default
    try:
        number = int(raw)
    except ValueError:
        number = least - 1
    if not least <= number <= most:
        raise RequestError(name, f"{name} must be an integer from {least} to {most}", "querystring")
    return number


@documented(
    {
        "summary": "Counts of the account's tasks by status and error code, and a timeline",
        "description": "What the dashboard's tiles show: the counts are those GET /v2/tasks"
        " pages through with the same filters.",
        "operationId": "v2_tasks_summary",
        "tags": ["v2"],
        "parameters": [
            query("task_name", STRING, "only tasks of this task name"),
            query("created_after", TIME, "count only tasks created at or after this time"),
            query("created_before", TIME, "count only tasks created before this time"),
            query(
                "window",
                {
                    "type": "integer",
                    "minimum": WINDOW[0],
                    "maximum": WINDOW[1],
                    "default": WINDOW[2],
                },
                "the timeline's span, in seconds up to now",
            ),
            query(
                "buckets",
                {
                    "type": "integer",
                    "minimum": BUCKETS[0],
                    "maximum": BUCKETS[1],
                    "default": BUCKETS[2],
                },
                "the timeline's slots",
            ),
        ],
        "responses": {
            "200": json_answer(SUMMARY, "counts, errors by code, timeline and lanes"),
            **errors(400, 401, 503),
        },
    }
)
async def summary(request: web.Request) -> web.StreamResponse:
    st = state(request)
    account = await st.auth.authenticate(credentials_of(request, {}))
    task_name = request.query.get("task_name", "").strip()
    seconds, buckets = bounded(request, "window", WINDOW), bounded(request, "buckets", BUCKETS)
    # Slots on multiples of their length (the last one reaching past now): a page that
    # asks again sees the same slots, grown, not shifted.
    step = seconds / buckets
    window = Window(float(seconds), buckets, math.ceil(time.time() / step) * step)
    return json_response(
        await overview(
            st.db,
            st.scheduler,
            account.id,
            task_name=task_name or None,
            after=optional_time(request, "created_after"),
            before=optional_time(request, "created_before"),
            window=window,
        )
    )
