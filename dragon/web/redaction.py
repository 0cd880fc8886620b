"""Credentials out of every log line: the access log and every record the server prints.

Attackers (and careless clients) spell a credential many ways: ``?%73ecret=``,
``sec%72et=``, ``api%5Fkey=``, ``x=1;secret=``, ``%20secret=``, ``developer_key=``. The
rules are those of ``dragon.net.scrub``, shared with task errors: a query parameter is
judged by its name *after* percent-decoding, trimming and dropping punctuation, parameters
are split on ``&`` and ``;`` alike, and free text (tracebacks, messages) also loses
``Authorization`` header values, ``Secret``/``Api-Key``/``Bearer`` tokens and webhook
secrets, whatever bytes follow them (a trailing NUL made aiohttp print the header).
"""

from __future__ import annotations

import logging

from dragon.net.scrub import by_shape as redact_text
from dragon.net.scrub import redact_url

__all__ = ["RedactingFormatter", "install", "redact_text", "redact_url"]


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then masks credentials in the whole text, traceback included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def install(level: str) -> None:
    """Log to stderr through ``RedactingFormatter``: no record escapes the redaction."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
