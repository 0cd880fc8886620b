"""Accounts: creating one with fresh credentials, and the first-start default account.

The database keeps only a digest of each secret, so the credentials are shown once, when
the account is created; ``dragon accounts`` prints them, and ``make run`` keeps those of the
default account in a 0600 file of the data folder so it can print them at every start.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from dragon.database.interface import Database
from dragon.engine import auth


async def create_account(
    database: Database,
    name: str,
    referrers: list[str],
    max_active: int,
    create_rate: float | None = None,
) -> dict[str, Any]:
    """A new account and its credentials; raises ``AccountExists``.

    ``create_rate``: tasks per second it may create (None: the server's default; 0: no
    limit)."""
    secret = auth.new_secret()
    api_key = auth.new_api_key()
    webhook_secret = auth.new_webhook_secret()
    await database.insert_account(
        name, auth.digest(secret), api_key, webhook_secret, referrers, max_active, create_rate
    )
    return {
        "name": name,
        "secret": secret,
        "api_key": api_key,
        "webhook_secret": webhook_secret,
        "referrers": referrers,
        "max_active": max_active,
        "rate": create_rate,
    }


async def default_account(database: Database, path: Path) -> dict[str, Any] | None:
    """On first start (no account at all), create ``default`` and keep its credentials in
    ``path``; return what ``path`` holds, if anything."""
    if not await database.list_accounts():
        account = await create_account(database, "default", ["*"], 0)
        path.write_text(json.dumps(account, indent=2))
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    if path.exists():
        saved: dict[str, Any] = json.loads(path.read_text())
        return saved
    return None
