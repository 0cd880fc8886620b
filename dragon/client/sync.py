"""``Client``: the blocking Python client of the Dragon tasks API (v2), over httpx.

Every decision (retries, errors, stream resumption) lives in ``wire``; this module only
sends, reads and sleeps. ``AsyncClient`` (``asynchronous.py``) is the same with ``await``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Container, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from dragon.client import wire
from dragon.client.files import Destination


class Client:
    """A connection pool to one dragon server with one set of credentials.

    ``secret`` (server to server) or ``api_key`` with the ``referrer`` the account allows.
    ``retries``: how many more tries a refused (429, 503) or unreachable request gets.
    ``timeout``: seconds a plain request may take; blocking requests and streams have none.
    """

    def __init__(
        self,
        url: str,
        secret: str | None = None,
        api_key: str | None = None,
        referrer: str | None = None,
        *,
        retries: int = 5,
        timeout: float = wire.DEFAULT_TIMEOUT,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self._timeout = timeout
        self._headers = wire.auth_headers(secret, api_key, referrer)
        self._http = httpx.Client(headers={"User-Agent": wire.USER_AGENT})

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the API -------------------------------------------------------------------------

    def create(
        self, tasks: wire.Task | Iterable[wire.Task], block: bool = False
    ) -> list[wire.Status]:
        """Queue tasks; their statuses in request order (final ones with ``block``)."""
        body = {"tasks": wire.task_list(tasks), "block": block}
        return self._call("/v2/create", body, safe=False, wait=block)

    def status(
        self, keys: str | Iterable[str], block: bool = False, details: bool = False
    ) -> list[wire.Status]:
        """Statuses of existing tasks in the order of ``keys``."""
        body = {"tasks": wire.key_list(keys), "block": block, "details": details}
        return self._call("/v2/status", body, safe=True, wait=block)

    def cancel(self, keys: str | Iterable[str]) -> list[wire.Status]:
        """Cancel tasks: queued ones end at once, executing ones are stopped. Their statuses
        after the cancel, in the order of ``keys``: ``error`` with ``error_code``
        ``cancelled``, or as they were for tasks that had ended (``unknown_task`` for keys
        that are not the account's). Safe to repeat, so retried like a status request."""
        return self._call("/v2/cancel", {"tasks": wire.key_list(keys)}, safe=True, wait=False)

    def stream(self, keys: str | Iterable[str]) -> Iterator[wire.Status]:
        """Status documents of existing tasks: the current ones, then each change, until
        every task has ended. A dropped connection is picked up again."""
        keys = wire.key_list(keys)
        return self._follow(wire.Follow.of(keys), "/v2/status_stream", {"tasks": keys}, True)

    def create_stream(self, tasks: wire.Task | Iterable[wire.Task]) -> Iterator[wire.Status]:
        """Queue tasks and yield their statuses (the created ones first, in request order),
        then each change until every task has ended."""
        body = {"tasks": wire.task_list(tasks)}
        return self._follow(wire.Follow(), "/v2/create_stream", body, False)

    def run(self, task: wire.Task, timeout: float | None = None) -> wire.Status:
        """Run one task to its end and return its final status (``success`` or ``error``).

        ``TimeoutError`` after ``timeout`` seconds (its message names the task's key); the
        task goes on on the server.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last: wire.Status = {}
        try:
            for doc in self._follow(
                wire.Follow(), "/v2/create_stream", {"tasks": [task]}, False, deadline
            ):
                last = doc
        except TimeoutError:
            raise wire.still_running(last, timeout) from None
        return last

    @staticmethod
    def outputs(status: wire.Status) -> dict[str, str]:
        """The URLs of a finished task's result: ``{name: url}``, unchecked (see ``files``)."""
        return wire.outputs(status)

    def files(self, status: wire.Status) -> dict[str, str]:
        """Output files of a finished task: ``{name: url}`` of the files it stored.

        A result's URL may be text the task read from its sources (a page's title), so
        each is kept only when the server confirms it is the file the task stored under
        that name: what the task's sources say never picks what is downloaded.
        """
        key = status.get("key")
        if not isinstance(key, str):
            return {}
        return {
            name: url for name, url in wire.outputs(status).items() if self._stored(key, name, url)
        }

    def download(
        self,
        url: str,
        to: str | os.PathLike[str] = ".",
        progress: wire.Progress | None = None,
        *,
        avoid: Container[str] = (),
    ) -> Path:
        """Save an output file into the folder ``to``; returns its path.

        Output URLs need no credentials, and none are sent: they may point to another host
        (S3, a CDN). ``progress(done_bytes, total_bytes_or_None)`` is called as it arrives.
        ``avoid``: file names not to write over (those saved before by the same download);
        the file then gets a numbered name.
        """
        attempts = wire.Attempts(url, self.retries, safe=True)
        while True:
            try:
                with self._http.stream(
                    "GET", url, follow_redirects=True, timeout=wire.timeout(self._timeout)
                ) as response:
                    if response.status_code != 200:
                        response.read()
                    else:
                        dest = Destination(Path(to), url, response.headers, avoid)
                        with dest.open() as f:
                            for chunk in response.iter_bytes():
                                f.write(chunk)
                                if progress:
                                    progress(dest.add(len(chunk)), dest.total)
                        return dest.path
                    delay = attempts.after_response(response)
            except httpx.TransportError as exc:
                delay = attempts.after_error(exc)
            time.sleep(delay or 0.0)

    # -- plumbing ------------------------------------------------------------------------

    def _stored(self, key: str, name: str, url: str) -> bool:
        """Whether the server redirects ``/v2/file/NAME?task=KEY`` to ``url``."""
        attempts = wire.Attempts(self.url, self.retries, safe=True)
        while True:
            try:
                response = self._http.get(
                    self.url + wire.file_path(key, name),
                    headers=self._headers,
                    timeout=wire.timeout(self._timeout),
                )
            except httpx.TransportError as exc:
                time.sleep(attempts.after_error(exc))
                continue
            verdict = wire.stored(response, url)
            if verdict is not None:
                return verdict
            time.sleep(attempts.after_response(response) or 0.0)

    def _call(
        self, path: str, body: dict[str, Any], *, safe: bool, wait: bool
    ) -> list[wire.Status]:
        """POST ``body``, retried as ``wire.Attempts`` allows; the API answers a list of
        status documents."""
        attempts = wire.Attempts(self.url, self.retries, safe)
        while True:
            try:
                read = attempts.read_timeout(None if wait else self._timeout)
                response = self._http.post(
                    self.url + path, json=body, headers=self._headers, timeout=wire.timeout(read)
                )
            except httpx.TransportError as exc:
                time.sleep(attempts.after_error(exc))
                continue
            delay = attempts.after_response(response)
            if delay is None:
                statuses: list[wire.Status] = response.json()
                return statuses
            time.sleep(delay or 0.0)

    @contextlib.contextmanager
    def _open(
        self, path: str, body: dict[str, Any], safe: bool, deadline: float | None
    ) -> Iterator[httpx.Response]:
        """A 200 streaming response, after the retries a refusal or a failed connect get."""
        attempts = wire.Attempts(self.url, self.retries, safe, deadline)
        while True:
            try:
                request = self._http.build_request(
                    "POST",
                    self.url + path,
                    json=body,
                    headers=self._headers,
                    timeout=wire.timeout(attempts.read_timeout(None)),
                )
                response = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                time.sleep(attempts.after_error(exc))
                continue
            try:
                if response.status_code == 200:
                    yield response
                    return
                response.read()
                delay = attempts.after_response(response)
            finally:
                response.close()
            time.sleep(delay or 0.0)

    def _follow(
        self,
        follow: wire.Follow,
        path: str,
        body: dict[str, Any],
        safe: bool,
        deadline: float | None = None,
    ) -> Iterator[wire.Status]:
        while True:
            try:
                with self._open(path, body, safe, deadline) as response:
                    first = True
                    for line in response.iter_lines():
                        if not line.strip():
                            continue
                        value = json.loads(line)
                        if not first:
                            follow.changed()
                        first = False
                        yield from follow.accept(value)
            except (httpx.TransportError, httpx.DecodingError, json.JSONDecodeError):
                pass  # dropped: resumed below from what was seen
            if follow.done:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("the deadline passed")
            time.sleep(follow.resume(self.retries, deadline))
            path, body = follow.request()
            safe = True
