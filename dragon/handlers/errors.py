"""The one place where failures become HTTP answers, plus CORS on every API answer.

Request-level problems use the seed's shape (Cornice's):
``{"status": "error", "errors": [{"name", "location", "description"}]}``.
"""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from dragon.backends.sqlite import Busy
from dragon.engine.service import AccountLimit, Overloaded
from dragon.errors import RequestError

log = logging.getLogger("dragon.http")

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "86400",
}


def error_response(status: int, name: str, description: str, location: str = "body",
                   headers: dict | None = None) -> web.Response:
    body = {"status": "error",
            "errors": [{"name": name, "location": location, "description": description}]}
    return web.Response(body=orjson.dumps(body), status=status,
                        content_type="application/json", headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    if request.method == "OPTIONS":
        return web.Response(status=204, headers=CORS_HEADERS)
    try:
        response = await handler(request)
    except RequestError as exc:
        headers = {"WWW-Authenticate": "Secret"} if exc.status == 401 else {}
        response = error_response(exc.status, exc.name, exc.description, exc.location,
                                  {**headers, **exc.headers})
    except AccountLimit as exc:
        response = error_response(401, "tasks", str(exc), headers={"Retry-After": "10"})
    except Overloaded as exc:
        response = error_response(503, "tasks", str(exc), headers={"Retry-After": "5"})
    except Busy:
        response = error_response(503, "database", "the database is busy; retry shortly",
                                  headers={"Retry-After": "1"})
    except web.HTTPRequestEntityTooLarge as exc:
        response = error_response(413, "body", exc.text or "request body is too large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, "url", exc.reason, "path")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = error_response(500, "server", "internal server error", "server")
    if not response.prepared:
        response.headers.update(CORS_HEADERS)
    return response
