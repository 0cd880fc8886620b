"""``dragon`` as the client distribution (``dragon-client``) installs it: the client commands
alone (``run``, ``status``, ``tasks``...), without the server's (``serve``, ``accounts``,
``doctor``), which need the server's package. With the server installed, its ``dragon``
(``dragon.cli``) has both."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version

from dragon.client.commands import add_commands


def client_version() -> str:
    try:
        return version("dragon-client")
    except PackageNotFoundError:  # run from a checkout without installing it
        return "unknown"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dragon",
        description="The client of a dragon media tasks server (docs/client.md).",
    )
    p.add_argument("--version", action="version", version=f"dragon-client {client_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main(sys.argv[1:])
