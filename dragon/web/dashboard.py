"""``/dashboard``: a live page of the account's tasks, served by dragon itself.

Three static files shipped in the package (``dragon/web/dashboard/``): no build step, no
CDN. The page signs in with an account secret (sessionStorage, or a ``#secret=`` link)
and follows the event feed; see docs/api.md. The Content-Security-Policy allows scripts
and styles from the server only; previews may load from wherever outputs are stored.
"""

from __future__ import annotations

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


def _read(name: str) -> bytes:
    return resources.files("dragon.web").joinpath("dashboard", name).read_bytes()


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
    return web.Response(
        body=_read(name),
        headers={
            "Content-Type": f"{FILES[name]}; charset=utf-8",
            "Cache-Control": "no-cache",
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def setup(router: web.UrlDispatcher) -> None:
    router.add_get("/dashboard", serve)
    router.add_get("/dashboard/{name}", serve)
