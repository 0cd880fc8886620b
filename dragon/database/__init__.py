"""Persistence: the ``Database`` protocol (``interface``) and its backends.

``open_database`` picks the backend from the settings: SQLite, embedded in the data folder,
by default; PostgreSQL (``dragon.database.postgres``) when ``DRAGON_DATABASE_URL`` names
one, so that several nodes share it.
"""

from __future__ import annotations

import secrets

from dragon.config import Settings
from dragon.database.interface import Database
from dragon.database.sqlite import SQLiteDatabase


class Misconfigured(Exception):
    """The settings ask for a combination that cannot work (the message says why)."""


def open_database(settings: Settings) -> Database:
    """The configured database, connected and migrated."""
    settings.data_path.mkdir(parents=True, exist_ok=True)
    if settings.database_url:
        from dragon.database.postgres import PostgresDatabase  # asyncpg only when used

        database: Database = PostgresDatabase(
            settings.database_url, secrets.token_hex(8), settings.lease_seconds
        )
    else:
        database = SQLiteDatabase(settings.db_path, settings.sqlite_synchronous.upper())
    database.open()
    return database


def check_cluster_storage(settings: Settings) -> None:
    """Refuse PostgreSQL without S3: a node's local files could not be served by the others."""
    if settings.database_url and not settings.s3_bucket:
        raise Misconfigured(
            "DRAGON_DATABASE_URL is set (several nodes share PostgreSQL) but DRAGON_S3_BUCKET"
            " is not: output files written to one node's disk could not be served by the"
            " other nodes. Set DRAGON_S3_BUCKET (and DRAGON_S3_ENDPOINT_URL for MinIO or"
            " another S3-compatible store), or unset DRAGON_DATABASE_URL to use SQLite."
        )
