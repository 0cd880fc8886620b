"""Shared fixtures: ``dragon_server`` is one server for the whole session (fast);
``make_server`` starts a fresh one with its own data dir and settings, for restart, shutdown
and limit tests; ``origin`` serves generated media on 127.0.0.1.

Backends: servers use SQLite unless ``DRAGON_TEST_BACKEND=postgres``, which puts every
server on PostgreSQL and moto's S3; ``make test`` runs the end-to-end suite both ways.
``make_server(backend=...)`` pins one test's server to a backend (the cluster tests, and
the few that test SQLite's own files).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from tests.support.client_venv import make_client_venv
from tests.support.postgres import PostgresCluster, postgres_bin
from tests.support.s3 import MotoS3
from tests.support.server import Origin, Server

DEFAULT_BACKEND = os.environ.get("DRAGON_TEST_BACKEND", "sqlite")


def pytest_report_header(config):
    return f"sqlite {sqlite3.sqlite_version}; default backend {DEFAULT_BACKEND}"


class Backends:
    """PostgreSQL and S3 for servers on the ``postgres`` backend, started on first use."""

    def __init__(self) -> None:
        self.postgres: PostgresCluster | None = None
        self.s3: MotoS3 | None = None
        self._buckets = 0

    def env(self) -> dict:
        """A fresh database and bucket: what one server (or one cluster) shares."""
        if postgres_bin() is None:
            pytest.skip("PostgreSQL is not installed (make install)")
        if self.postgres is None:
            self.postgres = PostgresCluster()
        if self.s3 is None:
            self.s3 = MotoS3()
        self._buckets += 1
        return {
            "DRAGON_DATABASE_URL": self.postgres.new_database(),
            **self.s3.bucket(f"dragon-test-{self._buckets}"),
        }

    def close(self) -> None:
        if self.postgres is not None:
            self.postgres.close()
        if self.s3 is not None:
            self.s3.close()


@pytest.fixture(scope="session", autouse=True)
def _no_user_client_config(tmp_path_factory):
    """The client's config file (``dragon login``) of whoever runs the tests is never read:
    the SDK and the commands the tests start look for one in an empty folder instead."""
    os.environ["DRAGON_CONFIG"] = str(tmp_path_factory.mktemp("client-config") / "client.json")


@pytest.fixture(scope="session")
def client_venv(tmp_path_factory) -> Path:
    """A venv with the client distribution alone (tests/support/client_venv.py), built once
    per test process."""
    return make_client_venv(tmp_path_factory.mktemp("client-venv"))


@pytest.fixture(scope="session")
def backends():
    b = Backends()
    yield b
    b.close()


@pytest.fixture(scope="session")
def make_server(tmp_path_factory, backends):
    """Factory: ``make_server(env={...}, start=True)`` -> a fresh ``Server``.

    ``backend`` ("sqlite" or "postgres") defaults to ``DRAGON_TEST_BACKEND``; a postgres
    server gets a database and bucket of its own unless ``env`` names them (a cluster's
    nodes share them, and ``account`` then reuses the first node's credentials).
    """
    servers: list[Server] = []

    def make(
        env: dict | None = None,
        start: bool = True,
        data_dir: Path | None = None,
        backend: str | None = None,
        account: dict | None = None,
    ) -> Server:
        env = dict(env or {})
        if (backend or DEFAULT_BACKEND) == "postgres" and "DRAGON_DATABASE_URL" not in env:
            # A fixed node name: a restarted server takes its dead self's tasks back at once.
            env = {**backends.env(), "DRAGON_NODE_NAME": f"node-{len(servers)}", **env}
        server = Server(data_dir or tmp_path_factory.mktemp("dragon"), env, account=account)
        servers.append(server)
        return server.start() if start else server

    make.servers = servers  # type: ignore[attr-defined]
    yield make
    stop_servers(servers)


def stop_servers(servers: list[Server]) -> None:
    """SIGTERM first, so a server measured by coverage writes its data; killed if it lingers."""
    for server in servers:
        if server.proc and server.proc.poll() is None:
            server.proc.terminate()
    for server in servers:
        server.stop(9, timeout=5)


@pytest.fixture(scope="module", autouse=True)
def _stop_module_servers(make_server):
    """The servers a test module started stop when it ends (the shared ``dragon_server``
    excepted): a few hundred left running until the session's end exhaust memory."""
    first = len(make_server.servers)
    yield
    started = make_server.servers[first:]
    stop_servers([s for s in started if not getattr(s, "shared", False)])


@pytest.fixture(scope="session")
def dragon_server(make_server, request) -> Server:
    server = make_server(backend=getattr(request, "param", None))
    server.shared = True
    return server


@pytest.fixture(scope="session")
def origin() -> Origin:
    o = Origin()
    yield o
    o.httpd.shutdown()
