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

import io
import logging
import sys
from typing import TextIO

from dragon.net.scrub import by_shape as redact_text
from dragon.net.scrub import redact_url

__all__ = ["FORMAT", "RedactingFormatter", "install", "installed", "redact_text", "redact_url"]

BUFFER_BYTES = 1 << 16
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_installed: list[logging.StreamHandler[TextIO]] = []


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then masks credentials in the whole text, traceback included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def install(level: str) -> None:
    """Log to stderr through ``RedactingFormatter``: no record escapes the redaction.

    The handler writes to a text stream of its own over file descriptor 2, with a bytes
    buffer beneath that the access log fills directly (a record still flushes at once)."""
    stream: TextIO = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(sys.stderr.fileno(), "w", closefd=False), BUFFER_BYTES),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    _installed[:] = [handler]


def installed() -> logging.StreamHandler[TextIO] | None:
    """The stderr handler ``install`` set up (None if logging was set up otherwise): the
    access log writes its lines, already scrubbed, to the same stream (dragon.web.access_log)."""
    return _installed[0] if _installed else None
