"""What both clients share: credentials, the retry policy, errors and status-stream resumption.

The sync and async clients only differ in how they wait (``time.sleep`` or ``asyncio.sleep``)
and iterate; every decision is made here, so the two cannot drift apart.

Retries. 429 and 503 answers are refusals made before anything was created, so any request
is retried after the ``Retry-After`` the server sent (or an exponential, jittered backoff
without one). So is a 401 that carries ``Retry-After``: the account is at its
``--max-active`` limit, which clears as its tasks end; plain bad credentials have no
``Retry-After`` and fail at once. Connection errors are retried for reads (status,
streams, downloads) whatever happened; a create is only retried when the connection
could not even be opened, because a connection that broke after the request was sent may
have created the tasks, and creating them twice is worse than an error.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

FINAL = frozenset({"success", "error"})
USER_AGENT = "dragon-client/0.1"
DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0
RETRY_AFTER_MAX = 120.0

Progress = Callable[[int, int | None], None]  # (bytes done, total bytes or None)
# A task definition (``{"task_name": ..., parameters}``) and a status document: JSON objects
# whose fields are the API's (docs/api.md), not the client's.
Task = dict[str, Any]
Status = dict[str, Any]


# One line of the event feed: a status document plus its ``task_name`` and ``cursor``.
Event = dict[str, Any]


class DragonError(Exception):
    """An HTTP error from the server (``status``, the Dragon API's ``errors`` list), or a server
    that could not be reached after the retries (``status`` is None, ``errors`` empty).

    ``document``: the task's status document when the answer was one (``create_file`` of a
    task that ended in error answers 400 with it).
    """

    def __init__(
        self,
        status: int | None,
        errors: list[dict[str, Any]] | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        document: Status | None = None,
    ) -> None:
        self.status = status
        self.errors = errors or []
        self.retry_after = retry_after
        self.document = document
        if message is None:
            described = "; ".join(
                f"{e.get('name')}: {e.get('description')} ({e.get('location')})"
                for e in self.errors
                if isinstance(e, dict)
            )
            message = f"HTTP {status}" + (f": {described}" if described else "")
        self.message = message
        super().__init__(message)


def auth_headers(secret: str | None, api_key: str | None, referrer: str | None) -> dict[str, str]:
    """Headers that present the credentials; only ever sent to the API's own URL."""
    if secret and api_key:
        raise ValueError("pass a secret or an api key, not both")
    headers = {"User-Agent": USER_AGENT}
    if secret:
        headers["Authorization"] = f"Secret {secret}"
    elif api_key:
        headers["Authorization"] = f"Api-Key {api_key}"
    if referrer:
        headers["Referer"] = referrer
    return headers


def timeout(read: float | None) -> httpx.Timeout:
    """``read=None`` for blocking requests and streams, which may stay silent for long."""
    return httpx.Timeout(DEFAULT_TIMEOUT, connect=CONNECT_TIMEOUT, read=read)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_MAX)


def backoff(attempt: int, hinted: float | None = None) -> float:
    """Seconds before retry number ``attempt`` (0-based): the server's hint, else
    exponential with jitter so that many clients refused at once do not come back at once."""
    if hinted is not None:
        return hinted
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2.0**attempt) * random.uniform(0.5, 1.0)


def retryable_status(response: httpx.Response) -> bool:
    if response.status_code in (429, 503):
        return True
    return response.status_code == 401 and "Retry-After" in response.headers


def retryable_error(exc: Exception, safe: bool) -> bool:
    """Is this transport error worth another try? ``safe``: the request may run twice."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return True
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return False
    return safe and isinstance(exc, httpx.TransportError)


def error_from(response: httpx.Response) -> DragonError:
    """The DragonError of a non-200 answer, with the API's ``errors`` list when it has one,
    the task's status when it is one, or the ``message`` of ``create_file``'s answers."""
    errors: list[dict[str, Any]] = []
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        errors = body["errors"]
    message = document = None
    if isinstance(body, dict) and isinstance(body.get("key"), str) and body.get("status"):
        document = body
        message = task_error(body)
    elif isinstance(body, dict) and isinstance(body.get("message"), str):
        message = f"HTTP {response.status_code}: {body['message'][:500]}"
    elif not errors:
        text = response.text.strip()[:200]
        message = f"HTTP {response.status_code}" + (f": {text}" if text else "")
    return DragonError(response.status_code, errors, message, retry_after(response), document)


def task_error(doc: Status) -> str:
    """One line for a task that ended in error: its key, its ``error_code``, its error."""
    error = doc.get("error")
    text = error if isinstance(error, str) else json.dumps(error)
    code = doc.get("error_code")
    return f"task {doc.get('key')} ended in error" + (f" ({code})" if code else "") + f": {text}"


def unreachable(url: str, exc: Exception) -> DragonError:
    return DragonError(None, [], f"cannot reach {url}: {type(exc).__name__}: {exc}")


class Attempts:
    """The retry loop of one request, minus the waiting (done by the sync or async caller).

    ``deadline`` (a ``time.monotonic()`` value) bounds the whole request, retries included:
    past it the caller gets ``TimeoutError``.
    """

    def __init__(self, url: str, retries: int, safe: bool, deadline: float | None = None) -> None:
        self.url = url
        self.retries = retries
        self.safe = safe
        self.deadline = deadline
        self.attempt = 0

    def read_timeout(self, default: float | None) -> float | None:
        """The read timeout of the next try: never past the deadline."""
        if self.deadline is None:
            return default
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the deadline passed")
        return left if default is None else min(left, default)

    def _delay(self, seconds: float) -> float:
        self.attempt += 1
        if self.deadline is not None and time.monotonic() + seconds >= self.deadline:
            raise TimeoutError("the deadline passed")
        return seconds

    def after_error(self, exc: Exception) -> float:
        """Seconds to wait before the next try, or raise: the connection failed."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise TimeoutError("the deadline passed") from exc
        if self.attempt >= self.retries or not retryable_error(exc, self.safe):
            raise unreachable(self.url, exc) from exc
        return self._delay(backoff(self.attempt))

    def after_response(self, response: httpx.Response) -> float | None:
        """None when the answer is a 200, seconds to wait before the next try, or raise.

        A streamed response must have been read (``read()``) when it is not a 200.
        """
        if response.status_code == 200:
            return None
        if self.attempt < self.retries and retryable_status(response):
            return self._delay(backoff(self.attempt, retry_after(response)))
        raise error_from(response)


def still_running(last: Status, timeout: float | None) -> TimeoutError:
    """The TimeoutError of ``run``: which task, in which state, goes on without us."""
    if not last:
        return TimeoutError(f"no answer from the server within {timeout} s")
    return TimeoutError(
        f"task {last.get('key')} is still {last.get('status')} after "
        f"{timeout} s; it goes on on the server"
    )


def task_list(tasks: Task | Iterable[Task]) -> list[Task]:
    return [tasks] if isinstance(tasks, dict) else list(tasks)


def output_of(task: int | str, output: str = "output") -> dict[str, Any]:
    """A chain's reference, in place of a URL in a task definition: the URL in the result
    field ``output`` of ``task`` (the index of an earlier task of the same create, or the
    key of an earlier task). The task waits for it, and reads that file from storage."""
    return {"task": task, "output": output}


def key_list(keys: str | Iterable[str]) -> list[str]:
    return [keys] if isinstance(keys, str) else list(keys)


def storage_path(path: str) -> str:
    """The storage API's URL path of a folder or file (a task key, and a file name)."""
    path = path.strip("/")
    return "/v2/storage/files" + (f"/{quote(path, safe='/')}" if path else "")


def template_path(name: str) -> str:
    """The URL path of one of the account's templates."""
    return f"/v2/templates/{quote(name, safe='')}"


def create_file_path(filename: str) -> str:
    return "/v2/create_file" + (f"/{quote(filename, safe='')}" if filename else "")


REDIRECTS = (301, 302, 303, 307, 308)


def location(response: httpx.Response) -> str | None:
    """Where a ``create_file`` answer redirects: the output file's URL (None if it does not)."""
    if response.status_code in REDIRECTS and response.headers.get("Location"):
        return str(response.headers["Location"])
    return None


def delete_filters(
    urls: Iterable[str] | None,
    since: datetime | str | None,
    until: datetime | str | None,
    max_age: float | None,
    dry_run: bool,
) -> dict[str, Any]:
    """The body of a storage delete: ``urls``, else the folder's files by date or age."""
    body: dict[str, Any] = {"dry_run": dry_run}
    if urls is not None:
        body["urls"] = [urls] if isinstance(urls, str) else list(urls)
    for name, value in (("from", since), ("to", until)):
        if value is not None:
            body[name] = value.isoformat() if isinstance(value, datetime) else str(value)
    if max_age is not None:
        body["max_age"] = max_age
    return body


def file_path(key: str, name: str) -> str:
    """The path of ``/v2/file``, which redirects to the file a task stored as output ``name``."""
    # Dots quoted too: a name of ``.`` or ``..`` would be a dot segment, which HTTP clients
    # resolve away (asking for ``/v2/`` instead), and the output would be skipped unseen.
    segment = quote(name, safe="").replace(".", "%2E")
    return f"/v2/file/{segment}?task={quote(key, safe='')}"


def stored(response: httpx.Response, url: str) -> bool | None:
    """Does the ``/v2/file`` answer confirm that ``url`` is a file the task stored? None when
    it is no answer (a refusal to retry, or an error to raise through ``Attempts``).

    A file the task sent elsewhere (``Dragon-Output: sent``: a video platform's page, an
    object of the account's own signed URL) is the task's output but no file to fetch
    from the server; servers that do not send the header redirect to stored files only."""
    if response.status_code in REDIRECTS:
        location = str(response.headers.get("Location", ""))
        return location == url and response.headers.get("Dragon-Output") != "sent"
    if response.status_code in (200, 404):
        return False
    return None


def outputs(status: Status) -> dict[str, str]:
    """The result's top-level values that are URLs: candidate output files only, since a
    result also carries text from the task's sources (``html.scrape``'s ``page_title``);
    ``Client.files`` keeps those the server says the task stored."""
    result = status.get("result")
    if not isinstance(result, dict):
        return {}
    return {
        name: value
        for name, value in result.items()
        if isinstance(value, str) and value.startswith(("http://", "https://"))
    }


@dataclass
class Follow:
    """Where a status stream is: the keys still pending and the last document of each.

    A dropped stream is resumed by subscribing again to the pending keys; the new stream
    starts with their current statuses, and a document equal to the last one yielded for
    its key is skipped, so a reader sees each change once and never misses a final status.
    """

    pending: dict[str, None] = field(default_factory=dict)
    last: dict[str, Status] = field(default_factory=dict)
    started: bool = False
    drops: int = 0  # drops in a row with no change seen in between

    @classmethod
    def of(cls, keys: Iterable[str]) -> Follow:
        return cls(pending=dict.fromkeys(keys), started=True)

    @property
    def done(self) -> bool:
        return self.started and not self.pending

    def accept(self, value: Any) -> Iterator[Status]:
        """Documents to hand to the reader out of one stream line (the first is a list)."""
        docs = value if isinstance(value, list) else [value]
        if not self.started:
            self.pending = dict.fromkeys(d["key"] for d in docs if d.get("status") not in FINAL)
            self.started = True
        for doc in docs:
            key = doc.get("key")
            if self.last.get(key) == doc:
                continue
            self.last[key] = doc
            if doc.get("status") in FINAL:
                self.pending.pop(key, None)
            yield doc

    def changed(self) -> None:
        """A line after a stream's first arrived: the stream works, drops start over."""
        self.drops = 0

    def resume(self, retries: int, deadline: float | None = None) -> float:
        """The stream ended with tasks still pending: seconds to wait before subscribing
        again to ``request()``, or raise when it keeps dropping (or broke before its first
        line, when nobody knows whether the tasks were created)."""
        if not self.started:
            raise DragonError(
                None,
                [],
                "the stream broke before its first line: the tasks "
                "may or may not have been created",
            )
        if self.drops >= retries:
            raise DragonError(
                None, [], f"the status stream dropped {self.drops + 1} times in a row"
            )
        delay = backoff(self.drops)
        self.drops += 1
        if deadline is not None and time.monotonic() + delay >= deadline:
            raise TimeoutError("the deadline passed")
        return delay

    def request(self) -> tuple[str, dict[str, Any]]:
        """The subscription that picks up where the stream stopped."""
        return "/v2/status_stream", {"tasks": list(self.pending)}


TASK_PAGE_MAX = 200  # the server's largest page of GET /v2/tasks


@dataclass
class TaskPages:
    """Where a reader of ``GET /v2/tasks`` is: the filters it sends with every page, the
    cursor of the next page, and how many more tasks it wants (None: all of them).

    A page is asked for no larger than what is still wanted, so ``limit=5`` reads five
    tasks, not a page of fifty.
    """

    filters: dict[str, Any]
    wanted: int | None = None
    page_size: int = TASK_PAGE_MAX
    cursor: str | None = None
    done: bool = False

    @classmethod
    def of(
        cls,
        status: str | Iterable[str] | None,
        task_name: str | None,
        created_after: datetime | str | float | None,
        created_before: datetime | str | float | None,
        limit: int | None,
    ) -> TaskPages:
        filters: dict[str, Any] = {}
        if status is not None:
            filters["status"] = [status] if isinstance(status, str) else list(status)
        if task_name is not None:
            filters["task_name"] = task_name
        for name, value in (("created_after", created_after), ("created_before", created_before)):
            if value is not None:
                filters[name] = value.isoformat() if isinstance(value, datetime) else str(value)
        return cls(filters, limit, done=limit is not None and limit <= 0)

    def query(self) -> dict[str, Any]:
        size = self.page_size if self.wanted is None else min(self.page_size, self.wanted)
        params = {**self.filters, "limit": str(size)}
        if self.cursor is not None:
            params["cursor"] = self.cursor
        return params

    def accept(self, page: dict[str, Any]) -> list[Status]:
        """The tasks of ``page`` to hand out; the reader is ``done`` after the last page
        or once it has all it wanted."""
        tasks: list[Status] = list(page.get("tasks") or [])
        if self.wanted is not None:
            tasks = tasks[: self.wanted]
            self.wanted -= len(tasks)
        self.cursor = page.get("next_cursor")
        self.done = self.cursor is None or self.wanted == 0 or not tasks
        return tasks


@dataclass
class EventCursor:
    """Where a reader of the event feed is: the cursor of the last event handed out.

    A dropped feed (or a followed one that the server closed, restarting) is read again
    from that cursor, so each event arrives once and none is skipped.
    """

    after: int | None = None
    drops: int = 0  # drops in a row with no event read in between

    def query(self, follow: bool) -> dict[str, str]:
        params = {"follow": "true"} if follow else {}
        if self.after is not None:
            params["after"] = str(self.after)
        return params

    def accept(self, event: Event) -> None:
        cursor = event.get("cursor")
        if isinstance(cursor, int):
            self.after = cursor
        self.drops = 0

    def resume(self, retries: int) -> float:
        """Seconds before reading again, or raise when the feed keeps dropping."""
        if self.drops >= retries:
            raise DragonError(None, [], f"the event feed dropped {self.drops + 1} times in a row")
        delay = backoff(self.drops)
        self.drops += 1
        return delay
