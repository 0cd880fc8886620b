"""``dragon run``, ``status``, ``cancel`` and ``download``: the SDK on the command line.

Output is for scripts: stdout only ever gets JSON (one document per line), progress and
messages go to stderr, as a live bar when stderr is a terminal and as plain lines otherwise
(logs, CI). Exit codes: 0 success, 1 a task ended in error (or has nothing to download,
or a key to cancel names no task of the account), 2 usage or HTTP errors (bad credentials,
an unreachable server), 130 interrupted (Ctrl-C). The SDK (and httpx, rich) is imported
when a command runs, so ``dragon serve`` does not pay for it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from dragon.client.sync import Client

DEFAULT_URL = "http://127.0.0.1:8080"
# Written by ``dragon serve`` (``make run``) in its data dir: see ``cli.default_account``.
DEFAULT_ACCOUNT_FILE = "default-account.json"
USAGE, TASK_FAILED, INTERRUPTED = 2, 1, 130


class UsageError(Exception):
    """Bad command-line input: exit 2 with the message, as argparse does."""


# -- arguments -------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_field(item: str) -> tuple[str, Any]:
    """One HTTPie-style field: ``name=text`` is a string, ``name:=json`` raw JSON.

    The name ends at the first ``=`` (so values may hold ``=``, as URLs do).
    """
    eq = item.find("=")
    if eq <= 0:
        raise UsageError(f"{item!r} is not field=value or field:=json")
    if item[eq - 1] == ":":
        name, raw = item[: eq - 1], item[eq + 1 :]
        if not name:
            raise UsageError(f"{item!r} has no field name")
        try:
            return name, json.loads(raw, parse_constant=_reject_constant)
        except ValueError:
            raise UsageError(f"{name}: {raw!r} is not valid JSON") from None
    return item[:eq], item[eq + 1 :]


def task_definition(task_name: str, items: list[str], store: str | None) -> dict[str, Any]:
    task: dict[str, Any] = {"task_name": task_name}
    for item in items:
        name, value = parse_field(item)
        if name == "task_name":
            raise UsageError("task_name is the first argument, not a field")
        if name in task:
            raise UsageError(f"{name} is given twice")
        task[name] = value
    if store is not None:
        try:
            task["task_store"] = json.loads(store, parse_constant=_reject_constant)
        except ValueError:
            raise UsageError(f"--store: {store!r} is not valid JSON") from None
        if not isinstance(task["task_store"], dict):
            raise UsageError('--store must be a JSON object, e.g. {"type": "volatile"}')
    return task


def connection(server: str | None, secret: str | None) -> tuple[str, str]:
    """Server URL and secret: options, then DRAGON_URL/DRAGON_SECRET; with neither, the
    default account that ``make run`` keeps in its data dir, on the default local address.

    That account is never used when a server was named: its secret would go to a server
    it does not belong to.
    """
    url = server or os.environ.get("DRAGON_URL")
    secret = secret or os.environ.get("DRAGON_SECRET")
    if not url and not secret:
        path = Path(os.environ.get("DRAGON_DATA_DIR", "var")) / DEFAULT_ACCOUNT_FILE
        try:
            secret = json.loads(path.read_text())["secret"]
        except (OSError, ValueError, KeyError, TypeError):
            secret = None
    if not secret:
        raise UsageError(
            "no credentials: pass --secret or set DRAGON_SECRET (with neither --server nor "
            f"DRAGON_URL, the account `make run` keeps in ./var/{DEFAULT_ACCOUNT_FILE} is used)"
        )
    return url or DEFAULT_URL, secret


# -- progress on stderr ----------------------------------------------------------------------


class TaskProgress:
    """A task's progress on stderr: a rich bar on a terminal, else a line per change."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.bars = None
        self.bar_of: dict[str, Any] = {}
        self.lines: dict[str, str] = {}
        if err.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=Console(file=err),
            )
            self.bars.start()

    def update(self, doc: dict[str, Any]) -> None:
        key, status, progress = doc.get("key", "?"), doc.get("status"), doc.get("progress")
        if self.bars is None:
            line = f"{key} {status}" + (f" {progress:.0f}%" if progress is not None else "")
            if self.lines.get(key) != line:
                self.lines[key] = line
                print(line, file=self.err, flush=True)
            return
        if key not in self.bar_of:
            self.bar_of[key] = self.bars.add_task(key, total=None)
        done = status in ("success", "error")
        self.bars.update(
            self.bar_of[key],
            description=f"{key} {status}",
            total=100 if done or progress is not None else None,
            completed=100 if status == "success" else (progress or 0),
        )

    def close(self) -> None:
        if self.bars is not None:
            self.bars.stop()
            self.bars = None


class DownloadProgress:
    """Bytes of one download on stderr: a rich bar on a terminal, else one line when done."""

    def __init__(self, err: TextIO, label: str) -> None:
        self.err = err
        self.label = label
        self.bars = None
        if err.isatty():
            from rich.console import Console
            from rich.markup import escape
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            self.bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(file=err),
            )
            self.bar = self.bars.add_task(escape(label), total=None)
            self.bars.start()

    def __call__(self, done: int, total: int | None) -> None:
        if self.bars is not None:
            self.bars.update(self.bar, completed=done, total=total)

    def close(self, path: Path | None) -> None:
        """Stop the bar; ``path`` is None when the download failed."""
        if self.bars is not None:
            self.bars.stop()
        elif path is not None:
            print(f"{self.label}: {path} ({path.stat().st_size} bytes)", file=self.err, flush=True)


def error_message(doc: dict[str, Any]) -> str:
    error = doc.get("error")
    text = error if isinstance(error, str) else json.dumps(error)
    code = doc.get("error_code")
    return f"task {doc.get('key')} ended in error" + (f" ({code})" if code else "") + f": {text}"


def emit(doc: Any, out: TextIO) -> None:
    print(json.dumps(doc), file=out, flush=True)


# -- commands --------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dragon.client import Client

    task = task_definition(args.task_name, args.fields, args.store)
    url, secret = connection(args.server, args.secret)
    with Client(url, secret) as client:
        if args.no_wait:
            final = client.create([task])[0]
        else:
            progress = TaskProgress(err)
            final = {}
            try:
                for doc in client.create_stream([task]):
                    progress.update(doc)
                    final = doc
            except KeyboardInterrupt:
                progress.close()  # before any question: the bar would draw over it
                return interrupted(client, final, out, err)
            finally:
                progress.close()
    emit(final, out)
    if final.get("status") == "error":
        print(f"dragon: {error_message(final)}", file=err)
        return TASK_FAILED
    return 0


def interrupted(client: Client, final: dict[str, Any], out: TextIO, err: TextIO) -> int:
    """Ctrl-C while ``dragon run`` follows its task: on a terminal, offer to cancel the task
    (its cancelled status then goes to stdout); otherwise, or if declined, say how to follow
    it and how to cancel it, since it goes on on the server."""
    key = final.get("key")
    if not key or final.get("status") in ("success", "error"):
        return INTERRUPTED
    if confirm(f"\ndragon: cancel task {key}? [y/N] ", err):
        doc = client.cancel([key])[0]
        emit(doc, out)
        print(f"dragon: task {key} {describe_cancel(doc)}", file=err)
        return INTERRUPTED
    print(
        f"\ndragon: task {key} goes on; follow it with `dragon status --follow {key}`,"
        f" cancel it with `dragon cancel {key}`",
        file=err,
    )
    return INTERRUPTED


def confirm(question: str, err: TextIO) -> bool:
    """Ask ``question`` on a terminal; False without one (nobody to answer), on anything but
    yes, and on a second Ctrl-C or the end of input."""
    if not sys.stdin.isatty():
        return False
    print(question, end="", file=err, flush=True)
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        return False
    return answer.strip().lower() in ("y", "yes")


def describe_cancel(doc: dict[str, Any]) -> str:
    """What a cancel did to one task, from its status after it, for people."""
    if doc.get("error_code") == "cancelled":
        return "cancelled"
    if doc.get("error_code") == "unknown_task":
        return "unknown (no task of this account has this key)"
    return f"had ended already ({doc.get('status')})"


def cmd_cancel(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dragon.client import Client

    url, secret = connection(args.server, args.secret)
    with Client(url, secret) as client:
        docs = client.cancel(args.keys)
    for doc in docs:
        emit(doc, out)
        print(f"dragon: task {doc.get('key')} {describe_cancel(doc)}", file=err)
    unknown = any(doc.get("error_code") == "unknown_task" for doc in docs)
    return TASK_FAILED if unknown else 0


def cmd_status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dragon.client import Client

    url, secret = connection(args.server, args.secret)
    with Client(url, secret) as client:
        if not args.follow:
            for doc in client.status(args.keys, details=args.details):
                emit(doc, out)
            return 0
        for doc in client.stream(args.keys):
            if args.details and doc.get("status") in ("success", "error"):
                doc = client.status([doc["key"]], details=True)[0]
            emit(doc, out)
    return 0


def cmd_download(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dragon.client import Client

    url, secret = connection(args.server, args.secret)
    with Client(url, secret) as client:
        status = client.status([args.key], block=True)[0]
        if status.get("status") == "error":
            print(f"dragon: {error_message(status)}", file=err)
            return TASK_FAILED
        outputs = client.files(status)
        if not outputs:
            print(f"dragon: task {args.key} has no output files", file=err)
            return TASK_FAILED
        saved: set[str] = set()
        failed = 0
        for name, file_url in outputs.items():
            progress = DownloadProgress(err, printable(name))
            path = None
            try:
                path = client.download(file_url, args.to, progress=progress, avoid=saved)
            except (ValueError, OSError) as exc:  # a name the file system cannot take
                print(f"dragon: could not save {printable(name)}: {exc}", file=err)
                failed += 1
                continue
            finally:
                progress.close(path)
            saved.add(path.name)
            emit(
                {"name": name, "url": file_url, "path": str(path), "size": path.stat().st_size}, out
            )
    return TASK_FAILED if failed else 0


def printable(text: str, most: int = 100) -> str:
    """``text`` safe for a terminal: no control characters (escape sequences), kept short."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= most else clean[: most - 3] + "..."


# A command: its parsed arguments, stdout and stderr in; the exit status out.
Command = Callable[[argparse.Namespace, TextIO, TextIO], int]


def _main(command: Command) -> Callable[[argparse.Namespace], int]:
    """Run a command with the exit codes above: usage and HTTP errors are 2."""

    def run(args: argparse.Namespace) -> int:
        from dragon.client import DragonError

        try:
            return command(args, sys.stdout, sys.stderr)
        except UsageError as exc:
            print(f"dragon {args.command}: error: {exc}", file=sys.stderr)
            return USAGE
        except DragonError as exc:
            print(f"dragon: {exc}", file=sys.stderr)
            return USAGE
        except KeyboardInterrupt:
            return INTERRUPTED

    return run


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``run``, ``status``, ``cancel`` and ``download`` on the ``dragon`` parser."""
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--server", help=f"server URL (DRAGON_URL, default {DEFAULT_URL})")
    server.add_argument("--secret", help="account secret (DRAGON_SECRET)")

    r = sub.add_parser(
        "run",
        parents=[server],
        help="run a task and print its final status",
        description="Create a task, show its progress on stderr, print its final status "
        "as one JSON line. Exit 0 on success, 1 when the task ends in error, 2 on usage "
        "or HTTP errors.",
    )
    r.add_argument("task_name", help="e.g. image.thumb")
    r.add_argument(
        "fields",
        nargs="*",
        metavar="field=value|field:=json",
        help="task parameters: name=text for strings, name:=json for numbers, booleans, "
        "lists and objects (width:=200 loop:=true images:='[\"https://...\"]')",
    )
    r.add_argument("--store", metavar="JSON", help='task_store, e.g. \'{"type": "volatile"}\'')
    r.add_argument("--no-wait", action="store_true", help="print the created status at once")
    r.set_defaults(func=_main(cmd_run))

    s = sub.add_parser(
        "status",
        parents=[server],
        help="print task statuses (NDJSON)",
        description="Print the status of each task as one JSON line.",
    )
    s.add_argument("keys", nargs="+", metavar="KEY")
    s.add_argument(
        "--details",
        action="store_true",
        help="add task_name, parameters, store, attempts and callbacks",
    )
    s.add_argument(
        "--follow",
        action="store_true",
        help="print each change until every task has ended (with --details, "
        "final statuses carry the details)",
    )
    s.set_defaults(func=_main(cmd_status))

    c = sub.add_parser(
        "cancel",
        parents=[server],
        help="cancel tasks (NDJSON statuses)",
        description="Cancel tasks: queued ones end at once, executing ones are stopped. "
        "Prints each task's status after the cancel as one JSON line (error, error_code "
        "cancelled; a task that had ended is printed as it is). Exit 0, or 1 when a key "
        "names no task of the account.",
    )
    c.add_argument("keys", nargs="+", metavar="KEY")
    c.set_defaults(func=_main(cmd_cancel))

    d = sub.add_parser(
        "download",
        parents=[server],
        help="save a task's output files",
        description="Wait for the task to end and save its output files; prints one JSON "
        "line per file (name, url, path, size).",
    )
    d.add_argument("key", metavar="KEY")
    d.add_argument("--to", default=".", metavar="DIR", help="folder (default: here)")
    d.set_defaults(func=_main(cmd_download))
