"""The syntax gate for user URLs, applied when a task is created.

Only http and https with a host, no userinfo and at most 2,048 characters get through.
Anything else (``file:``, ``data:``, ffmpeg pseudo-protocols such as ``concat:`` and
``subfile:``, option-looking strings like ``-i``) is refused before any fetch or process.
The address gate (which IPs may be dialled) is applied later, at connect time, by
``dragon.net.fetcher``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048


def url_problem(url: object) -> str | None:
    """Return why ``url`` may not be fetched, or None when its syntax is acceptable."""
    if not isinstance(url, str) or not url:
        return "must be a non-empty string"
    if len(url) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "must be an http or https URL"
    if not parts.hostname:
        return "must name a host"
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        return "has an invalid host name"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "must not carry credentials (user@host)"
    return None
