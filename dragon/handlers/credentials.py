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


def from_header(header: str) -> tuple[str | None, str | None]:
    """``(secret, api_key)`` of an Authorization header: ``Secret S``, ``Api-Key K`` (or
    ``ApiKey``, ``api_key``), or a bare secret with no scheme, seen in the wild
    (docs/compat.md)."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if not value:
        return (scheme or None), None
    if scheme.lower() == "secret":
        return value, None
    if scheme.lower() in ("api-key", "apikey", "api_key"):
        return None, value
    return None, None


def located_credentials(
    headers: Mapping[str, str], query: Mapping[str, str], body: object
) -> tuple[tuple[str | None, str], tuple[str | None, str]]:
    """``((secret, where), (api_key, where))``: each credential with the place it came from,
    ``header``, ``body`` or ``querystring`` (the ``location`` a 401 names). The header wins,
    then the body, then the query string."""
    secret, api_key = from_header(headers.get("Authorization", ""))
    fields = body if isinstance(body, dict) else {}
    return (
        _first(secret, fields.get("secret"), query, "secret"),
        _first(api_key, fields.get("api_key"), query, "api_key"),
    )


def _first(
    header: str | None, body: object, query: Mapping[str, str], name: str
) -> tuple[str | None, str]:
    """The credential from the first place that has one, and that place (``header`` when
    none has); the query string is read only when neither the header nor the body has it."""
    if header is not None:
        return header, "header"
    if isinstance(body, str):
        return body, "body"
    from_query = query.get(name)
    if from_query:
        return from_query, "querystring"
    return None, "header"


# Whether the request authenticates with the api key (no secret): the api key is public in
# web pages, so what it opens is shared apart from what the secret opens (AccountStreams).
BY_API_KEY = web.RequestKey("by_api_key", bool)


def credentials_of(request: web.Request, body: dict[str, Any] | None = None) -> Credentials:
    """What ``request`` (with its parsed JSON ``body``) presents, for the engine's
    ``Authenticator``; the site it comes from is its Origin, else its Referer."""
    (secret, secret_at), (api_key, api_key_at) = located_credentials(
        request.headers, request.query, body
    )
    request[BY_API_KEY] = secret is None  # the secret wins when both are given
    return Credentials(
        secret=secret,
        api_key=api_key,
        secret_at=secret_at,
        api_key_at=api_key_at,
        referrer=request.headers.get("Origin") or request.headers.get("Referer"),
    )
