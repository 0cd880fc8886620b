"""Where a request carries its credentials: the Authorization header, the body, the query.

The engine authenticates ``Credentials`` and knows nothing of HTTP; this module finds them
in a request, each with the place it came from (``header``, ``body`` or ``querystring``),
which a 401 names as its ``location`` (docs/compat.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from dragon.engine.auth import Credentials


def located_credentials(
    headers: Mapping[str, str], query: Mapping[str, str], body: object
) -> tuple[tuple[str | None, str], tuple[str | None, str]]:
    """``((secret, where), (api_key, where))``: each credential with the place it came from,
    ``header``, ``body`` or ``querystring`` (the ``location`` a 401 names). The header wins,
    then the body, then the query string."""
    secret = api_key = None
    secret_at = api_key_at = "header"
    header = headers.get("Authorization", "")
    if header:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "secret" and value:
            secret = value
        elif scheme.lower() in ("api-key", "apikey", "api_key") and value:
            api_key = value
        elif not value:
            secret = scheme  # a bare secret with no scheme, seen in the wild (docs/compat.md)
    if isinstance(body, dict):
        if secret is None and isinstance(body.get("secret"), str):
            secret, secret_at = body["secret"], "body"
        if api_key is None and isinstance(body.get("api_key"), str):
            api_key, api_key_at = body["api_key"], "body"
    if secret is None and query.get("secret"):
        secret, secret_at = query.get("secret"), "querystring"
    if api_key is None and query.get("api_key"):
        api_key, api_key_at = query.get("api_key"), "querystring"
    return (secret, secret_at), (api_key, api_key_at)


def credentials_of(request: web.Request, body: dict[str, Any] | None = None) -> Credentials:
    """What ``request`` (with its parsed JSON ``body``) presents, for the engine's
    ``Authenticator``; the site it comes from is its Origin, else its Referer."""
    (secret, secret_at), (api_key, api_key_at) = located_credentials(
        request.headers, request.query, body
    )
    return Credentials(
        secret=secret,
        api_key=api_key,
        secret_at=secret_at,
        api_key_at=api_key_at,
        referrer=request.headers.get("Origin") or request.headers.get("Referer"),
    )
