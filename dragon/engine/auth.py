"""Who is calling: secret key, or api key + referrer (docs/api.md, docs/compat.md).

Secrets are never stored: accounts keep SHA-256 digests, and a presented secret is found by
its digest, so no comparison ever runs over the secret itself and its length leaks nothing.
Any malformed credential (non-ASCII included) is simply not found (``Unauthorized``),
never an internal error. Finding the credentials in a request is the handlers' part
(``dragon.handlers.credentials``); the engine receives them as ``Credentials``.
The api key is public by design (it ships in web pages); it only works from the referrers
the account lists, which a browser enforces and anyone else can forge (docs/security.md).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import hmac
import ipaddress
import re
import secrets
import string
import time
from typing import NamedTuple
from urllib.parse import urlsplit

import orjson

from dragon.database.interface import Database, Row
from dragon.errors import SecretRequired, Unauthorized

CACHE_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class Account:
    id: int
    name: str
    max_active: int
    webhook_secret: str
    referrers: tuple[str, ...]
    create_rate: float | None = None  # tasks per second; None: the server's default


def new_secret() -> str:
    """26 characters of upper-case base32 from 16 random bytes (docs/compat.md)."""
    return base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=")


def new_api_key() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(13))


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def account_from_row(row: Row) -> Account:
    return Account(
        row["id"],
        row["name"],
        row["max_active"],
        row["webhook_secret"],
        tuple(orjson.loads(row["referrers"])),
        row["create_rate"],
    )


# A host as browsers send it in Origin and Referer: DNS labels (IDNA already applied) or an
# IP literal. Anything else (``\``, ``%2F``, spaces, brackets around a name) is refused
# rather than interpreted, since another parser may read it as a different host.
HOST_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*")
# An IPv6 literal's netloc: the brackets, then at most a port.
BRACKETED = re.compile(r"\[[0-9a-f:.]+\](?::[0-9]*)?")
WEB_SCHEMES = ("http", "https")


def _origin(referrer: str) -> tuple[str, str, int | None] | None:
    """``(scheme, host, port)`` of a referrer, or None if it is not a plain web origin."""
    try:
        parts = urlsplit(referrer.strip().lower())
        host, port = parts.hostname, parts.port
    except ValueError:  # bad port, or a bracketed host that is not an IPv6 address
        return None
    if not parts.scheme or not host or "@" in parts.netloc:
        return None
    if "[" in parts.netloc and not BRACKETED.fullmatch(parts.netloc):
        return None  # text after the brackets, which urlsplit drops: [::1].evil.com
    host = host.removesuffix(".")
    if not HOST_NAME.fullmatch(host):
        try:
            host = ipaddress.ip_address(host).compressed
        except ValueError:
            return None
    return parts.scheme, host, port


def referrer_allowed(patterns: tuple[str, ...], referrer: str | None) -> bool:
    """Does the request come from a whitelisted site?

    Only the referrer's scheme and host (with its port) are compared, never its path or
    query, which the referring page controls: ``https://evil.test/x.example.com`` does not
    pass ``*.example.com``. A pattern is a host glob (``*.example.com``, ``app.test:8080``),
    optionally with a scheme (``https://*.example.com/*``; any path in it is ignored). The
    pattern ``*`` admits every referrer, a missing one included.

    The referrer is parsed and its host validated first (``_origin``): one that is not a
    plain host (``evil.com\\.example.com``, ``evil.com%2F.example.com``) matches nothing. A
    pattern without a scheme admits only http and https (not ``javascript://host/``); a
    pattern's scheme is compared exactly.
    """
    if "*" in patterns:
        return True
    if not referrer:
        return False
    origin = _origin(referrer)
    if origin is None:
        return False
    scheme, host, port = origin
    candidates: tuple[str, ...] = ()
    if ":" in host:  # an IPv6 literal: bare (as patterns once named it), then in brackets
        candidates, host = (host,), f"[{host}]"
    candidates += (host,) if port is None else (host, f"{host}:{port}")
    for pattern in patterns:
        pattern = pattern.strip().lower()
        wanted, sep, rest = pattern.partition("://")
        schemes = (wanted,) if sep and wanted != "*" else WEB_SCHEMES
        host_glob = _host_glob((rest if sep else pattern).split("/", 1)[0].removesuffix("."))
        if scheme in schemes and any(host_glob.fullmatch(c) for c in candidates):
            return True
    return False


def _host_glob(glob: str) -> re.Pattern[str]:
    """A pattern's host (and port) as a regular expression: ``*`` is any run of characters
    and ``?`` any one; everything else is itself.

    Brackets are literal: they enclose an IPv6 address (``http://[::1]:3000``), never a
    character class as in ``fnmatch``, which read that pattern as "one of ``:`` and ``1``"
    and admitted ``http://1:3000/``. The address is compared in its compressed form, as
    the referrer's is.
    """
    if glob.startswith("["):
        inside, _, after = glob[1:].partition("]")
        with contextlib.suppress(ValueError):
            glob = f"[{ipaddress.IPv6Address(inside).compressed}]{after}"
    wild = {"*": ".*", "?": "."}
    return re.compile("".join(wild.get(c) or re.escape(c) for c in glob))


class Credentials(NamedTuple):
    """What a request presents, already located by the caller (``dragon.handlers``).

    ``secret_at`` and ``api_key_at`` label where each was found; the engine does not read
    them, it only hands the label of the credential at fault back in ``Unauthorized`` or
    ``SecretRequired``, so the caller can say where the bad one was. ``referrer`` is the
    site the request says it comes from, which an api key must be allowed from. (A named
    tuple: made on every request, it costs a third of a frozen dataclass.)
    """

    secret: str | None = None
    api_key: str | None = None
    secret_at: str = "header"
    api_key_at: str = "header"
    referrer: str | None = None


class Authenticator:
    def __init__(self, database: Database) -> None:
        self.db = database
        self._cache: dict[tuple[str, str], tuple[float, Account]] = {}

    def _cached(self, kind: str, value: str) -> Account | None:
        """The account of a credential looked up less than ``CACHE_SECONDS`` ago (checked
        before ``_lookup`` is awaited: a poll's credentials are nearly always here)."""
        hit = self._cache.get((kind, value))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    async def _lookup(self, kind: str, value: str) -> Account | None:
        now = time.monotonic()
        if kind == "secret":
            wanted = digest(value)
            row = await self.db.account_by_secret_hash(wanted)
            if row is not None and not hmac.compare_digest(row["secret_hash"], wanted):
                row = None
        else:
            row = await self.db.account_by_api_key(value)
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

    async def authenticate(
        self, credentials: Credentials, secret_only: str | None = None
    ) -> Account:
        """The calling account; ``Unauthorized`` without valid credentials.

        ``secret_only`` names an action the api key may not do (it is public in web pages):
        deleting files, changing their expiration. An api key then raises ``SecretRequired``.
        """
        if credentials.secret:
            secret = credentials.secret
            account = self._cached("secret", secret) or await self._lookup("secret", secret)
            if account is None:
                raise Unauthorized("invalid secret key", credentials.secret_at)
            return account
        if credentials.api_key:
            return await self._by_api_key(credentials, secret_only)
        raise Unauthorized("credentials are missing: pass a secret key or an api key")

    async def _by_api_key(self, credentials: Credentials, secret_only: str | None) -> Account:
        """The account of an api key, used from a referrer it allows, for an action an api
        key may do."""
        assert credentials.api_key is not None
        source = credentials.api_key_at
        key = credentials.api_key
        account = self._cached("api_key", key) or await self._lookup("api_key", key)
        if account is None:
            raise Unauthorized("invalid api key", source)
        if secret_only:
            raise SecretRequired(
                f"{secret_only} needs the secret key; an api key is public in web pages and cannot",
                source,
            )
        referrer = credentials.referrer
        if not referrer_allowed(account.referrers, referrer):
            raise Unauthorized(
                f"referrer {referrer!r} is not in this account's whitelist"
                if referrer
                else "api key authentication needs a Referer header",
                source,
            )
        return account
