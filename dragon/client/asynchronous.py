"""``AsyncClient``: ``Client`` for asyncio programs, with the same arguments and methods.

Same decisions (``wire``), same requests; ``stream`` and ``create_stream`` are async
iterators, everything else is awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Container, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from dragon.client import config, tus, wire
from dragon.client.files import Destination


class AsyncClient:
    """See ``Client``; use it as ``async with AsyncClient(url, secret) as client:``."""

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
        # The config file (a few hundred bytes) is read here, once, with blocking I/O: the
        # constructor cannot await, and it runs before the client serves any request.
        found = config.resolve(url, secret, look_for_secret=api_key is None)
        self.url = found.url
        self.retries = retries
        self._timeout = timeout
        self._headers = wire.auth_headers(found.secret, api_key, referrer)
        self._http = httpx.AsyncClient(headers={"User-Agent": wire.USER_AGENT})

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the API -------------------------------------------------------------------------

    async def create(
        self, tasks: wire.Task | Iterable[wire.Task], block: bool = False
    ) -> list[wire.Status]:
        body = {"tasks": wire.task_list(tasks), "block": block}
        return await self._call("/v2/create", body, safe=False, wait=block)

    async def status(
        self, keys: str | Iterable[str], block: bool = False, details: bool = False
    ) -> list[wire.Status]:
        body = {"tasks": wire.key_list(keys), "block": block, "details": details}
        return await self._call("/v2/status", body, safe=True, wait=block)

    async def cancel(self, keys: str | Iterable[str]) -> list[wire.Status]:
        """See ``Client.cancel``."""
        return await self._call("/v2/cancel", {"tasks": wire.key_list(keys)}, safe=True, wait=False)

    def stream(self, keys: str | Iterable[str]) -> AsyncIterator[wire.Status]:
        keys = wire.key_list(keys)
        return self._follow(wire.Follow.of(keys), "/v2/status_stream", {"tasks": keys}, True)

    def create_stream(self, tasks: wire.Task | Iterable[wire.Task]) -> AsyncIterator[wire.Status]:
        body = {"tasks": wire.task_list(tasks)}
        return self._follow(wire.Follow(), "/v2/create_stream", body, False)

    async def run(self, task: wire.Task, timeout: float | None = None) -> wire.Status:
        deadline = None if timeout is None else time.monotonic() + timeout
        last: wire.Status = {}
        try:
            async for doc in self._follow(
                wire.Follow(), "/v2/create_stream", {"tasks": [task]}, False, deadline
            ):
                last = doc
        except TimeoutError:
            raise wire.still_running(last, timeout) from None
        return last

    async def events(
        self, after: int | None = None, follow: bool = False
    ) -> AsyncIterator[wire.Event]:
        """See ``Client.events``."""
        cursor = wire.EventCursor(after)
        while True:
            try:
                async with self._open(
                    "GET", "/v2/events", None, True, None, cursor.query(follow)
                ) as response:
                    async for line in response.aiter_lines():
                        if line.strip():
                            event: wire.Event = json.loads(line)
                            cursor.accept(event)
                            yield event
                if not follow:
                    return
            except (httpx.TransportError, httpx.DecodingError, json.JSONDecodeError):
                pass  # dropped: read again from the cursor
            await asyncio.sleep(cursor.resume(self.retries))

    async def tasks(
        self,
        status: str | Iterable[str] | None = None,
        task_name: str | None = None,
        *,
        created_after: datetime | str | float | None = None,
        created_before: datetime | str | float | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[wire.Status]:
        """See ``Client.tasks``."""
        pages = wire.TaskPages.of(status, task_name, created_after, created_before, limit)
        while not pages.done:
            page = await self._request("GET", "/v2/tasks", params=pages.query(), safe=True)
            for doc in pages.accept(page):
                yield doc

    async def create_file(self, task: wire.Task, filename: str = "") -> str:
        """See ``Client.create_file``."""
        body = {"task": task}
        attempts = wire.Attempts(self.url, self.retries, safe=False)
        while True:
            try:
                response = await self._http.post(
                    self.url + wire.create_file_path(filename),
                    json=body,
                    headers=self._headers,
                    timeout=wire.timeout(None),
                )
            except httpx.TransportError as exc:
                await asyncio.sleep(attempts.after_error(exc))
                continue
            url = wire.location(response)
            if url is not None:
                return url
            delay = attempts.after_response(response)
            if delay is None:
                raise wire.error_from(response)
            await asyncio.sleep(delay)

    async def upload(
        self,
        path: str | os.PathLike[str],
        progress: wire.Progress | None = None,
        *,
        url: str | None = None,
        chunk_bytes: int = tus.CHUNK_BYTES,
    ) -> tus.Upload:
        """See ``Client.upload``; the file is read in a thread, a chunk at a time."""
        transfer = await asyncio.to_thread(
            tus.Transfer, self.url, path, retries=self.retries, chunk_bytes=chunk_bytes, url=url
        )
        file = await asyncio.to_thread(open, transfer.path, "rb")
        try:
            while (request := await asyncio.to_thread(transfer.next_request, file)) is not None:
                try:
                    response = await self._http.request(
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
                await asyncio.sleep(delay)
        finally:
            await asyncio.to_thread(file.close)
        return transfer.result()

    async def list_files(self, path: str = "", recursive: bool = False) -> dict[str, Any]:
        """See ``Client.list_files``."""
        params = {"recursive": "true"} if recursive else None
        listing: dict[str, Any] = await self._request(
            "GET", wire.storage_path(path), params=params, safe=True
        )
        return listing

    async def delete_files(
        self,
        path: str = "",
        *,
        urls: Iterable[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        max_age: float | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """See ``Client.delete_files``."""
        body = wire.delete_filters(urls, since, until, max_age, dry_run)
        deleted: dict[str, Any] = await self._request(
            "DELETE", wire.storage_path(path), body=body, safe=True
        )
        return deleted

    async def expiration(self) -> int:
        days: int = await self._request("GET", "/v2/storage/expiration", safe=True)
        return days

    async def set_expiration(self, days: int) -> int:
        kept: int = await self._request(
            "POST", "/v2/storage/expiration", body={"days": days}, safe=True
        )
        return kept

    async def put_template(self, name: str, definition: str) -> dict[str, Any]:
        """See ``Client.put_template``."""
        stored: dict[str, Any] = await self._request(
            "POST", "/v2/templates", body={"name": name, "definition": definition}, safe=True
        )
        return stored

    async def template(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._request("GET", wire.template_path(name), safe=True)
        return found

    async def templates(self) -> list[dict[str, Any]]:
        listing: dict[str, Any] = await self._request("GET", "/v2/templates", safe=True)
        templates: list[dict[str, Any]] = listing["templates"]
        return templates

    async def delete_template(self, name: str) -> None:
        await self._request("DELETE", wire.template_path(name), safe=True)

    @staticmethod
    def outputs(status: wire.Status) -> dict[str, str]:
        return wire.outputs(status)

    async def files(self, status: wire.Status) -> dict[str, str]:
        """See ``Client.files``."""
        key = status.get("key")
        if not isinstance(key, str):
            return {}
        return {
            name: url
            for name, url in wire.outputs(status).items()
            if await self._stored(key, name, url)
        }

    async def download(
        self,
        url: str,
        to: str | os.PathLike[str] = ".",
        progress: wire.Progress | None = None,
        *,
        avoid: Container[str] = (),
        name: str | None = None,
    ) -> Path:
        """See ``Client.download``; file writes go through a thread."""
        attempts = wire.Attempts(url, self.retries, safe=True)
        while True:
            try:
                async with self._http.stream(
                    "GET", url, follow_redirects=True, timeout=wire.timeout(self._timeout)
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                    else:
                        dest = Destination(Path(to), url, response.headers, avoid, name)
                        with dest.open() as f:
                            async for chunk in response.aiter_bytes():
                                await asyncio.to_thread(f.write, chunk)
                                if progress:
                                    progress(dest.add(len(chunk)), dest.total)
                        return dest.path
                    delay = attempts.after_response(response)
            except httpx.TransportError as exc:
                delay = attempts.after_error(exc)
            await asyncio.sleep(delay or 0.0)

    # -- plumbing ------------------------------------------------------------------------

    async def _stored(self, key: str, name: str, url: str) -> bool:
        """See ``Client._stored``."""
        attempts = wire.Attempts(self.url, self.retries, safe=True)
        while True:
            try:
                response = await self._http.get(
                    self.url + wire.file_path(key, name),
                    headers=self._headers,
                    timeout=wire.timeout(self._timeout),
                )
            except httpx.TransportError as exc:
                await asyncio.sleep(attempts.after_error(exc))
                continue
            verdict = wire.stored(response, url)
            if verdict is not None:
                return verdict
            await asyncio.sleep(attempts.after_response(response) or 0.0)

    async def _call(
        self, path: str, body: dict[str, Any], *, safe: bool, wait: bool
    ) -> list[wire.Status]:
        statuses: list[wire.Status] = await self._request(
            "POST", path, body=body, safe=safe, wait=wait
        )
        return statuses

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        safe: bool,
        wait: bool = False,
    ) -> Any:
        """See ``Client._request``."""
        attempts = wire.Attempts(self.url, self.retries, safe)
        while True:
            try:
                read = attempts.read_timeout(None if wait else self._timeout)
                response = await self._http.request(
                    method,
                    self.url + path,
                    json=body,
                    params=params,
                    headers=self._headers,
                    timeout=wire.timeout(read),
                )
            except httpx.TransportError as exc:
                await asyncio.sleep(attempts.after_error(exc))
                continue
            delay = attempts.after_response(response)
            if delay is None:
                return response.json()
            await asyncio.sleep(delay or 0.0)

    @contextlib.asynccontextmanager
    async def _open(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        safe: bool,
        deadline: float | None,
        params: dict[str, str] | None = None,
    ) -> AsyncIterator[httpx.Response]:
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
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                await asyncio.sleep(attempts.after_error(exc))
                continue
            try:
                if response.status_code == 200:
                    yield response
                    return
                await response.aread()
                delay = attempts.after_response(response)
            finally:
                await response.aclose()
            await asyncio.sleep(delay or 0.0)

    async def _follow(
        self,
        follow: wire.Follow,
        path: str,
        body: dict[str, Any],
        safe: bool,
        deadline: float | None = None,
    ) -> AsyncIterator[wire.Status]:
        while True:
            try:
                async with self._open("POST", path, body, safe, deadline) as response:
                    first = True
                    async for line in response.aiter_lines():
                        if not line.strip():
                            continue
                        value = json.loads(line)
                        if not first:
                            follow.changed()
                        first = False
                        for doc in follow.accept(value):
                            yield doc
            except (httpx.TransportError, httpx.DecodingError, json.JSONDecodeError):
                pass  # dropped: resumed below from what was seen
            if follow.done:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("the deadline passed")
            await asyncio.sleep(follow.resume(self.retries, deadline))
            path, body = follow.request()
            safe = True
