"""``dragon serve`` and ``dragon accounts create|list|delete``.

Accounts are written straight to the database (WAL lets the CLI write while the server
runs), and the server looks credentials up per request, so a new account works at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from typing import Any

from dragon import __version__
from dragon.client.commands import add_commands
from dragon.config import Settings
from dragon.database import Misconfigured, check_cluster_storage, open_database
from dragon.database.interface import AccountExists, Database
from dragon.engine import accounts, auth

log = logging.getLogger("dragon")
DEFAULT_ACCOUNT_FILE = "default-account.json"


def private_data_dir(settings: Settings) -> None:
    """Keep the data folder to the server's own user: it holds the database (webhook secrets
    in clear, account settings) and every output file.

    Everything the process creates from here on is private (umask 077: folders 0700, files
    0600, SQLite's -wal and -shm included); a folder and database left by an older version
    with wider modes are tightened.
    """
    os.umask(0o077)
    settings.data_path.mkdir(parents=True, exist_ok=True)
    settings.data_path.chmod(0o700)
    for suffix in ("", "-wal", "-shm"):
        path = settings.db_path.with_name(settings.db_path.name + suffix)
        try:
            path.chmod(0o600)
        except FileNotFoundError:
            pass
        except OSError as exc:  # a read-only database still starts; /healthz reports it
            log.warning("could not make %s private: %s", path, exc)


def cmd_accounts(args: argparse.Namespace) -> int:
    settings = Settings.load(data_dir=args.data_dir)
    private_data_dir(settings)
    database = open_database(settings)
    try:
        return asyncio.run(_accounts(database, args))
    finally:
        database.close()


async def _accounts(database: Database, args: argparse.Namespace) -> int:
    if args.action == "create":
        try:
            account = await accounts.create_account(
                database, args.name, args.referrer or [], args.max_active, args.rate
            )
        except AccountExists:
            print(f"dragon: an account named {args.name!r} exists already", file=sys.stderr)
            return 1
        print(json.dumps(account))
    elif args.action == "list":
        for row in await database.list_accounts():
            print(
                json.dumps(
                    {
                        "name": row["name"],
                        "api_key": row["api_key"],
                        "referrers": json.loads(row["referrers"]),
                        "max_active": row["max_active"],
                        "max_running": row["max_running"],
                        "rate": row["create_rate"],
                        "expiration_days": row["expiration_days"],
                    }
                )
            )
    elif args.action == "update":
        if not await database.update_account(
            args.name,
            referrers=args.referrer,
            max_active=args.max_active,
            create_rate=args.rate,
            max_running=args.max_running,
        ):
            print(f"dragon: no account named {args.name!r}", file=sys.stderr)
            return 1
        updated = await database.account_by_name(args.name)
        if updated is None:  # deleted in between
            print(f"dragon: no account named {args.name!r}", file=sys.stderr)
            return 1
        print(
            json.dumps(
                {
                    "name": updated["name"],
                    "referrers": json.loads(updated["referrers"]),
                    "max_active": updated["max_active"],
                    "max_running": updated["max_running"],
                    "rate": updated["create_rate"],
                }
            )
        )
    elif args.action == "rotate-webhook-secret":
        secret = auth.new_webhook_secret()
        until = time.time() + args.keep_old_hours * 3600
        if not await database.rotate_webhook_secret(args.name, secret, until):
            print(f"dragon: no account named {args.name!r}", file=sys.stderr)
            return 1
        print(
            json.dumps(
                {
                    "name": args.name,
                    "webhook_secret": secret,
                    "previous_secret_valid_hours": args.keep_old_hours,
                }
            )
        )
    elif args.action == "delete":
        if not await database.delete_account(args.name):
            print(f"dragon: no account named {args.name!r}", file=sys.stderr)
            return 1
        print(json.dumps({"deleted": args.name}))
    return 0


async def default_account(settings: Settings) -> dict[str, Any] | None:
    """The first-start account whose credentials ``make run`` prints (see engine.accounts)."""
    database = await asyncio.to_thread(open_database, settings)
    try:
        return await accounts.default_account(database, settings.data_path / DEFAULT_ACCOUNT_FILE)
    finally:
        await asyncio.to_thread(database.close)


def banner(settings: Settings, account: dict[str, Any] | None) -> str:
    url = settings.base_url
    lines = [
        f"dragon serving on http://{settings.host}:{settings.port} (data in {settings.data_path})"
    ]
    if account:
        lines += [
            f"account {account['name']!r}: secret {account['secret']}"
            f"  api key {account['api_key']}",
            "try:",
            f"  curl -s -H 'Authorization: Secret {account['secret']}' {url}/v2/create"
            ' -d \'{"tasks": [{"task_name": "hello", "name": "John"}], "block": true}\'',
        ]
    return "\n".join(lines)


async def serve(settings: Settings) -> None:
    from aiohttp import web

    from dragon.api.state import STATE
    from dragon.web.access_log import AccessLog
    from dragon.web.app import create_app
    from dragon.web.connections import ConnectionLimit, connection_limit, raise_descriptor_limit

    raise_descriptor_limit()
    account = await default_account(settings)
    app = create_app(settings)
    # handler_cancellation: a stream whose client went away is cancelled (and unsubscribed)
    # at once. Creates shield their commit-and-queue step from it.
    # keepalive_timeout: aiohttp's timer closes a connection idle that long, whether between
    # requests or part-way through a request head (dragon.web.connections).
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=2.0,
        handler_cancellation=True,
        keepalive_timeout=settings.http_idle_timeout_seconds,
        access_log_class=AccessLog,
    )
    await runner.setup()
    assert runner.server is not None
    ConnectionLimit(runner.server, connection_limit(settings))
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
    await site.start()
    print(banner(settings, account), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    st = app[STATE]
    log.info(
        "shutting down: new tasks are refused, running ones get %.0f s",
        settings.shutdown_grace_seconds,
    )
    st.service.close()
    await st.scheduler.stop(settings.shutdown_grace_seconds)
    await runner.cleanup()


def cmd_serve(args: argparse.Namespace) -> int:
    settings = Settings.load(
        host=args.host, port=args.port, data_dir=args.data_dir, concurrency=args.concurrency
    )
    try:
        check_cluster_storage(settings)
    except Misconfigured as exc:
        print(f"dragon: {exc}", file=sys.stderr)
        return 2
    private_data_dir(settings)
    from dragon.web.redaction import install as install_logging

    install_logging(os.environ.get("DRAGON_LOG_LEVEL", "INFO"))
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from dragon.doctor import data_dir_source, doctor

    return doctor(Settings.load(data_dir=args.data_dir), data_dir_source(args.data_dir))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dragon", description="A self-hosted media tasks server.")
    p.add_argument("--version", action="version", version=f"dragon {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the tasks API")
    s.add_argument("--host", help="listen address (DRAGON_HOST, default 127.0.0.1)")
    s.add_argument("--port", type=int, help="listen port (DRAGON_PORT, default 8080)")
    s.add_argument("--data-dir", help="data folder (DRAGON_DATA_DIR, default ./var)")
    s.add_argument(
        "--concurrency", type=int, help="batch tasks at once (DRAGON_CONCURRENCY, default: cores)"
    )
    s.set_defaults(func=cmd_serve)
    a = sub.add_parser("accounts", help="manage accounts")
    asub = a.add_subparsers(dest="action", required=True)
    c = asub.add_parser("create", help="create an account and print its credentials as JSON")
    c.add_argument("name")
    c.add_argument(
        "--referrer",
        action="append",
        help="glob pattern of referrers allowed with the api key (repeatable)",
    )
    c.add_argument(
        "--max-active",
        type=int,
        default=0,
        help="most queued+executing tasks at once (0: no limit)",
    )
    c.add_argument(
        "--rate",
        type=float,
        default=None,
        help="tasks it may create per second (default: DRAGON_CREATE_RATE; 0: no limit)",
    )
    u = asub.add_parser("update", help="change an account's referrers, limits or rate")
    u.add_argument("name")
    u.add_argument("--referrer", action="append", help="replace the referrer patterns (repeatable)")
    u.add_argument("--max-active", type=int, help="most queued+executing tasks (0: no limit)")
    u.add_argument(
        "--max-running",
        type=int,
        help="most tasks running at once per node, interactive and batch (0: no limit)",
    )
    u.add_argument(
        "--rate",
        type=float,
        help="tasks per second (0: no limit; -1: back to the server's default)",
    )
    asub.add_parser("list", help="list accounts (without secrets)")
    d = asub.add_parser("delete", help="delete an account and its tasks")
    d.add_argument("name")
    r = asub.add_parser(
        "rotate-webhook-secret",
        help="new webhook secret; callbacks carry both signatures meanwhile",
    )
    r.add_argument("name")
    r.add_argument(
        "--keep-old-hours",
        type=float,
        default=24.0,
        help="hours the previous secret still signs callbacks (default 24)",
    )
    for sp in (c, u, asub.choices["list"], d, r):
        sp.add_argument("--data-dir", help="data folder (DRAGON_DATA_DIR, default ./var)")
    a.set_defaults(func=cmd_accounts)
    add_commands(sub)  # run, status, cancel, download...: the client (dragon/client/commands.py)
    doc = sub.add_parser(
        "doctor", help="check tools, codecs, fonts, data folder, database, S3 and the server"
    )
    doc.add_argument("--data-dir", help="data folder (DRAGON_DATA_DIR, default ./var)")
    doc.set_defaults(func=cmd_doctor)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main(sys.argv[1:])
