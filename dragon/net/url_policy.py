"""The syntax gate for user URLs, applied when a task is created.

Only http and https with a host, no userinfo and at most 2,048 characters get through.
Anything else (``file:``, ``data:``, ffmpeg pseudo-protocols such as ``concat:`` and
``subfile:``, option-looking strings like ``-i``) is refused before any fetch or process.
The address gate (which IPs may be dialled) is applied later, at connect time, by
``dragon.net.fetcher``.

A task's inputs may also name a resumable upload of the account (``upload:ID``,
``source_problem``), which is read from storage and never fetched.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
UPLOAD_SCHEME = "upload:"
# An upload's ID as this server makes them (hex), with room for other spellings: anything
# else after ``upload:`` is not a reference, and is refused as a URL would be.
UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def upload_reference(url: object) -> str | None:
    """The ID of ``upload:ID``, or None when ``url`` is not such a reference."""
    if not isinstance(url, str) or not url.startswith(UPLOAD_SCHEME):
        return None
    upload_id = url[len(UPLOAD_SCHEME) :]
    return upload_id if UPLOAD_ID.fullmatch(upload_id) else None


def source_problem(url: object) -> str | None:
    """Why ``url`` may not be a task's input: a URL as ``url_problem`` judges it, or a
    reference to an upload (``upload:ID``), which passes here; whose upload it is, and
    whether it is finished, is known only when the task reads it."""
    if upload_reference(url) is not None:
        return None
    return url_problem(url)


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
