"""``/v2/templates``: store, list, read and delete an account's video.create templates.

The work is done by ``dragon.engine.templates``; these handlers parse the request and shape
the answer. Storing and deleting take the secret key (an api key is public in web pages);
reading takes either.
"""

from __future__ import annotations

from aiohttp import web

from dragon.api.openapi import (
    Endpoint,
    Operation,
    documented,
    errors,
    json_answer,
    path_parameter,
    ref,
)
from dragon.api.request import json_body, json_response
from dragon.api.state import state
from dragon.handlers.credentials import credentials_of

NAME = path_parameter("name", "the template's name")


@documented(
    {
        "summary": "Store a video.create template (replacing one of the same name)",
        "tags": ["templates"],
        "operationId": "templates_put",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ref("PutTemplate")}},
        },
        "responses": {"200": json_answer(ref("Template")), **errors(400, 401, 403, 408, 413, 503)},
    }
)
async def put_template(request: web.Request) -> web.Response:
    st = state(request)
    body = await json_body(request)
    account = await st.auth.authenticate(
        credentials_of(request, body), secret_only="storing a template"
    )
    return json_response(
        await st.service.templates.put(account, body.get("name"), body.get("definition"))
    )


@documented(
    {
        "summary": "List the account's templates",
        "tags": ["templates"],
        "operationId": "templates_list",
        "responses": {"200": json_answer(ref("Templates")), **errors(400, 401, 503)},
    }
)
async def list_templates(request: web.Request) -> web.Response:
    st = state(request)
    account = await st.auth.authenticate(credentials_of(request))
    return json_response({"templates": await st.service.templates.listing(account)})


def _describe_one(endpoint: Endpoint) -> Operation:
    """GET reads the template; DELETE deletes it, with the secret key only."""
    if endpoint.method == "delete":
        return {
            "summary": "Delete a template (tasks created from it keep their definition)",
            "tags": ["templates"],
            "operationId": "templates_delete",
            "parameters": [NAME],
            "responses": {
                "200": json_answer({"type": "object"}, "deleted"),
                **errors(400, 401, 403, 404, 503),
            },
        }
    return {
        "summary": "Read a template",
        "tags": ["templates"],
        "operationId": "templates_get",
        "parameters": [NAME],
        "responses": {"200": json_answer(ref("Template")), **errors(400, 401, 404, 503)},
    }


@documented(_describe_one)
async def template(request: web.Request) -> web.Response:
    st = state(request)
    name = request.match_info["name"]
    if request.method == "DELETE":
        account = await st.auth.authenticate(
            credentials_of(request), secret_only="deleting a template"
        )
        await st.service.templates.delete(account, name)
        return json_response({"deleted": name})
    account = await st.auth.authenticate(credentials_of(request))
    return json_response(await st.service.templates.get(account, name))
