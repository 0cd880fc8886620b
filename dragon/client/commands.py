"""``dragon run|status|cancel|download|upload|events|tasks|storage|create-file|login``: the
SDK on the command line.

Output is for scripts: stdout only ever gets JSON (one document per line; indented for a
reader when stdout is a terminal), progress and messages go to stderr, as a live bar when
stderr is a terminal and as plain lines otherwise (logs, CI). Exit codes: 0 success, 1 a
task ended in error (or has nothing to download, or a key to cancel names no task of the
account), 2 usage or HTTP errors (bad credentials, an unreachable server), 130 interrupted
(Ctrl-C). The SDK (and httpx, rich) is imported when a command runs, so ``dragon serve``
does not pay for it.
"""

from __future__ import annotations

import argparse
import getpass
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Container
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from dragon.client.config import DEFAULT_URL, ConfigError, resolve

if TYPE_CHECKING:
    from dragon.client.sync import Client

__all__ = ["DEFAULT_URL", "UsageError", "add_commands", "connection", "parse_field"]

USAGE, TASK_FAILED, INTERRUPTED = 2, 1, 130
EXIT_CODES = (
    "exit status: 0 success, 1 a task ended in error (or has no file to save, or a key to "
    "cancel names no task of the account), 2 a usage or HTTP error (bad credentials, an "
    "unreachable server), 130 interrupted by Ctrl-C"
)


class UsageError(Exception):
    """Bad command-line input: exit 2 with the message, as argparse does."""


# -- arguments -------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_field(item: str) -> tuple[str, Any]:
    """One HTTPie-style field: ``name=text`` is a string, ``name:=json`` raw JSON,
    ``name=@file`` the file's text and ``name:=@file.json`` the JSON the file holds
    (``name=\\@text`` is the text ``@text``).

    The name ends at the first ``=`` (so values may hold ``=``, as URLs do).
    """
    eq = item.find("=")
    if eq <= 0:
        raise UsageError(f"{item!r} is not field=value or field:=json")
    if item[eq - 1] == ":":
        name, raw = item[: eq - 1], item[eq + 1 :]
        if not name:
            raise UsageError(f"{item!r} has no field name")
        if raw.startswith("@"):
            raw = read_file(name, raw[1:])
        try:
            return name, json.loads(raw, parse_constant=_reject_constant)
        except ValueError:
            raise UsageError(f"{name}: {raw[:200]!r} is not valid JSON") from None
    name, value = item[:eq], item[eq + 1 :]
    if value.startswith("@"):
        return name, read_file(name, value[1:])
    if value.startswith("\\@"):
        return name, value[1:]
    return name, value


def read_file(field: str, path: str) -> str:
    """The text of the file a ``field=@path`` names (UTF-8)."""
    if not path:
        raise UsageError(
            f"{field}: @ names no file (write {field}=\\@text for a text that starts with @)"
        )
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{field}: cannot read {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{field}: {path!r} is not UTF-8 text") from None


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


CHAIN = "+"  # between the tasks of a chain on ``dragon run``'s command line


def task_definitions(task_name: str, items: list[str], store: str | None) -> list[dict[str, Any]]:
    """One task, or several separated by ``+`` (each: its name, then its fields), which may
    read each other's outputs (``url:='{"task": 0}'``: a chain, docs/api.md)."""
    groups: list[list[str]] = [[task_name]]
    for item in items:
        if item == CHAIN:
            groups.append([])
        else:
            groups[-1].append(item)
    if not all(groups):
        raise UsageError(f"{CHAIN} must be followed by a task name")
    return [task_definition(group[0], group[1:], store) for group in groups]


def connection(server: str | None, secret: str | None) -> tuple[str, str]:
    """Server URL and secret: the options, else as the SDK finds them (``dragon.client.config``:
    DRAGON_URL/DRAGON_SECRET, the file ``dragon login`` wrote, the ``make run`` account)."""
    try:
        found = resolve(server, secret)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if not found.secret:
        raise UsageError(
            f"no credentials for {found.url}: pass --secret, set DRAGON_SECRET, or run "
            "`dragon login` (next to `make run`, with no server named, its account in "
            "./var/default-account.json is used)"
        )
    return found.url, found.secret


# -- progress on stderr ----------------------------------------------------------------------


def has_rich() -> bool:
    """Whether rich is installed: the server's install has it, the client distribution only
    with its ``bars`` extra; without it a terminal gets the plain progress lines too."""
    return importlib.util.find_spec("rich") is not None


class TaskProgress:
    """A task's progress on stderr: a rich bar on a terminal, else a line per change."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.bars = None
        self.bar_of: dict[str, Any] = {}
        self.lines: dict[str, str] = {}
        if err.isatty() and has_rich():
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


class TransferProgress:
    """Bytes of one download or upload on stderr: a rich bar on a terminal, else one line
    when done."""

    def __init__(self, err: TextIO, label: str) -> None:
        self.err = err
        self.label = label
        self.bars = None
        if err.isatty() and has_rich():
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

    def close(self, path: Path | None, verb: str = "") -> None:
        """Stop the bar; ``path`` is None when the transfer failed. ``verb``: what was done
        with the file, when it is not the path saved (``sent``)."""
        if self.bars is not None:
            self.bars.stop()
        elif path is not None:
            size = path.stat().st_size
            told = f"{verb} {size} bytes" if verb else f"{path} ({size} bytes)"
            print(f"{self.label}: {told}", file=self.err, flush=True)


def emit(doc: Any, out: TextIO) -> None:
    """One JSON document on stdout: a line for a program, indented for a reader."""
    if out.isatty():
        print(json.dumps(doc, indent=2, ensure_ascii=False), file=out, flush=True)
    else:
        print(json.dumps(doc), file=out, flush=True)


def ended(final: dict[str, Any], out: TextIO, err: TextIO) -> int:
    """Print a task's final status, its warnings and its error; the exit status."""
    from dragon.client.wire import task_error

    emit(final, out)
    result = final.get("result")
    warnings = result.get("warnings") if isinstance(result, dict) else None
    for warning in warnings if isinstance(warnings, list) else []:
        print(f"dragon: warning: {printable(str(warning), 500)}", file=err)
    if final.get("status") == "error":
        print(f"dragon: {task_error(final)}", file=err)
        return TASK_FAILED
    return 0


# -- commands --------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dragon.client import Client

    tasks = task_definitions(args.task_name, args.fields, args.store)
    url, secret = connection(args.server, args.secret)
    with Client(url, secret) as client:
        if args.no_wait:
            for doc in client.create(tasks):
                emit(doc, out)
            return 0
        progress = TaskProgress(err)
        final: dict[str, dict[str, Any]] = {}  # by key, in request order
        try:
            for doc in client.create_stream(tasks):
                progress.update(doc)
                final[doc.get("key", "")] = doc
        except KeyboardInterrupt:
            progress.close()  # before any question: the bar would draw over it
            return interrupted(client, unfinished(final), out, err)
        finally:
            progress.close()
    return max([ended(doc, out, err) for doc in final.values()], default=0)


def unfinished(final: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The first task of a run that has not ended (the one a Ctrl-C offers to cancel)."""
    docs = list(final.values())
    return next(
        (d for d in docs if d.get("status") not in ("success", "error")), docs[-1] if docs else {}
    )


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


class Taken(Container[str]):
    """File names a download must not write to: saved before by it, or already in the
    folder (another task's ``output.jpg``). A taken name gets a number: ``output-2.jpg``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.saved: set[str] = set()

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return name in self.saved or (self.folder / name).exists()


def cmd_download(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dragon.client import Client
    from dragon.client.wire import task_error

    url, secret = connection(args.server, args.secret)
    with Client(url, secret) as client:
        status = client.status([args.key], block=True)[0]
        if status.get("status") == "error":
            print(f"dragon: {task_error(status)}", file=err)
            return TASK_FAILED
        outputs = client.files(status)
        if not outputs:
            print(f"dragon: task {args.key} has no output files", file=err)
            return TASK_FAILED
        taken = Taken(Path(args.to))
        failed = 0
        for name, file_url in outputs.items():
            path = save(client, name, file_url, args.to, taken, err)
            if path is None:
                failed += 1
                continue
            emit(
                {"name": name, "url": file_url, "path": str(path), "size": path.stat().st_size}, out
            )
    return TASK_FAILED if failed else 0


def save(client: Client, name: str, url: str, to: str, taken: Taken, err: TextIO) -> Path | None:
    """Save the output ``name`` as ``NAME.ext`` in ``to``, with its progress on stderr;
    None (and a message) when the file system cannot take it."""
    progress = TransferProgress(err, printable(name))
    path = None
    try:
        path = client.download(url, to, progress=progress, avoid=taken, name=name)
    except (ValueError, OSError) as exc:  # a name the file system cannot take
        print(f"dragon: could not save {printable(name)}: {exc}", file=err)
        return None
    finally:
        progress.close(path)
    assert isinstance(path, Path)
    taken.saved.add(path.name)
    return path


def cmd_upload(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dragon.client import Client

    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{args.file}: no such file")
    url, secret = connection(args.server, args.secret)
    with Client(url, secret) as client:
        progress = TransferProgress(err, printable(args.file))
        done = None
        try:
            upload = client.upload(path, progress, url=args.resume)
            done = path
        finally:
            progress.close(done, "sent")
        emit({"input": upload.ref, "url": upload.url, "size": upload.size}, out)
    return 0


def cmd_events(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dragon.client import Client

    url, secret = connection(args.server, args.secret)
    with Client(url, secret) as client:
        for event in client.events(after=args.after, follow=args.follow):
            emit(event, out)
    return 0


def cmd_tasks(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dragon.client import Client

    statuses = [s.strip() for value in args.status or [] for s in value.split(",") if s.strip()]
    if args.limit < 1:
        raise UsageError("--limit must be 1 or more")
    url, secret = connection(args.server, args.secret)
    with Client(url, secret) as client:
        for doc in client.tasks(
            statuses or None,
            args.name,
            created_after=args.since,
            created_before=args.until,
            limit=args.limit,
        ):
            emit(doc, out)
    return 0


def cmd_storage(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dragon.client import Client

    url, secret = connection(args.server, args.secret)
    with Client(url, secret) as client:
        if args.action == "list":
            emit(client.list_files(args.path, recursive=args.recursive), out)
        elif args.action == "delete":
            filters = (args.url, args.since, args.until, args.max_age)
            if not args.path and all(f is None for f in filters) and not args.all:
                raise UsageError(
                    "this deletes every persistent file of the account: add --all (or "
                    "--dry-run to see them), or choose a folder, URLs, dates or an age"
                )
            deleted = client.delete_files(
                args.path,
                urls=args.url,
                since=args.since,
                until=args.until,
                max_age=args.max_age,
                dry_run=args.dry_run,
            )
            emit(deleted, out)
        elif args.days is None:
            emit(client.expiration(), out)
        else:
            emit(client.set_expiration(args.days), out)
    return 0


def cmd_templates(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dragon.client import Client

    url, secret = connection(args.server, args.secret)
    with Client(url, secret) as client:
        if args.action == "put":
            emit(client.put_template(args.name, Path(args.file).read_text()), out)
        elif args.action == "list":
            emit(client.templates(), out)
        elif args.action == "show":
            emit(client.template(args.name), out)
        else:
            client.delete_template(args.name)
            emit({"deleted": args.name}, out)
    return 0


def cmd_create_file(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dragon.client import Client, DragonError

    task = task_definition(args.task_name, args.fields, args.store)
    url, secret = connection(args.server, args.secret)
    with Client(url, secret) as client:
        try:
            file_url = client.create_file(task, args.name or "")
        except DragonError as exc:
            if exc.document is not None:  # the task ended in error
                return ended(exc.document, out, err)
            if exc.status == 404:  # no output of that name: the message lists them
                print(f"dragon: {exc}", file=err)
                return TASK_FAILED
            raise
        if args.to is None:
            emit({"url": file_url}, out)
            return 0
        path = save(client, args.name or "output", file_url, args.to, Taken(Path(args.to)), err)
        if path is None:
            return TASK_FAILED
        emit({"url": file_url, "path": str(path), "size": path.stat().st_size}, out)
    return 0


def cmd_login(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Check a server and secret, then keep them in the config file for the SDK and the
    commands. Nothing is written when the server refuses the secret."""
    from dragon.client import Client
    from dragon.client.config import read_config, save_config

    try:
        saved = read_config()
    except ConfigError:
        saved = {}  # about to be replaced
    url = (args.server or os.environ.get("DRAGON_URL") or saved.get("url") or DEFAULT_URL).rstrip(
        "/"
    )
    secret = args.secret or os.environ.get("DRAGON_SECRET") or ask_secret(url, err)
    if not secret:
        raise UsageError("no secret given")
    with Client(url, secret) as client:
        client.expiration()  # any answer but a refusal proves the secret
    path = save_config(url, secret)
    print(f"dragon: the secret works on {url}; saved in {path}", file=err)
    emit({"url": url, "config": str(path)}, out)
    return 0


def ask_secret(url: str, err: TextIO) -> str:
    """The secret, typed without echo on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        return getpass.getpass(f"secret for {url}: ", stream=err).strip()
    return sys.stdin.readline().strip()


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
        except (UsageError, ConfigError) as exc:
            print(f"dragon {args.command}: error: {exc}", file=sys.stderr)
            return USAGE
        except DragonError as exc:
            print(f"dragon: {exc}", file=sys.stderr)
            return USAGE
        except KeyboardInterrupt:
            return INTERRUPTED

    return run


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the client commands on the ``dragon`` parser."""
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument(
        "--server", help=f"server URL (DRAGON_URL, `dragon login`'s, default {DEFAULT_URL})"
    )
    server.add_argument("--secret", help="account secret (DRAGON_SECRET, `dragon login`'s)")
    _add_run(sub, server)
    _add_status(sub, server)
    _add_cancel(sub, server)
    _add_download(sub, server)
    _add_upload(sub, server)
    _add_events(sub, server)
    _add_tasks(sub, server)
    _add_storage(sub, server)
    _add_templates(sub, server)
    _add_create_file(sub, server)
    login = sub.add_parser(
        "login",
        help="check a server and secret and keep them for the SDK and the commands",
        description="Check that the server takes the secret, then write both to the "
        "config file (DRAGON_CONFIG, or client.json in the user's config folder) that "
        "Client() and these commands read when DRAGON_URL and DRAGON_SECRET are not set. "
        "The secret is asked for when neither --secret nor DRAGON_SECRET gives it.",
        epilog=EXIT_CODES,
    )
    login.add_argument("--server", help=f"server URL (DRAGON_URL, default {DEFAULT_URL})")
    login.add_argument("--secret", help="account secret (DRAGON_SECRET; asked for without)")
    login.set_defaults(func=_main(cmd_login))


FIELDS_HELP = (
    "task parameters, as HTTPie writes them: name=text for strings, name:=json for numbers, "
    "booleans, lists and objects (width:=200 loop:=true images:='[\"https://...\"]'), "
    "name=@file for a file's text (definition=@movie.xml), name:=@file.json for the JSON "
    "in a file"
)


def _fields(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task_name", help="e.g. image.thumb")
    parser.add_argument(
        "fields", nargs="*", metavar="field=value|field:=json|field=@file", help=FIELDS_HELP
    )
    parser.add_argument("--store", metavar="JSON", help='task_store, e.g. \'{"type": "volatile"}\'')


def _add_run(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], server: argparse.ArgumentParser
) -> None:
    r = sub.add_parser(
        "run",
        parents=[server],
        help="run a task (or a chain of tasks) and print its final status",
        description="Create a task, show its progress on stderr, print its final status "
        "(one JSON line, indented on a terminal) and its warnings (on stderr). Several "
        "tasks, separated by '+', are created together and each final status is printed, "
        "in order; a task may read an earlier one's output: "
        "dragon run video.convert url=URL + video.thumb url:='{\"task\": 0}'.",
        epilog=EXIT_CODES,
    )
    _fields(r)
    r.add_argument("--no-wait", action="store_true", help="print the created status at once")
    r.set_defaults(func=_main(cmd_run))


def _add_status(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], server: argparse.ArgumentParser
) -> None:
    s = sub.add_parser(
        "status",
        parents=[server],
        help="print task statuses (NDJSON)",
        description="Print the status of each task as one JSON line.",
        epilog=EXIT_CODES,
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


def _add_cancel(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], server: argparse.ArgumentParser
) -> None:
    c = sub.add_parser(
        "cancel",
        parents=[server],
        help="cancel tasks (NDJSON statuses)",
        description="Cancel tasks: queued ones end at once, executing ones are stopped. "
        "Prints each task's status after the cancel as one JSON line (error, error_code "
        "cancelled; a task that had ended is printed as it is). Exit 0, or 1 when a key "
        "names no task of the account.",
        epilog=EXIT_CODES,
    )
    c.add_argument("keys", nargs="+", metavar="KEY")
    c.set_defaults(func=_main(cmd_cancel))


def _add_download(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], server: argparse.ArgumentParser
) -> None:
    d = sub.add_parser(
        "download",
        parents=[server],
        help="save a task's output files",
        description="Wait for the task to end and save each output file under the "
        "output's name (export.mp4, preview.mp4; numbered, output-2.jpg, rather than "
        "writing over a file); prints one JSON line per file (name, url, path, size).",
        epilog=EXIT_CODES,
    )
    d.add_argument("key", metavar="KEY")
    d.add_argument("--to", default=".", metavar="DIR", help="folder (default: here)")
    d.set_defaults(func=_main(cmd_download))


def _add_upload(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], server: argparse.ArgumentParser
) -> None:
    u = sub.add_parser(
        "upload",
        parents=[server],
        help="send a local file to the server, for tasks to read as upload:ID",
        description="Send FILE with the server's resumable uploads (tus, /v2/uploads); a "
        "cut connection resumes where the server's copy ends. Prints one JSON line: input "
        "(upload:ID, to give a task as its url), url and size.",
        epilog=EXIT_CODES,
    )
    u.add_argument("file", metavar="FILE")
    u.add_argument(
        "--resume", metavar="URL", help="go on with the upload at URL (its url) begun earlier"
    )
    u.set_defaults(func=_main(cmd_upload))


def _add_events(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], server: argparse.ArgumentParser
) -> None:
    e = sub.add_parser(
        "events",
        parents=[server],
        help="print the account's event feed (NDJSON)",
        description="Print each recorded change of the account's tasks, oldest first: a "
        "status document with its task_name and cursor.",
        epilog=EXIT_CODES,
    )
    e.add_argument("--after", type=int, metavar="CURSOR", help="start after this cursor")
    e.add_argument("--follow", action="store_true", help="go on with new events until interrupted")
    e.set_defaults(func=_main(cmd_events))


def _add_tasks(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], server: argparse.ArgumentParser
) -> None:
    t = sub.add_parser(
        "tasks",
        parents=[server],
        help="list the account's tasks, newest first (NDJSON)",
        description="Print the account's most recent tasks, newest first, one status "
        "document (with its task_name) per line.",
        epilog=EXIT_CODES,
    )
    t.add_argument(
        "--status",
        action="append",
        metavar="STATUS",
        help="queued, executing, success or error (repeatable, or comma-separated)",
    )
    t.add_argument("--name", metavar="TASK_NAME", help="only tasks of this task name")
    t.add_argument("--since", metavar="TIME", help="created at or after (ISO 8601)")
    t.add_argument("--until", metavar="TIME", help="created before (ISO 8601)")
    t.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default 50)")
    t.set_defaults(func=_main(cmd_tasks))


def _add_storage(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], server: argparse.ArgumentParser
) -> None:
    st = sub.add_parser(
        "storage",
        help="list or delete persistent output files, read or set their expiration",
        epilog=EXIT_CODES,
    )
    actions = st.add_subparsers(dest="action", required=True)
    ls = actions.add_parser("list", parents=[server], help="the files and folders under PATH")
    ls.add_argument("path", nargs="?", default="", metavar="PATH", help="a task key, or none")
    ls.add_argument("--recursive", action="store_true", help="the files of every folder below")
    rm = actions.add_parser(
        "delete", parents=[server], help="delete files (the secret is needed, not an api key)"
    )
    rm.add_argument("path", nargs="?", default="", metavar="PATH", help="a task key, or a file")
    rm.add_argument("--url", action="append", help="the URL of a file to delete (repeatable)")
    rm.add_argument("--from", dest="since", metavar="DATE", help="stored at or after (ISO 8601)")
    rm.add_argument("--to", dest="until", metavar="DATE", help="stored before (ISO 8601)")
    rm.add_argument("--max-age", type=float, metavar="DAYS", help="stored more than DAYS ago")
    rm.add_argument("--dry-run", action="store_true", help="say what would be deleted")
    rm.add_argument("--all", action="store_true", help="with no other choice: every file")
    ex = actions.add_parser(
        "expiration", parents=[server], help="days files are kept; with DAYS, set it"
    )
    ex.add_argument("days", nargs="?", type=int, metavar="DAYS", help="0: forever")
    st.set_defaults(func=_main(cmd_storage))


def _add_templates(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], server: argparse.ArgumentParser
) -> None:
    t = sub.add_parser(
        "templates",
        help="store, list, show or delete video.create templates ({{field}} slots)",
        epilog=EXIT_CODES,
    )
    actions = t.add_subparsers(dest="action", required=True)
    put = actions.add_parser(
        "put", parents=[server], help="store FILE's SXML as template NAME (needs the secret)"
    )
    put.add_argument("name", metavar="NAME")
    put.add_argument("file", metavar="FILE", help="the definition, SXML with {{field}} slots")
    actions.add_parser("list", parents=[server], help="the account's templates")
    for action, what in (("show", "one template"), ("delete", "delete one (needs the secret)")):
        one = actions.add_parser(action, parents=[server], help=what)
        one.add_argument("name", metavar="NAME")
    t.set_defaults(func=_main(cmd_templates))


def _add_create_file(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], server: argparse.ArgumentParser
) -> None:
    c = sub.add_parser(
        "create-file",
        parents=[server],
        help="run a task and print the URL of its output file",
        description="Run a task as /v2/create_file does (the same definition asked again "
        'is answered from the first task while its file lives); print {"url": ...}, or '
        "save the file with --to.",
        epilog=EXIT_CODES,
    )
    _fields(c)
    c.add_argument("--name", metavar="OUTPUT", help="which output (for tasks with several)")
    c.add_argument("--to", metavar="DIR", help="also save the file in DIR")
    c.set_defaults(func=_main(cmd_create_file))
