"""The access log, with credentials removed from the request line and the Referer.

A query is judged parameter by parameter after decoding (``dragon.web.redaction``), so
``?%73ecret=`` or ``x=1;secret=`` are masked like ``?secret=``.
"""

from __future__ import annotations

from aiohttp.web_log import AccessLogger

from dragon.web.redaction import redact_url


class RedactingAccessLogger(AccessLogger):
    def log(self, request, response, time) -> None:  # noqa: A002 - aiohttp's signature
        changes = {}
        raw = request.raw_path
        if "?" in raw:
            changes["rel_url"] = redact_url(raw)
        referer = request.headers.get("Referer")
        if referer and "?" in referer:
            headers = request.headers.copy()
            headers["Referer"] = redact_url(referer)
            changes["headers"] = headers
        if changes:
            request = request.clone(**changes)
        super().log(request, response, time)
