"""Credentials out of every log line: the access log and every record the server prints.

Attackers (and careless clients) spell a credential many ways: ``?%73ecret=``,
``sec%72et=``, ``api%5Fkey=``, ``x=1;secret=``, ``%20secret=``. So a query parameter is
judged by its name *after* percent-decoding, trimming and dropping punctuation, and
parameters are split on ``&`` and ``;`` alike. Free text (tracebacks, messages) also loses
``Authorization`` header values, ``Secret``/``Api-Key``/``Bearer`` tokens and webhook
secrets, whatever bytes follow them (a trailing NUL made aiohttp print the header).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

MASK = "***"

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
    "sig",
)

# A query parameter in free text: preceded by ?, & or ; (or a space/quote for logged dicts).
_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;?#\s\"'<>]{1,200})=(?P<value>[^&;#\s\"'<>]*)")
_AUTH_HEADER = re.compile(r"(?i)(authorization\s*['\"]?\s*[:=,]\s*['\"]?)[^\r\n'\"]*")
_TOKEN = re.compile(
    r"(?i)\b(secret|api[-_]?key|bearer)(\s*[:=]?\s+|%20|\+)([A-Za-z0-9+/=_\-.~]{8,})"
)
_WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


def normalised_name(name: str) -> str:
    """A parameter name as a server might read it: decoded (twice at most), letters only."""
    for _ in range(2):
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    return re.sub(r"[^a-z0-9]", "", name.lower())


def sensitive(name: str) -> bool:
    norm = normalised_name(name)
    return any(word in norm for word in SENSITIVE_WORDS) or norm in ("key", "pass")


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
    """A URL or path with the credentials of its query masked."""
    head, sep, query = url.partition("?")
    if not sep:
        return url
    query, hsep, fragment = query.partition("#")
    return f"{head}?{redact_query(query)}{hsep}{fragment}"


def redact_text(text: str) -> str:
    """Free text (a message, a traceback) with anything that looks like a credential masked."""
    if not text:
        return text
    text = _PARAM.sub(
        lambda m: f"{m['lead']}{m['name']}={MASK}" if sensitive(m["name"]) else m[0], text
    )
    text = _AUTH_HEADER.sub(lambda m: m[1] + MASK, text)
    text = _TOKEN.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)
    return _WEBHOOK_SECRET.sub("whsec_" + MASK, text)


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then masks credentials in the whole text, traceback included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def install(level: str) -> None:
    """Log to stderr through ``RedactingFormatter``: no record escapes the redaction."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
