"""What the upload clients share: the session, streamed file ranges, retries, error codes.

``Client`` wraps one ``aiohttp.ClientSession`` for one upload. ``call`` sends one request
and returns the whole (small) answer, or raises ``Transient`` for what is worth another
try: a dropped connection, a reset, a stall. A stall is no byte written for
``fetch_read_timeout`` seconds while the body goes out, or no answer that long after it:
the deadline moves on with every piece written, so a slow but moving upload of any size is
never cut.

Bodies are ``FileRange``s: ``length`` bytes of the file from ``offset``, read in ``PIECE``
sized reads in a thread, so one upload holds about one piece in memory and the event loop
never waits on the disk. Each piece written reports the file position reached, which is
what ``progress`` follows.

Messages never carry a token: every message built from a platform's answer goes through
``Client.scrub`` (``dragon.net.scrub``: every secret the client knows, and whatever looks
like a credential), the retry path's "failed after N tries" included, and is cut only after
that. aiohttp's exception texts, which name URLs with query strings, are never used.

An upload that is abandoned (its task cancelled, or past its time) tells the platform so
where the protocol has a way (``abandon``): one try, within ``ABANDON_SECONDS``.

Platforms' answers are judged, not trusted: JSON nested past what the parser takes is not
JSON, and an answer that moves the upload nowhere (the same range again, a range going
back) counts as a failure, so a confused platform gets backoff and an end, not a flood.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from dragon import errors
from dragon.config import Settings
from dragon.net import scrub
from dragon.net.fetcher import USER_AGENT

PIECE = 1024 * 1024  # bytes read from disk and written per step
MAX_ANSWER = 1024 * 1024  # platform answers are small JSON documents
FIRST_DELAY = 0.5  # seconds before the first retry; doubled each time, with jitter
MAX_DELAY = 30.0
MESSAGE = 300  # characters of a platform's text kept in a message, after scrubbing
MAX_BYTES = 2**63 - 1  # the largest byte count a platform may report
ABANDON_SECONDS = 5.0  # how long telling a platform that an upload is abandoned may take


class Transient(Exception):
    """A failure worth another try after a pause; ``why`` is safe to show."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        return parse_json(self.body)


def parse_json(text: str | bytes) -> Any:
    """``text`` as JSON, or None when it is not JSON or nests deeper than the parser goes
    (a hostile platform's 200,000 brackets are a malformed answer, not a crash)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def byte_count(value: object) -> int | None:
    """A count of bytes from a platform's JSON: None when absent, ``ValueError`` when it is
    not one (negative, infinite, NaN, or ``10**400``: past what a status document holds)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r:.40} is not a number")
    if not 0 <= value <= MAX_BYTES:  # also false for NaN
        raise ValueError(f"{value!r:.40} is not a byte count")
    return int(value)


class FileRange:
    """``length`` bytes of ``path`` from ``offset``, streamed a piece at a time.

    ``head`` and ``tail`` are sent around the file's bytes (a multipart envelope).
    ``on_piece(position)`` is called after each piece with the file position reached.
    """

    def __init__(
        self,
        path: Path,
        offset: int,
        length: int,
        *,
        head: bytes = b"",
        tail: bytes = b"",
        on_piece: Callable[[int], None] | None = None,
    ) -> None:
        self.path = path
        self.offset = offset
        self.length = length
        self.head = head
        self.tail = tail
        self.on_piece = on_piece

    @property
    def size(self) -> int:
        return len(self.head) + self.length + len(self.tail)

    async def pieces(self, alive: Callable[[], None]) -> AsyncIterator[bytes]:
        if self.head:
            yield self.head
        file = await asyncio.to_thread(open, self.path, "rb")
        try:
            file.seek(self.offset)
            position, end = self.offset, self.offset + self.length
            while position < end:
                piece = await asyncio.to_thread(file.read, min(PIECE, end - position))
                if not piece:
                    raise errors.TaskError(
                        errors.UPLOAD_FAILED, "the file to upload ended early (it was changed)"
                    )
                position += len(piece)
                yield piece
                alive()
                if self.on_piece is not None:
                    self.on_piece(position)
        finally:
            await asyncio.to_thread(file.close)
        if self.tail:
            yield self.tail


class Backoff:
    """Pauses between failed requests; ``upload_failed`` after ``tries`` failures in a row.

    ``progress()`` (a request that succeeded) starts the count again: a long upload over a
    flaky link keeps going as long as requests get through now and then. ``moved(position)``
    is that for a transfer: only a position past the best one yet is progress; the same
    position again, or one further back, is a failure (a platform alternating two ranges
    would otherwise reset the count forever). ``why`` may come from the platform: it is
    scrubbed with ``scrub`` before it lands in the message.
    """

    def __init__(self, platform: str, tries: int, scrub: Callable[[str], str]) -> None:
        self.platform = platform
        self.tries = tries
        self.scrub = scrub
        self.failures = 0
        self.best = 0

    async def wait(self, why: str) -> None:
        self.failures += 1
        if self.failures >= self.tries:
            raise errors.TaskError(
                errors.UPLOAD_FAILED,
                f"{self.platform} upload failed after {self.failures} tries: {self.scrub(why)}",
            )
        delay = min(MAX_DELAY, FIRST_DELAY * 2 ** (self.failures - 1))
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    def progress(self) -> None:
        self.failures = 0

    def begin(self) -> None:
        """A new transfer from byte 0 (a new upload session): no position reached yet."""
        self.best = 0

    async def moved(self, position: int) -> None:
        """A transfer answer that leaves the upload at ``position``: progress if past the
        best position yet, else a failure (with its pause)."""
        if position > self.best:
            self.best = position
            self.progress()
        else:
            await self.wait(f"the server went no further than byte {self.best} (now at {position})")


_FAILURES = (
    (aiohttp.ServerDisconnectedError, "the server closed the connection"),
    (aiohttp.ClientConnectorError, "could not connect"),
    (aiohttp.ClientPayloadError, "the answer was cut short"),
    (aiohttp.ClientOSError, "the connection failed"),
    (aiohttp.ClientResponseError, "the answer was malformed"),
    (aiohttp.ClientConnectionError, "the connection failed"),
    (aiohttp.ClientError, "the request failed"),
    (ConnectionError, "the connection failed"),
    (OSError, "the connection failed"),
)


class Client:
    """One upload's HTTP client; ``secrets`` are scrubbed from every message."""

    def __init__(self, settings: Settings, platform: str, secrets: Iterable[str | None]) -> None:
        self.settings = settings
        self.platform = platform
        self.secrets = [s for s in secrets if s]
        self.stall = float(settings.fetch_read_timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        # Not the guarded fetcher: these are the operator's endpoints (settings), not user
        # URLs. Still no proxy from the environment and no cookies.
        self._session = aiohttp.ClientSession(
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": USER_AGENT},
            timeout=aiohttp.ClientTimeout(total=None, connect=self.settings.fetch_connect_timeout),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def backoff(self) -> Backoff:
        return Backoff(self.platform, self.settings.upload_max_tries, self.scrub)

    def scrub(self, text: str) -> str:
        """``text`` (from a platform) without secrets, then cut to ``MESSAGE`` characters."""
        return scrub.scrub(text, self.secrets, MESSAGE)

    async def call(
        self,
        method: str,
        url: str,
        *,
        body: FileRange | bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Answer:
        """One request, redirects not followed; ``Transient`` for a failure worth a retry."""
        assert self._session is not None
        loop = asyncio.get_running_loop()
        headers = dict(headers or {})
        try:
            async with asyncio.timeout_at(loop.time() + self.stall) as deadline:

                def alive() -> None:
                    deadline.reschedule(loop.time() + self.stall)

                data: Any = body
                if isinstance(body, FileRange):
                    headers["Content-Length"] = str(body.size)
                    data = body.pieces(alive)
                async with self._session.request(
                    method, url, data=data, headers=headers, params=params, allow_redirects=False
                ) as resp:
                    alive()
                    return Answer(resp.status, resp.headers, await _read_answer(resp))
        except TimeoutError:
            raise Transient(f"no progress for {self.stall:g} s") from None
        except errors.TaskError:
            raise
        except Exception as exc:
            for kind, why in _FAILURES:
                if isinstance(exc, kind):
                    raise Transient(why) from None
            raise

    # -- errors a user can act on ---------------------------------------------------------
    def unauthorized(self, message: str) -> errors.TaskError:
        return errors.TaskError(
            errors.UPLOAD_UNAUTHORIZED,
            f"{self.platform} refused the credentials: {self.scrub(message)}",
        )

    def quota(self, message: str) -> errors.TaskError:
        return errors.TaskError(
            errors.UPLOAD_QUOTA_EXCEEDED, f"{self.platform} quota exceeded: {self.scrub(message)}"
        )

    def failed(self, message: str) -> errors.TaskError:
        return errors.TaskError(
            errors.UPLOAD_FAILED, f"{self.platform} upload failed: {self.scrub(message)}"
        )


async def _read_answer(resp: aiohttp.ClientResponse) -> bytes:
    """The whole answer (it may arrive in several reads), at most ``MAX_ANSWER`` bytes."""
    body = bytearray()
    async for block in resp.content.iter_any():
        body += block[: MAX_ANSWER - len(body)]
        if len(body) >= MAX_ANSWER:
            break
    return bytes(body)


async def abandon(*requests: Callable[[], Awaitable[object]]) -> None:
    """Send ``requests`` in turn to tell the platform that an upload is abandoned, so it
    drops what it holds. Called while the task unwinds from its cancellation: the task ends
    the same whatever the platform answers, so each request is tried once, its failure
    ignored, all of them within ``ABANDON_SECONDS``."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(ABANDON_SECONDS):
            for request in requests:
                with contextlib.suppress(Exception):
                    await request()


def answer_text(answer: Answer) -> str:
    """A description of an answer for a message: its status and body, whole: the message's
    maker scrubs it (``Client.scrub``) before cutting it, so no secret is cut in two."""
    text = answer.body.decode("utf-8", "replace").strip()
    return f"HTTP {answer.status}" + (f": {text}" if text else "")


class Progress:
    """Turns file positions into ``progress`` 0-100, never going back on a resume."""

    def __init__(self, size: int, report: Callable[[float], None] | None) -> None:
        self.size = max(size, 1)
        self.report = report
        self.best = 0

    def __call__(self, position: int) -> None:
        if position > self.best:
            self.best = position
            if self.report is not None:
                self.report(100.0 * position / self.size)
