"""Who is calling: secret key, or api key + referrer (seed 1.2, COMPAT.md 5.2).

Secrets are never stored: accounts keep SHA-256 digests, and a presented secret is found by
its digest, so no comparison ever runs over the secret itself and its length leaks nothing.
Any malformed credential (non-ASCII included) is simply not found: 401, never 500.
The api key is public by design (it ships in web pages); it only works from the referrers
the account lists, which a browser enforces and anyone else can forge, as the seed warns.
"""

from __future__ import annotations

import base64
import dataclasses
import fnmatch
import hashlib
import hmac
import secrets
import string
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

from dragon import db
from dragon.errors import RequestError

CACHE_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class Account:
    id: int
    name: str
    max_active: int
    webhook_secret: str
    referrers: tuple[str, ...]
    expiration_days: int


def new_secret() -> str:
    return base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=")


def new_api_key() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(13))


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def account_from_row(row: Any) -> Account:
    return Account(row["id"], row["name"], row["max_active"], row["webhook_secret"],
                   tuple(orjson.loads(row["referrers"])), row["expiration_days"])


def referrer_allowed(patterns: tuple[str, ...], referrer: str | None) -> bool:
    """Glob patterns match the whole Referer/Origin or its host; ``*`` admits a missing one."""
    if "*" in patterns:
        return True
    if not referrer:
        return False
    referrer = referrer.lower()
    host = urlsplit(referrer).hostname or referrer
    return any(fnmatch.fnmatchcase(referrer, p.lower()) or fnmatch.fnmatchcase(host, p.lower())
               for p in patterns)


def credentials(headers: Any, query: Any, body: Any) -> tuple[str | None, str | None]:
    """The (secret, api_key) a request presents, from the header, body or query string."""
    secret = api_key = None
    header = headers.get("Authorization", "")
    if header:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "secret" and value:
            secret = value
        elif scheme.lower() in ("api-key", "apikey", "api_key") and value:
            api_key = value
        elif not value:
            secret = scheme  # a bare secret with no scheme, seen in the wild (COMPAT.md 5.2)
    if isinstance(body, dict):
        if secret is None and isinstance(body.get("secret"), str):
            secret = body["secret"]
        if api_key is None and isinstance(body.get("api_key"), str):
            api_key = body["api_key"]
    if secret is None and query.get("secret"):
        secret = query.get("secret")
    if api_key is None and query.get("api_key"):
        api_key = query.get("api_key")
    return secret, api_key


def unauthorized(description: str, location: str = "header") -> RequestError:
    return RequestError("authorization", description, location, status=401)


class Authenticator:
    def __init__(self, database: db.Database) -> None:
        self.db = database
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}

    async def _lookup(self, kind: str, value: str) -> Any:
        now = time.monotonic()
        hit = self._cache.get((kind, value))
        if hit and hit[0] > now:
            return hit[1]
        if kind == "secret":
            wanted = digest(value)
            row = self.db.lookup(db.account_by_secret_hash(wanted))
            if row is not None and not hmac.compare_digest(row["secret_hash"], wanted):
                row = None
        else:
            row = self.db.lookup(db.account_by_api_key(value))
        if row is None:
            return None
        account = account_from_row(row)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[(kind, value)] = (now + CACHE_SECONDS, account)
        return account

    def forget(self, account: Account) -> None:
        """Drop cached lookups of ``account`` after its settings changed."""
        self._cache = {k: v for k, v in self._cache.items() if v[1].id != account.id}

    async def authenticate(self, request: Any, body: Any = None) -> Account:
        secret, api_key = credentials(request.headers, request.query, body)
        if secret:
            account = await self._lookup("secret", secret)
            if account is None:
                raise unauthorized("invalid secret key")
            return account
        if api_key:
            account = await self._lookup("api_key", api_key)
            if account is None:
                raise unauthorized("invalid api key")
            referrer = request.headers.get("Referer") or request.headers.get("Origin")
            if not referrer_allowed(account.referrers, referrer):
                raise unauthorized(
                    f"referrer {referrer!r} is not in this account's whitelist"
                    if referrer else "api key authentication needs a Referer header")
            return account
        raise unauthorized("credentials are missing: pass a secret key or an api key")
