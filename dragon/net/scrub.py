"""Secrets out of every text the server shows: task errors, platform messages, log lines.

Two ways, because neither is enough alone:

- **By value**: a task holds its secrets (tokens, keys, the query of a signed upload URL);
  each is replaced wherever it appears, however the text around it is shaped. A text cut to
  a length is scrubbed whole first, and a cut that leaves the start of a secret at its end
  loses that start too, so a long token never shows half of itself.
- **By shape**: what looks like a credential is masked even when its value is unknown (a
  platform echoing another header, a URL in an error): query parameters whose name, after
  percent-decoding and trimming, holds ``secret``, ``token``, ``key``, ``signature``,
  ``credential``, ... (``&`` and ``;`` split alike), ``name=value`` and ``"name": "value"``
  pairs with such names, ``Authorization`` header values, ``Bearer``/``OAuth``/``Secret``/
  ``Api-Key`` tokens and webhook secrets.

It sits with the network code, low in the layers, so the upload clients, the stores, the
scheduler (every failed task's message) and the log formatter share one definition. Every
pattern has bounded repetitions, so a hostile megabyte of text costs linear time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from urllib.parse import unquote_plus

MASK = "***"
# The shortest secret replaced by value, and the shortest start of one masked at the end of
# a cut text: shorter values (a ``-`` meaning "none") would mask every dash of a message.
PARTIAL = 4

# Normalised parameter names (lower case, letters and digits only) that hold credentials.
SENSITIVE_WORDS = (
    "secret",
    "apikey",
    "token",
    "password",
    "passwd",
    "signature",
    "credential",
    "authorization",
    "accesskey",
    "keypairid",
    "googleaccessid",
    "sig",
    "jwt",
    "hmac",
    "passphrase",
    "session",
)
# Names that hold credentials only when that is the whole name (``auth`` of Firebase and
# many APIs; ``author`` holds none).
SENSITIVE_NAMES = ("auth", "pwd", "pass")
NOT_SENSITIVE = ("taskkey",)  # a task's key names the task, it grants nothing

# A query parameter in free text: preceded by ?, & or ;.
_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;?#\s\"'<>]{1,200})=(?P<value>[^&;#\s\"'<>]*)")
# ``name=value`` or ``"name": "value"`` elsewhere (a form body or JSON echoed back); a bare
# ``name: value`` is prose ("refused the credentials: Invalid Credentials"), not a pair.
_PAIR = re.compile(
    r"(?P<name>[A-Za-z0-9_.\-]{1,100})(?P<sep>=[\"']?|[\"']\s{0,10}[:=]\s{0,10}[\"']?)"
    r"(?P<value>[^\s\"'&;,<>}\]]{1,10000})"
)
_AUTH_HEADER = re.compile(
    r"(?i)(authorization\s{0,10}['\"]?\s{0,10}[:=,]\s{0,10}['\"]?)[^\r\n'\"]*"
)
_TOKEN = re.compile(
    r"(?i)\b(secret|api[-_]?key|bearer|oauth)(\s{0,10}[:=]?\s{1,10}|%20|\+)"
    r"([A-Za-z0-9+/=_\-.~]{8,10000})"
)
_WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")
# The ``user:password@`` of a URL (refused at create time, but echoed in its refusal).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,30}://)[^/\s?#@\"'<>]{1,1000}@")
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]{0,30}://\S*")
_TOKEN_WORDS = ("secret", "api", "bearer", "oauth")  # what _TOKEN needs, in lower case


def normalised_name(name: str) -> str:
    """A parameter name as a server might read it: decoded (twice at most), letters only."""
    for _ in range(2):
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    return re.sub(r"[^a-z0-9]", "", name.lower())


def sensitive(name: str) -> bool:
    """Does a parameter of this name hold a credential (``developer_key``, ``X-Amz-Signature``)?"""
    norm = normalised_name(name)
    if norm in NOT_SENSITIVE:
        return False
    return (
        any(word in norm for word in SENSITIVE_WORDS)
        or norm.endswith("key")
        or norm in SENSITIVE_NAMES
    )


def redact_query(query: str) -> str:
    """A raw query string with every credential's value masked (``&`` and ``;`` split)."""
    if not query:
        return query
    out = []
    for part in re.split(r"([&;])", query):
        if part in ("&", ";"):
            out.append(part)
            continue
        name, sep, _ = part.partition("=")
        out.append(f"{name}={MASK}" if sep and sensitive(name) else part)
    return "".join(out)


def redact_url(url: str) -> str:
    """A URL or path with the credentials of its query (and its ``user:password@``) masked."""
    head, sep, query = url.partition("?")
    head = without_userinfo(head)
    if not sep:
        return head
    query, hsep, fragment = query.partition("#")
    return f"{head}?{redact_query(query)}{hsep}{fragment}"


def without_userinfo(text: str, mask: str = MASK) -> str:
    """``text`` with the ``user:password@`` of every URL in it masked."""
    if "@" not in text or "://" not in text:
        return text
    return _USERINFO.sub(lambda m: f"{m[1]}{mask}@", text)


def masked_url(value: str, mask: str = MASK) -> str:
    """A parameter's value as ``details`` shows it: a URL keeps its scheme, host and path
    (its ``user:password@`` masked) and loses its whole query, which is where signed URLs
    carry their credentials, whatever the parameters are called; a text holding URLs (an
    SXML definition) loses their ``user:password@`` and credential-named query values (the
    rest of it, prose included, is shown as written)."""
    if _URL.fullmatch(value):
        head, sep, _ = value.partition("?")
        return without_userinfo(head, mask) + (f"?{mask}" if sep else "")
    if "://" not in value:
        return value
    return _PARAM.sub(
        lambda m: f"{m['lead']}{m['name']}={mask}" if sensitive(m["name"]) else m[0],
        without_userinfo(value, mask),
    )


def _may_hold_names(text: str) -> bool:
    """Could any ``name=`` in ``text`` be ``sensitive``? A name's normalised form is a
    piece of the whole text's normalised form (names end at literal ``?&;=`` and quotes,
    which no escape can span), so when the whole text holds no credential word, no name
    does, and the two costliest patterns need not run: every log line passes here, and most
    (an access log line of a status poll) hold nothing."""
    norm = normalised_name(text)
    return (
        "key" in norm
        or any(word in norm for word in SENSITIVE_NAMES)
        or any(word in norm for word in SENSITIVE_WORDS)
    )


def by_shape(text: str) -> str:
    """Free text (a message, a traceback) with anything that looks like a credential masked."""
    if not text:
        return text
    text = without_userinfo(text)
    if _may_hold_names(text):
        text = _PARAM.sub(
            lambda m: f"{m['lead']}{m['name']}={MASK}" if sensitive(m["name"]) else m[0], text
        )
        text = _PAIR.sub(
            lambda m: (
                f"{m['name']}{m['sep']}{MASK}"
                if sensitive(m["name"]) and m["value"] != MASK
                else m[0]
            ),
            text,
        )
    lowered = text.lower()
    if "authorization" in lowered:
        text = _AUTH_HEADER.sub(lambda m: m[1] + MASK, text)
    if any(word in lowered for word in _TOKEN_WORDS):
        text = _TOKEN.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)
    if "whsec_" in text:
        text = _WEBHOOK_SECRET.sub("whsec_" + MASK, text)
    return text


def by_value(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` replaced (the longest first, so none half-shows)."""
    for secret in sorted({s for s in secrets if len(s) >= PARTIAL}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def scrub(text: str, secrets: Iterable[str] = (), limit: int | None = None) -> str:
    """``text`` scrubbed by value and by shape, then cut to ``limit`` characters.

    Scrubbed before the cut (a secret cut in two would escape ``by_value``) and again
    after it, and a text ending in the start of a secret (cut here or earlier) loses it.
    """
    known = [s for s in secrets if len(s) >= PARTIAL]
    text = by_shape(by_value(text, known))
    if limit is not None and len(text) > limit:
        text = by_shape(text[:limit])
    for secret in known:  # cut here, or before it reached us
        text = _without_cut_secret(text, secret)
    return text


def _without_cut_secret(text: str, secret: str) -> str:
    """``text`` less a start of ``secret`` it ends with (at least ``PARTIAL`` characters)."""
    start = text.find(secret[:PARTIAL], max(0, len(text) - len(secret) + 1))
    while start != -1:
        if secret.startswith(text[start:]):
            return text[:start] + MASK
        start = text.find(secret[:PARTIAL], start + 1)
    return text


def task_secrets(params: object) -> list[str]:
    """The secrets a task holds, from its parameters: the values of credential-named fields
    (at any depth, the store's options included), the values of credential-named query
    parameters of its URLs, and the whole query of an ``s3_signed`` store's URLs."""
    return sorted(set(_secrets_in(params, "")), key=len, reverse=True)


def _secrets_in(value: object, name: str) -> Iterator[str]:
    if isinstance(value, dict):
        signed = value.get("type") == "s3_signed"
        for key, item in value.items():
            yield from _secrets_in(item, str(key))
            if signed and key in ("url", "urls"):
                yield from _queries(item)
    elif isinstance(value, list):
        for item in value:
            yield from _secrets_in(item, name)
    elif isinstance(value, str) and value:
        if name and sensitive(name):
            yield value
        elif "?" in value:
            yield from _query_secrets(value)


def _queries(value: object) -> Iterator[str]:
    """The query strings of a signed URL (or of each URL of a mapping of them)."""
    for url in value.values() if isinstance(value, dict) else [value]:
        if isinstance(url, str) and "?" in url:
            query = url.split("?", 1)[1].split("#", 1)[0]
            if query:
                yield query


def _query_secrets(url: str) -> Iterator[str]:
    query = url.split("?", 1)[1].split("#", 1)[0]
    for part in re.split(r"[&;]", query):
        name, sep, value = part.partition("=")
        if sep and value and sensitive(name):
            yield value
            if unquote_plus(value) != value:
                yield unquote_plus(value)


def task_error(error: object, params: object) -> object:
    """A failed task's ``error`` (text, or the parameters' messages) with every secret the
    task holds and every credential-shaped text masked: the last guard before the status
    document, the errback and the event feed."""
    return _scrubbed(error, task_secrets(params))


def _scrubbed(value: object, secrets: list[str]) -> object:
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {k: _scrubbed(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v, secrets) for v in value]
    return value
