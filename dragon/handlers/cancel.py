"""``POST /v2/cancel`` (and ``/v1/cancel``): stop tasks, answer their statuses (docs/api.md).

The body names the keys as a status request does (``tasks``: a list, or one key) with the
same credentials: the secret, or the api key from an allowed referrer. Queued tasks end at
once and executing ones are stopped, wherever they run; every task ends ``error`` with
``error_code: "cancelled"``. The answer is the list of statuses after the cancel, in the
request's order, exactly as ``status`` answers (unknown keys and other accounts' keys are
``unknown_task``; tasks that had ended are as they were).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from dragon.api.openapi import KEYS, STRING, Endpoint, Operation, documented, errors
from dragon.api.request import json_body, json_response
from dragon.api.state import state
from dragon.handlers.tasks import STATUSES, authenticated, task_keys, version_of

CANCEL_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["tasks"],
                "properties": {
                    "tasks": {"oneOf": [STRING, KEYS]},
                    "secret": STRING,
                    "api_key": STRING,
                },
            }
        }
    },
}


def _describe(endpoint: Endpoint) -> Operation:
    v = endpoint.version
    summary = "Cancel tasks: queued ones end at once, executing ones are stopped"
    if v == "v1":
        summary += " (v1 statuses: error details under result)"
    return {
        "summary": summary,
        "operationId": f"{v}_cancel",
        "tags": [v],
        "requestBody": CANCEL_BODY,
        "responses": {"200": STATUSES, **errors(400, 401, 408, 413, 503)},
    }


@documented(_describe)
async def cancel(request: web.Request) -> web.StreamResponse:
    body = await json_body(request)
    account = await authenticated(request, body)
    keys = task_keys(request, body, state(request).settings.max_tasks_per_request)
    # Shielded: a client that goes away mid-cancel must not leave a task ended in the
    # database and still running here.
    service = state(request).service
    return json_response(await asyncio.shield(service.cancel(account, keys, version_of(request))))
