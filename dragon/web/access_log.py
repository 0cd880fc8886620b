"""The access log, with credentials removed from query strings (``?secret=``)."""

from __future__ import annotations

import re

from aiohttp.web_log import AccessLogger

SECRET_QUERY = re.compile(r"((?:^|[?&])(?:secret|api_key)=)[^&\s]*", re.I)


class RedactingAccessLogger(AccessLogger):
    def log(self, request, response, time) -> None:  # noqa: A002 - aiohttp's signature
        if request.query_string:
            request = request.clone(rel_url=SECRET_QUERY.sub(r"\1***", str(request.rel_url)))
        super().log(request, response, time)
