"""Shared fixtures: ``dragon_server`` is one server for the whole session (fast);
``make_server`` starts a fresh one with its own data dir and settings, for restart, shutdown
and limit tests; ``origin`` serves generated media on 127.0.0.1.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.support.server import Origin, Server


def pytest_report_header(config):
    return f"sqlite {sqlite3.sqlite_version}"


@pytest.fixture(scope="session")
def make_server(tmp_path_factory):
    """Factory: ``make_server(env={...}, start=True)`` -> a fresh ``Server``."""
    servers: list[Server] = []

    def make(env: dict | None = None, start: bool = True, data_dir: Path | None = None) -> Server:
        server = Server(data_dir or tmp_path_factory.mktemp("dragon"), env or {})
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.stop(9)


@pytest.fixture(scope="session")
def dragon_server(make_server) -> Server:
    return make_server()


@pytest.fixture(scope="session")
def origin() -> Origin:
    o = Origin()
    yield o
    o.httpd.shutdown()

