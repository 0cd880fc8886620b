"""Requests the engine refuses: the domain errors it raises, and the HTTP answers
``dragon.handlers.errors`` makes of them (the same bytes the API has always answered)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from dragon.engine.auth import Authenticator, Credentials, digest
from dragon.errors import (
    CursorGone,
    LowDisk,
    NoSuchPath,
    Overloaded,
    RateLimited,
    Refused,
    SecretRequired,
    TooManyActive,
    Unauthorized,
)
from dragon.handlers import errors as error_answers
from dragon.handlers.credentials import credentials_of
from dragon.web import frame


def body(location: str, name: str, description: str) -> bytes:
    return orjson.dumps(
        {
            "status": "error",
            "errors": [{"name": name, "location": location, "description": description}],
        }
    )


async def answer(exc: Exception) -> web.Response:
    async def handler(request: web.Request) -> web.Response:
        raise exc

    framed = frame.framed(handler, "/v2/create", error_answers.answer_cors_headers("/v2/create"))
    response = await framed(make_mocked_request("POST", "/v2/create"))
    assert isinstance(response, web.Response)
    return response


@pytest.mark.parametrize(
    ("exc", "status", "location", "name", "headers"),
    [
        (Unauthorized("invalid api key", "body"), 401, "body", "authorization",
         {"WWW-Authenticate": "Secret"}),
        (Unauthorized("credentials are missing"), 401, "header", "authorization",
         {"WWW-Authenticate": "Secret"}),
        (SecretRequired("deleting files needs the secret key", "querystring"), 403,
         "querystring", "authorization", {}),
        (TooManyActive("account limit reached"), 401, "body", "tasks", {"Retry-After": "10"}),
        (RateLimited("too many creates; retry in 1.2 s", 1.2), 429, "body", "tasks",
         {"Retry-After": "2"}),
        (Overloaded("the task queue is full; retry later"), 503, "body", "tasks",
         {"Retry-After": "5"}),
        (LowDisk("the disk is low; nothing was created, retry later"), 503, "server", "disk",
         {"Retry-After": "60"}),
        (NoSuchPath("no file or directory 'x/y'"), 404, "path", "url", {}),
        (CursorGone("events before 12 were deleted"), 410, "querystring", "after", {}),
    ],
)  # fmt: skip
async def test_each_refusal_has_its_answer(
    exc: Refused, status: int, location: str, name: str, headers: dict[str, str]
) -> None:
    response = await answer(exc)
    assert response.status == status
    assert response.body == body(location, name, exc.description)
    for header, value in headers.items():
        assert response.headers[header] == value
    assert ("WWW-Authenticate" in response.headers) == ("WWW-Authenticate" in headers)
    assert ("Retry-After" in response.headers) == ("Retry-After" in headers)
    assert response.headers["Access-Control-Allow-Origin"] == "*"


class Accounts:
    """The two look-ups the authenticator makes, over one account."""

    row = {
        "id": 7,
        "name": "site",
        "max_active": 0,
        "webhook_secret": "",
        "referrers": b'["*.example.com"]',
        "create_rate": None,
        "secret_hash": digest("SECRET"),
    }

    async def account_by_secret_hash(self, secret_hash: bytes) -> dict[str, Any] | None:
        return self.row if secret_hash == self.row["secret_hash"] else None

    async def account_by_api_key(self, api_key: str) -> dict[str, Any] | None:
        return self.row if api_key == "KEY" else None


@pytest.fixture
def auth() -> Authenticator:
    return Authenticator(Accounts())  # type: ignore[arg-type]


async def refusal(auth: Authenticator, credentials: Credentials, **kwargs: Any) -> Refused:
    with pytest.raises(Refused) as caught:
        await auth.authenticate(credentials, **kwargs)
    return caught.value


async def test_the_authenticator_says_what_was_wrong_and_where(auth: Authenticator) -> None:
    assert (await auth.authenticate(Credentials(secret="SECRET"))).id == 7
    missing = await refusal(auth, Credentials())
    assert isinstance(missing, Unauthorized) and missing.source is None
    bad = await refusal(auth, Credentials(secret="NOPE", secret_at="body"))
    assert isinstance(bad, Unauthorized) and bad.source == "body"
    assert bad.description == "invalid secret key"
    bad_key = await refusal(auth, Credentials(api_key="NOPE", api_key_at="querystring"))
    assert isinstance(bad_key, Unauthorized) and bad_key.source == "querystring"


async def test_an_api_key_needs_an_allowed_referrer_and_no_secret_only_action(
    auth: Authenticator,
) -> None:
    key = Credentials(api_key="KEY", api_key_at="body", referrer="https://app.example.com/")
    assert (await auth.authenticate(key)).id == 7
    secret_only = await refusal(auth, key, secret_only="deleting files")
    assert isinstance(secret_only, SecretRequired) and secret_only.source == "body"
    assert secret_only.description == (
        "deleting files needs the secret key; an api key is public in web pages and cannot"
    )
    elsewhere = Credentials(api_key="KEY", referrer="https://evil.test/")
    refused = await refusal(auth, elsewhere)
    assert isinstance(refused, Unauthorized)
    assert refused.description == "referrer 'https://evil.test/' is not in this account's whitelist"
    nowhere = await refusal(auth, Credentials(api_key="KEY"))
    assert nowhere.description == "api key authentication needs a Referer header"


def test_a_request_presents_its_credentials_and_its_site() -> None:
    request = make_mocked_request(
        "GET",
        "/v2/status?api_key=Q",
        headers={"Referer": "https://b.example.com/page", "Origin": "https://a.example.com"},
    )
    assert credentials_of(request, {"secret": "S"}) == Credentials(
        secret="S",
        api_key="Q",
        secret_at="body",
        api_key_at="querystring",
        referrer="https://a.example.com",  # the Origin wins over the Referer
    )
    plain = make_mocked_request("GET", "/v2/status", headers={"Authorization": "Secret X"})
    assert credentials_of(plain) == Credentials(secret="X")
