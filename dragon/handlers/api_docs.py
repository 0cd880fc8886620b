"""``GET /openapi.json`` and ``GET /docs``: the API description, and Swagger UI to read it.

Swagger UI's scripts and styles come from the ``swagger-ui-bundle-v2`` package and are served
by this server under ``/docs/``, so the page works on a machine with no internet access.
The document is built once per application, on first request (the task registry is only
known once the server has started).
"""

from __future__ import annotations

from pathlib import Path

import orjson
from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from dragon.api.openapi import (
    PUBLIC,
    document,
    documented,
    errors,
    file_answer,
    json_answer,
    path_parameter,
    served_routes,
)
from dragon.api.state import state

ASSETS = Path(str(swagger_ui_path))
# Only these files are served: the page needs nothing else from the bundle.
ASSET_TYPES = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
DOCUMENT = web.AppKey("openapi_document", dict[str, bytes])

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>dragon API</title>
  <link rel="stylesheet" href="docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script src="docs/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
    });
  </script>
</body>
</html>
"""


def setup(app: web.Application) -> None:
    """Give ``app`` the place where its document is kept once built."""
    app[DOCUMENT] = {}


@documented(
    {
        "summary": "This document",
        "operationId": "openapi",
        "tags": ["server"],
        "security": PUBLIC,
        "responses": {"200": json_answer({"type": "object"})},
    }
)
async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this server."""
    cache = request.app[DOCUMENT]
    if "body" not in cache:
        st = state(request)
        cache["body"] = orjson.dumps(
            document(
                st.registry, served_routes(request.app.router), st.settings.max_tasks_per_request
            )
        )
    return web.Response(
        body=cache["body"],
        content_type="application/json",
        headers={"Access-Control-Allow-Origin": "*"},
    )


@documented(
    {
        "summary": "This document in Swagger UI (works offline)",
        "operationId": "docs",
        "tags": ["server"],
        "security": PUBLIC,
        "responses": {"200": file_answer("text/html", "an HTML page")},
    }
)
async def docs_page(request: web.Request) -> web.Response:
    """Swagger UI over /openapi.json."""
    return web.Response(text=PAGE, content_type="text/html")


@documented(
    {
        "summary": "The /docs page, with a trailing slash: redirected to /docs",
        "operationId": "docs_slash",
        "tags": ["server"],
        "security": PUBLIC,
        "responses": {
            "301": {
                "description": "to /docs, whose relative links find its assets",
                "headers": {"Location": {"schema": {"type": "string"}}},
            }
        },
    }
)
async def docs_slash(request: web.Request) -> web.Response:
    """``/docs/`` is where many readers type the page; its links are relative to ``/docs``.

    The redirect is relative too (``../docs``), so it lands right behind a proxy that serves
    the API under a path prefix.
    """
    location = "../docs" + (f"?{request.query_string}" if request.query_string else "")
    raise web.HTTPMovedPermanently(location)


@documented(
    {
        "summary": "The scripts and styles of the /docs page",
        "operationId": "docs_asset",
        "tags": ["server"],
        "security": PUBLIC,
        "parameters": [path_parameter("asset")],
        "responses": {"200": file_answer("*/*"), **errors(404)},
    }
)
async def docs_asset(request: web.Request) -> web.StreamResponse:
    """A script, style or icon of the /docs page."""
    name = request.match_info["asset"]
    content_type = ASSET_TYPES.get(name)
    if content_type is None:
        raise web.HTTPNotFound(reason=f"no such file {name[:100]!r}")
    return web.FileResponse(
        ASSETS / name,
        headers={"Content-Type": content_type, "Cache-Control": "public, max-age=86400"},
    )
