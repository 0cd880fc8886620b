"""Each backend declares its schema once (``sqlite_schema``, ``postgres_schema``); after
migrating a fresh database, both hold the same tables with the same columns, and the
migration that added the store policy columns filled them from the old rows."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest

from dragon.database import postgres, sqlite
from dragon.database.postgres_schema import MIGRATIONS as POSTGRES_MIGRATIONS
from dragon.database.sqlite_schema import MIGRATIONS as SQLITE_MIGRATIONS
from tests.support.postgres import PostgresCluster, postgres_bin

# What one backend needs and the other has no use for: PostgreSQL records node heartbeats
# (several nodes) and its schema version in a table (SQLite keeps it in user_version);
# SQLite keeps AUTOINCREMENT counters in sqlite_sequence.
ONLY_POSTGRES = {"nodes", "schema_version"}
ONLY_SQLITE = {"sqlite_sequence"}
OLD_FILES = (
    "INSERT INTO files (account_id, task_key, output, name, store, location, url, size,"
    " content_type, created_at) VALUES (1, 'K', 'a', 'a', 'persistent', 'K/a', 'u/a', 1, 't', 0),"
    " (1, 'K', 'b', 'b', 'volatile', 'K/b', 'u/b', 1, 't', 0)"
)
OLD_ACCOUNT = (
    "INSERT INTO accounts (id, name, secret_hash, api_key, webhook_secret, created_at)"
    " VALUES (1, 'a', 'h', 'k', 'w', 0)"
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (make install)")
    pg = PostgresCluster()
    yield pg
    pg.close()


def sqlite_columns(tmp_path) -> dict[str, set[str]]:
    conn = sqlite.connect(tmp_path / "schema.db")
    sqlite.migrate(conn)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {
        table: {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        for table in tables
        if table not in ONLY_SQLITE
    }


async def postgres_columns(url: str) -> dict[str, set[str]]:
    conn = await asyncpg.connect(url)
    try:
        await postgres.migrate(conn)
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    columns: dict[str, set[str]] = {}
    for r in rows:
        if r["table_name"] not in ONLY_POSTGRES:
            columns.setdefault(r["table_name"], set()).add(r["column_name"])
    return columns


def test_both_backends_hold_the_same_tables_and_columns(tmp_path, cluster):
    lite = sqlite_columns(tmp_path)
    pg = asyncio.run(postgres_columns(cluster.new_database()))
    assert "files" in lite and {"listed", "counted"} <= lite["files"]
    assert lite == pg


def policy_migration(migrations: tuple[str, ...]) -> int:
    """The index of the migration that adds the store policy columns."""
    return next(i for i, m in enumerate(migrations) if "ADD COLUMN listed" in m)


def test_sqlite_policy_columns_are_filled_from_the_store(tmp_path):
    conn = sqlite.connect(tmp_path / "old.db")
    before = policy_migration(SQLITE_MIGRATIONS)
    for migration in SQLITE_MIGRATIONS[:before]:
        conn.executescript(migration)
    conn.execute(f"PRAGMA user_version={before}")
    conn.execute(OLD_ACCOUNT)
    conn.execute(OLD_FILES)
    sqlite.migrate(conn)
    policy = conn.execute("SELECT store, listed, counted FROM files ORDER BY store").fetchall()
    assert [tuple(r) for r in policy] == [("persistent", True, True), ("volatile", False, False)]


def test_postgres_policy_columns_are_filled_from_the_store(cluster):
    async def run() -> list[tuple[str, bool, bool]]:
        conn = await asyncpg.connect(cluster.new_database())
        try:
            await conn.execute("CREATE TABLE schema_version (version INTEGER)")
            before = policy_migration(POSTGRES_MIGRATIONS)
            for version, migration in enumerate(POSTGRES_MIGRATIONS[:before], 1):
                await conn.execute(migration)
                await conn.execute("INSERT INTO schema_version VALUES ($1)", version)
            await conn.execute(OLD_ACCOUNT)
            await conn.execute(OLD_FILES)
            await postgres.migrate(conn)
            rows = await conn.fetch("SELECT store, listed, counted FROM files ORDER BY store")
        finally:
            await conn.close()
        return [tuple(r) for r in rows]

    assert asyncio.run(run()) == [("persistent", True, True), ("volatile", False, False)]
