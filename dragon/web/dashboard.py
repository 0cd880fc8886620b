"""``/dashboard``: a live page of the account's tasks, served by dragon itself.

Three static files shipped in the package (``dragon/web/dashboard/``): no build step, no
CDN. The page signs in with an account secret (sessionStorage, or a ``#secret=`` link)
and follows the event feed; see docs/api.md. The Content-Security-Policy allows scripts
and styles from the server only; previews may load from wherever outputs are stored.

The page carries the names of the server's tasks (``<body data-tasks>``), taken from the
task registry as it is served, so its task filter and the create form's suggestions list
every task this server runs, plugins included, with nothing to keep by hand.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from importlib import resources

from aiohttp import web

from dragon.api.openapi import (
    PUBLIC,
    Endpoint,
    Operation,
    documented,
    errors,
    file_answer,
    path_parameter,
)
from dragon.api.state import state
from dragon.web.frame import Routes

FILES = {
    "index.html": "text/html",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self';"
    " img-src 'self' http: https: data:; media-src 'self' http: https:;"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


# What index.html ships with, replaced by the server's task names when the page is served.
NO_TASKS = 'data-tasks="[]"'


def _read(name: str) -> bytes:
    return resources.files("dragon.web").joinpath("dashboard", name).read_bytes()


def index_page(task_names: Iterable[str]) -> bytes:
    """index.html naming ``task_names`` (sorted) in its ``<body data-tasks>`` attribute."""
    page = _read("index.html").decode()
    names = html.escape(json.dumps(sorted(task_names)), quote=True)
    return page.replace(NO_TASKS, f'data-tasks="{names}"', 1).encode()


def _describe(endpoint: Endpoint) -> Operation:
    """``/dashboard`` is the page; ``/dashboard/{name}`` any of its three files."""
    if not endpoint.has("name"):
        return {
            "summary": "A live page of the account's tasks (signs in with a secret)",
            "operationId": "dashboard",
            "tags": ["server"],
            "security": PUBLIC,
            "responses": {"200": file_answer("text/html", "the page")},
        }
    return {
        "summary": "The dashboard's page, script and style",
        "operationId": "dashboard_file",
        "tags": ["server"],
        "security": PUBLIC,
        "parameters": [path_parameter("name")],
        "responses": {"200": file_answer("*/*"), **errors(404)},
    }


@documented(_describe)
async def serve(request: web.Request) -> web.Response:
    name = request.match_info.get("name", "index.html")
    if name not in FILES:
        raise web.HTTPNotFound()
    body = index_page(state(request).registry) if name == "index.html" else _read(name)
    return web.Response(
        body=body,
        headers={
            "Content-Type": f"{FILES[name]}; charset=utf-8",
            "Cache-Control": "no-cache",
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def setup(routes: Routes) -> None:
    routes.get("/dashboard", serve)
    routes.get("/dashboard/{name}", serve)
