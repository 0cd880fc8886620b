"""Task chains: a task whose input is another task's output (docs/api.md, "Task chains").

Wherever a definition holds a value, ``{"task": 0, "output": "output"}`` may stand for the
URL that the result field ``output`` (the default) of another task holds: ``task`` is the
index of an earlier definition of the same create, or the key of an earlier task of the
same account. A create resolves each reference to its task's key (``link``), stores it so,
and the new task waits (``waiting_for``) until its inputs have ended; the database releases
it in the transaction of the last one's end. When it runs, ``resolve`` replaces each
reference by the output's URL, and the task's fetcher (``StoredInputs``) reads the files
this server stored from storage instead of over HTTP.

Indexes may only point backwards and keys only at tasks that exist, so a chain cannot
loop: a cycle or a forward reference is refused with a 400, like any malformed request.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, cast

from dragon import errors
from dragon.database.rows import FileRow, TaskRow
from dragon.engine.documents import from_json
from dragon.net.fetcher import Download, human_size
from dragon.net.sniff import extension, sniff_file
from dragon.tasks.context import Fetcher

DEFAULT_OUTPUT = "output"
REFERENCE_FIELDS = frozenset({"task", "output"})
MAX_DEPTH = 16  # how deep in a definition references are looked for
ENDED = ("success", "error")


def is_reference(value: object) -> bool:
    """Does ``value`` stand for another task's output (an object with ``task``, and at most
    ``output`` besides)?"""
    return isinstance(value, dict) and "task" in value and value.keys() <= REFERENCE_FIELDS


def _references(value: object, depth: int = 0) -> Iterator[dict[str, Any]]:
    """The references in a definition's values, in document order."""
    if depth > MAX_DEPTH:
        return
    if is_reference(value):
        assert isinstance(value, dict)
        yield value
    elif isinstance(value, dict):
        for name, item in value.items():
            if name != "task_name":
                yield from _references(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item, depth + 1)


def _replaced(value: object, replace: Callable[[dict[str, Any]], object], depth: int = 0) -> object:
    """``value`` with each reference in it replaced by ``replace(reference)``."""
    if depth > MAX_DEPTH:
        return value
    if is_reference(value):
        assert isinstance(value, dict)
        return replace(value)
    if isinstance(value, dict):
        return {
            k: v if k == "task_name" else _replaced(v, replace, depth + 1) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_replaced(item, replace, depth + 1) for item in value]
    return value


def _replaced_in(
    definition: dict[str, Any], replace: Callable[[dict[str, Any]], object]
) -> dict[str, Any]:
    """``_replaced`` of a definition: a JSON object stays one (references are values)."""
    return cast(dict[str, Any], _replaced(definition, replace))


# -- at create ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Link:
    """One definition of a create, as far as chains go."""

    stored: dict[str, Any]  # the definition to store: references name their task's key
    checked: dict[str, Any]  # the definition to validate: references as stand-in URLs
    inputs: list[str]  # the keys of the tasks it reads, in order, each once


def _refused(index: int, why: str) -> errors.RequestError:
    return errors.RequestError("tasks", f"tasks[{index}]: {why}")


def _target(index: int, reference: dict[str, Any]) -> int | str:
    """A reference's task, checked for its shape and for pointing backwards."""
    task, output = reference["task"], reference.get("output", DEFAULT_OUTPUT)
    if not isinstance(output, str) or not output:
        raise _refused(index, "a task reference's output must be the name of a result field")
    if isinstance(task, bool) or not isinstance(task, int | str) or task == "":
        raise _refused(index, "a task reference's task must be an index in this list or a task key")
    if isinstance(task, int) and not 0 <= task < index:
        why = "itself" if task == index else f"tasks[{task}]"
        raise _refused(
            index,
            f"refers to {why}: a task may only read the output of an earlier task of the"
            " list (or of an earlier task, by its key), so chains never loop",
        )
    return task


def earlier_keys(definitions: list[dict[str, Any]]) -> list[str]:
    """The keys of earlier tasks the definitions refer to; raises ``RequestError`` (400) for
    a malformed reference, a forward one or one to itself."""
    keys: dict[str, None] = {}
    for index, definition in enumerate(definitions):
        for reference in _references(definition):
            target = _target(index, reference)
            if isinstance(target, str):
                keys[target] = None
    return list(keys)


def link(
    definitions: list[dict[str, Any]], keys: list[str], known: Mapping[str, object]
) -> list[Link]:
    """Each definition with its references resolved to task keys (``keys`` are the new
    tasks', in order; ``known``, the account's earlier tasks that are referred to)."""
    return [_link(index, d, keys, known) for index, d in enumerate(definitions)]


def _link(
    index: int, definition: dict[str, Any], keys: list[str], known: Mapping[str, object]
) -> Link:
    inputs: dict[str, None] = {}

    def key_of(reference: dict[str, Any]) -> dict[str, str]:
        target = _target(index, reference)
        if isinstance(target, str) and target not in known:
            raise _refused(index, f"refers to {target[:100]!r}, not a task of this account")
        key = keys[target] if isinstance(target, int) else target
        inputs[key] = None
        return {"task": key, "output": reference.get("output", DEFAULT_OUTPUT)}

    stored = _replaced_in(definition, key_of)
    return Link(stored, _replaced_in(stored, _stand_in), list(inputs))


def _stand_in(reference: dict[str, Any]) -> str:
    """What a reference is validated as: a URL, as the output will be."""
    return f"https://{str(reference['task']).lower()}.task.invalid/{reference['output']}"


def failed_input(inputs: list[str], row_of: Callable[[str], Mapping[str, Any]]) -> str | None:
    """Why a new task cannot run because an input task has already failed, or None."""
    for key in inputs:
        row = row_of(key)
        if row["status"] == "error":
            return failure(key, row)
    return None


def failure(key: str, row: Mapping[str, Any]) -> str:
    """The error of a task whose input task ``key`` (``row``) did not succeed."""
    return f"input task {key} ({row['task_name']}) ended in error ({row['error_code']})"


# -- at run ---------------------------------------------------------------------------------
class Inputs(Protocol):
    """What ``resolve`` reads: the input tasks, and the files they stored."""

    async def get_tasks(self, keys: list[str], account_id: int) -> list[TaskRow]: ...
    async def file_for_output(self, task_key: str, output: str) -> FileRow | None: ...


async def resolve(
    db: Inputs, account_id: int, params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, FileRow]]:
    """``params`` with each reference replaced by its output's URL, and the stored file of
    each such URL this server keeps (read from storage, not fetched). Raises ``TaskError``
    ``dependency_failed`` when an input task did not succeed or has no such output."""
    references = list(_references(params))
    if not references:
        return params, {}
    keys = list(dict.fromkeys(str(r["task"]) for r in references))
    rows = {r["key"]: r for r in await db.get_tasks(keys, account_id)}
    urls: dict[tuple[str, str], str] = {}
    for reference in references:
        key, output = str(reference["task"]), str(reference.get("output", DEFAULT_OUTPUT))
        urls[key, output] = _output_url(key, output, rows.get(key))
    found = await asyncio.gather(*(db.file_for_output(k, o) for k, o in urls))
    files = {
        url: file
        for url, file in zip(urls.values(), found, strict=True)
        if file is not None and file["url"] == url
    }

    def url_of(reference: dict[str, Any]) -> str:
        return urls[str(reference["task"]), str(reference.get("output", DEFAULT_OUTPUT))]

    return _replaced_in(params, url_of), files


def _output_url(key: str, output: str, row: TaskRow | None) -> str:
    """The URL the input task ``key`` left in its result field ``output``."""
    if row is None:
        raise errors.TaskError(errors.DEPENDENCY_FAILED, f"input task {key} no longer exists")
    if row["status"] != "success":
        if row["status"] not in ENDED:  # released early: never, the database waits for it
            raise errors.TaskError(errors.DEPENDENCY_FAILED, f"input task {key} has not ended")
        raise errors.TaskError(errors.DEPENDENCY_FAILED, failure(key, row))
    result = row["result"]
    value = _field(result, output)
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise errors.TaskError(
            errors.DEPENDENCY_FAILED,
            f"input task {key} ({row['task_name']}) has no output {output[:100]!r}",
        )
    return value


def _field(result: str | None, name: str) -> object:
    value = from_json(result)
    return value.get(name) if isinstance(value, dict) else None


class StoredInputs:
    """A task's fetcher that reads the outputs of its input tasks from storage.

    Any other URL goes to the fetcher it wraps, as does an output this server does not
    keep (one its store sent elsewhere), whose URL is fetched like any other."""

    def __init__(
        self,
        fetcher: Fetcher,
        files: Mapping[str, FileRow],
        read_into: Callable[[FileRow, Path], Awaitable[None]],
    ) -> None:
        self.fetcher = fetcher
        self.files = files
        self.read_into = read_into

    async def download(self, url: str, dest_dir: Path, *, max_bytes: int | None = None) -> Download:
        file = self.files.get(url)
        if file is None:
            return await self.fetcher.download(url, dest_dir, max_bytes=max_bytes)
        if max_bytes is not None and file["size"] > max_bytes:
            raise errors.TaskError(
                errors.DOWNLOAD_TOO_LARGE,
                f"input task {file['task_key']}'s output {file['output']!r} is"
                f" {human_size(file['size'])}; the limit is {human_size(max_bytes)}",
            )
        path = Path(dest_dir) / "source"
        try:
            await self.read_into(file, path)
        except Exception as exc:
            raise errors.TaskError(
                errors.STORAGE_ERROR,
                f"could not read the output {file['output']!r} of input task"
                f" {file['task_key']} from storage",
            ) from exc
        mime = await asyncio.to_thread(sniff_file, path)
        final = path.with_name(path.name + extension(mime))
        await asyncio.to_thread(path.rename, final)
        return Download(path=final, mime=mime, size=file["size"], url=url)
