"""Persistence: the ``Database`` protocol (``interface``) and its backends.

``open_database`` picks the backend from the settings; SQLite, embedded in the data folder,
is the default and today's only backend.
"""

from __future__ import annotations

from dragon.config import Settings
from dragon.database.interface import Database
from dragon.database.sqlite import SQLiteDatabase


def open_database(settings: Settings) -> Database:
    """The configured database, connected and migrated."""
    settings.data_path.mkdir(parents=True, exist_ok=True)
    database = SQLiteDatabase(settings.db_path, settings.sqlite_synchronous.upper())
    database.open()
    return database
