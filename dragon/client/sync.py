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
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from dragon.client import config, tus, wire
from dragon.client.files import Destination


class Client:
    """A connection pool to one dragon server with one set of credentials.

    ``url`` and ``secret`` default as the commands' do (``dragon.client.config``):
    ``DRAGON_URL`` and ``DRAGON_SECRET``, then the file ``dragon login`` writes, then the
    local ``make run`` server and account. Or an ``api_key`` with the ``referrer`` the account
    allows instead of a secret.
    ``retries``: how many more tries a refused (429, 503) or unreachable request gets.
    ``timeout``: seconds a plain request may take; blocking requests and streams have none.
    """

    def __init__(
        self,
        url: str | None = None,
        secret: str | None = None,
        api_key: str | None = None,
        referrer: str | None = None,
        *,
        retries: int = 5,
        timeout: float = wire.DEFAULT_TIMEOUT,
    ) -> None:
        found = config.resolve(url, secret, look_for_secret=api_key is None)
        self.url = found.url
        self.retries = retries
        self._timeout = timeout
        self._headers = wire.auth_headers(found.secret, api_key, referrer)
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

    def events(self, after: int | None = None, follow: bool = False) -> Iterator[wire.Event]:
        """The account's event feed: each recorded change of its tasks (a status document
        with its ``task_name`` and ``cursor``), oldest first, from the cursor ``after``.

        Without ``follow`` it ends at the latest event; with it, it waits for new ones for
        as long as it is read. A dropped feed is read again from the last cursor.
        """
        cursor = wire.EventCursor(after)
        while True:
            try:
                with self._open(
                    "GET", "/v2/events", None, True, None, cursor.query(follow)
                ) as response:
                    for line in response.iter_lines():
                        if line.strip():
                            event: wire.Event = json.loads(line)
                            cursor.accept(event)
                            yield event
                if not follow:
                    return
            except (httpx.TransportError, httpx.DecodingError, json.JSONDecodeError):
                pass  # dropped: read again from the cursor
            time.sleep(cursor.resume(self.retries))

    def tasks(
        self,
        status: str | Iterable[str] | None = None,
        task_name: str | None = None,
        *,
        created_after: datetime | str | float | None = None,
        created_before: datetime | str | float | None = None,
        limit: int | None = None,
    ) -> Iterator[wire.Status]:
        """The account's tasks, newest first (``GET /v2/tasks``): status documents with
        ``task_name``, read a page at a time as the iterator is consumed. ``status``: one
        status or several; ``created_after``/``created_before``: datetimes, ISO 8601 or
        seconds since the epoch; ``limit``: the most tasks to yield (all without)."""
        pages = wire.TaskPages.of(status, task_name, created_after, created_before, limit)
        while not pages.done:
            yield from pages.accept(
                self._request("GET", "/v2/tasks", params=pages.query(), safe=True)
            )

    def create_file(self, task: wire.Task, filename: str = "") -> str:
        """Run one task and return the URL of its output file ``filename`` (any name for a
        task with one output), as ``/v2/create_file`` does; the same definition asked again
        is answered from the first task while its file lives.

        A task that ends in error raises ``DragonError`` (400) with its status as
        ``document``; a ``filename`` the task has no output of raises it with 404.
        """
        body = {"task": task}
        attempts = wire.Attempts(self.url, self.retries, safe=False)
        while True:
            try:
                response = self._http.post(
                    self.url + wire.create_file_path(filename),
                    json=body,
                    headers=self._headers,
                    timeout=wire.timeout(None),
                )
            except httpx.TransportError as exc:
                time.sleep(attempts.after_error(exc))
                continue
            url = wire.location(response)
            if url is not None:
                return url
            delay = attempts.after_response(response)
            if delay is None:  # a 200 is no answer of create_file
                raise wire.error_from(response)
            time.sleep(delay)

    def upload(
        self,
        path: str | os.PathLike[str],
        progress: wire.Progress | None = None,
        *,
        url: str | None = None,
        chunk_bytes: int = tus.CHUNK_BYTES,
    ) -> tus.Upload:
        """Send a local file to the server's resumable uploads (tus, ``/v2/uploads``) and
        return the finished ``Upload``: its ``ref`` (``upload:ID``) or ``url`` goes where a
        task takes a URL. A cut connection resumes from the offset the server kept;
        ``url`` (an ``Upload``'s, or a ``Location``) resumes an upload begun earlier.
        ``progress(done_bytes, total_bytes)`` is called after each chunk."""
        transfer = tus.Transfer(
            self.url, path, retries=self.retries, chunk_bytes=chunk_bytes, url=url
        )
        with open(transfer.path, "rb") as file:
            while (request := transfer.next_request(file)) is not None:
                try:
                    response = self._http.request(
                        request.method,
                        request.url,
                        content=request.body,
                        headers={**self._headers, **request.headers},
                        timeout=wire.timeout(self._timeout),
                    )
                    delay = transfer.answered(response)
                except httpx.TransportError as exc:
                    delay = transfer.failed(exc)
                if progress and transfer.offset is not None:
                    progress(transfer.offset, transfer.size)
                time.sleep(delay)
        return transfer.result()

    def list_files(self, path: str = "", recursive: bool = False) -> dict[str, Any]:
        """The account's persistent output files under ``path`` (a task key, or none for
        the top): ``{"files": [...], "directories": [...], "usage": bytes}``."""
        params = {"recursive": "true"} if recursive else None
        listing: dict[str, Any] = self._request(
            "GET", wire.storage_path(path), params=params, safe=True
        )
        return listing

    def delete_files(
        self,
        path: str = "",
        *,
        urls: Iterable[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        max_age: float | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Delete persistent output files: those of ``urls``, else those under ``path``
        stored between ``since`` and ``until`` or more than ``max_age`` days ago (all of
        them without a filter). ``{"deleted": [names], "freed": bytes, "usage": bytes}``;
        ``dry_run`` says what would go. Needs the secret, not an api key."""
        body = wire.delete_filters(urls, since, until, max_age, dry_run)
        deleted: dict[str, Any] = self._request(
            "DELETE", wire.storage_path(path), body=body, safe=True
        )
        return deleted

    def expiration(self) -> int:
        """Days the account's persistent files are kept (0: forever)."""
        days: int = self._request("GET", "/v2/storage/expiration", safe=True)
        return days

    def set_expiration(self, days: int) -> int:
        """Keep the account's persistent files ``days`` days (0: forever); needs the secret."""
        kept: int = self._request("POST", "/v2/storage/expiration", body={"days": days}, safe=True)
        return kept

    def put_template(self, name: str, definition: str) -> dict[str, Any]:
        """Store a video.create template, SXML with ``{{field}}`` slots (replacing one of
        that name; needs the secret): ``{"name", "definition", "fields", "created_at",
        "updated_at"}``. A task then names it: ``{"task_name": "video.create", "template":
        name, "fields": {...}}``; each field is XML-escaped into its slot."""
        stored: dict[str, Any] = self._request(
            "POST", "/v2/templates", body={"name": name, "definition": definition}, safe=True
        )
        return stored

    def template(self, name: str) -> dict[str, Any]:
        """One of the account's templates (``DragonError`` 404 if there is none of that name)."""
        found: dict[str, Any] = self._request("GET", wire.template_path(name), safe=True)
        return found

    def templates(self) -> list[dict[str, Any]]:
        """The account's templates, by name."""
        listing: list[dict[str, Any]] = self._request("GET", "/v2/templates", safe=True)[
            "templates"
        ]
        return listing

    def delete_template(self, name: str) -> None:
        """Delete one of the account's templates (needs the secret); tasks created from it
        keep their definition."""
        self._request("DELETE", wire.template_path(name), safe=True)

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
        name: str | None = None,
    ) -> Path:
        """Save an output file into the folder ``to``; returns its path.

        Output URLs need no credentials, and none are sent: they may point to another host
        (S3, a CDN). ``progress(done_bytes, total_bytes_or_None)`` is called as it arrives.
        ``name``: the file's name without extension (the output's name, ``export``), else
        the URL's last segment; the extension comes from the URL or the content type.
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
                        dest = Destination(Path(to), url, response.headers, avoid, name)
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
        """POST ``body`` to an API route that answers a list of status documents."""
        statuses: list[wire.Status] = self._request("POST", path, body=body, safe=safe, wait=wait)
        return statuses

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        safe: bool,
        wait: bool = False,
    ) -> Any:
        """Send one request, retried as ``wire.Attempts`` allows; its 200 answer's JSON."""
        attempts = wire.Attempts(self.url, self.retries, safe)
        while True:
            try:
                read = attempts.read_timeout(None if wait else self._timeout)
                response = self._http.request(
                    method,
                    self.url + path,
                    json=body,
                    params=params,
                    headers=self._headers,
                    timeout=wire.timeout(read),
                )
            except httpx.TransportError as exc:
                time.sleep(attempts.after_error(exc))
                continue
            delay = attempts.after_response(response)
            if delay is None:
                return response.json()
            time.sleep(delay or 0.0)

    @contextlib.contextmanager
    def _open(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        safe: bool,
        deadline: float | None,
        params: dict[str, str] | None = None,
    ) -> Iterator[httpx.Response]:
        """A 200 streaming response, after the retries a refusal or a failed connect get."""
        attempts = wire.Attempts(self.url, self.retries, safe, deadline)
        while True:
            try:
                request = self._http.build_request(
                    method,
                    self.url + path,
                    json=body,
                    params=params,
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
                with self._open("POST", path, body, safe, deadline) as response:
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
