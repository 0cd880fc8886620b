"""The access log: one line per answer, in aiohttp's default format, credentials masked.

A status poll is cheap to answer, and aiohttp's access log made it dear: each line went
through a dozen small formatting functions, a ``logging`` record (the caller's frame looked
up, the record built, handlers locked), ``RedactingFormatter`` scanning the whole line for
credentials, and a write and flush of its own. Measured on a status poll, that was as much
CPU as everything else dragon does for the request.

Here a line is one f-string. Only the parts a client chose (the request target, Referer and
User-Agent) are scrubbed, each once per distinct value (a poll repeats the same URL). When
logging was set up by ``dragon.web.redaction.install`` (``dragon serve``), the line goes
straight to the bytes buffer under that handler's stream, in the handler's format, and the
buffer is flushed within ``FLUSH_SECONDS`` (records of the ``logging`` module flush it at
once, so the order of lines on stderr is kept). Otherwise it is an ordinary INFO record.
``DRAGON_LOG_LEVEL=WARNING`` silences the access log either way.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import time

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from dragon.web.redaction import installed, redact_text

# A value longer than this is scrubbed every time rather than kept in the cache: the cache
# holds at most CACHED values of at most this many characters.
CACHEABLE = 512
CACHED = 2048
FLUSH_SECONDS = 0.2


@functools.lru_cache(maxsize=CACHED)
def _scrubbed_cached(text: str) -> str:
    return redact_text(text)


def scrubbed(text: str) -> str:
    """``text`` from a client, with anything shaped like a credential masked."""
    return _scrubbed_cached(text) if len(text) <= CACHEABLE else redact_text(text)


class _Clock:
    """The formatted times a line needs, each computed once a second."""

    second = -1
    started_second = -1
    asctime = ""  # as logging.Formatter's %(asctime)s, without the milliseconds
    started = ""  # as aiohttp's %t: 06/Dec/2026:13:30:18 +0000

    def now(self) -> str:
        now = time.time()
        second = int(now)
        if second != self.second:
            self.asctime = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self.second = second
        return f"{self.asctime},{int((now - second) * 1000):03d}"

    def start(self, took: float) -> str:
        second = int(time.time() - took)
        if second != self.started_second:
            self.started = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second))
            self.started_second = second
        return self.started


class AccessLog(AbstractAccessLogger):
    """``REMOTE [START] "METHOD TARGET HTTP/x.y" STATUS BYTES "REFERER" "USER-AGENT"``, at INFO
    on ``aiohttp.access``."""

    _clock = _Clock()
    _flush_due = False

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        headers = request.headers
        version = request.version
        referer = scrubbed(headers.get("Referer", "-"))
        agent = scrubbed(headers.get("User-Agent", "-"))
        line = (
            f"{request.remote or '-'} [{self._clock.start(time)}] "
            f'"{request.method} {scrubbed(request.path_qs)} HTTP/{version.major}.{version.minor}" '
            f'{response.status} {response.body_length} "{referer}" "{agent}"'
        )
        out = _buffer()
        if out is None:
            self.logger.info(line)
            return
        text = f"{self._clock.now()} INFO {self.logger.name}: {line}\n"
        out.write(text.encode("utf-8", "backslashreplace"))
        if not AccessLog._flush_due:
            AccessLog._flush_due = True
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, _flush, out)


def _buffer() -> io.BufferedIOBase | None:
    """The bytes buffer under the stream of the handler ``install`` set up, if any."""
    handler = installed()
    buffer = getattr(handler.stream, "buffer", None) if handler is not None else None
    return buffer if isinstance(buffer, io.BufferedIOBase) else None


def _flush(out: io.BufferedIOBase) -> None:
    AccessLog._flush_due = False
    try:
        out.flush()
    except (OSError, ValueError):  # stderr closed or gone: the lines are lost, not the server
        pass
