"""The storage API without HTTP: list, select and delete an account's persistent files, and
its expiration setting.

Everything is read from the caller's own account in the database's storage index; usage is
kept up to date there by every store and delete. A delete forgets the rows first (the file
server stops serving them at once) and then the store removes the bytes; on a full disk the
bytes may go first, and files the database could not forget yet are hidden here
(``Stores.removed``) until it can.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dragon.database.interface import Database, Row
from dragon.database.rows import FileRow
from dragon.engine.auth import Account
from dragon.errors import NoSuchPath
from dragon.stores import Stores


def file_name(row: Row) -> str:
    """A file's name in the storage API: ``TASK_KEY/NAME``."""
    return f"{row['task_key']}/{row['name']}"


def _in_path(row: Row, path: str, recursive: bool = True) -> bool:
    """Is the file at or under ``path`` (relative to the account root)?"""
    path = path.strip("/")
    if not path:
        return recursive
    name = file_name(row)
    return name == path or name.startswith(path + "/")


def _iso_z(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Storage:
    def __init__(self, database: Database, stores: Stores) -> None:
        self.db = database
        self.stores = stores

    async def listing(self, account: Account, path: str, recursive: bool) -> dict[str, Any]:
        """The files and directories at ``path``, and the account's usage."""
        await self.stores.forget_removed()
        path = path.strip("/")
        directories: list[str] = []
        if not path:
            keys = await self.db.file_directories(account.id)
            if self.stores.removed:  # a directory of deleted files only is gone too
                live = self.stores.unremoved(await self.db.list_files(account.id))
                keys = [k for k in keys if k in {r["task_key"] for r in live}]
            directories = [f"{k}/" for k in keys]
            chosen = (
                self.stores.unremoved(await self.db.list_files(account.id)) if recursive else []
            )
        else:
            rows = await self.db.list_files(account.id, task_key=path.split("/", 1)[0])
            chosen = [r for r in self.stores.unremoved(rows) if _in_path(r, path)]
            if not chosen:
                raise NoSuchPath(f"no file or directory {path!r}")
        files = [
            {
                "name": file_name(r),
                "size": r["size"],
                "last_modified": _iso_z(r["created_at"]),
                "url": r["url"],
                "content_type": r["content_type"],
            }
            for r in chosen
        ]
        return {
            "files": files,
            "directories": directories,
            "usage": await self._usage(account),
        }

    async def _usage(self, account: Account) -> int:
        """The account's counted bytes, less those of files deleted but not yet forgotten."""
        return await self.db.usage(account.id) - self.stores.removed_usage(account.id)

    async def select(
        self,
        account: Account,
        *,
        urls: list[str] | None = None,
        path: str = "",
        since: float | None = None,
        until: float | None = None,
        older_than: float | None = None,
    ) -> list[FileRow]:
        """Files chosen by URL, or by path and creation time (the delete filters)."""
        await self.stores.forget_removed()
        if urls is not None:
            wanted = sorted({u.split("?", 1)[0] for u in urls})[:10_000]
            found = await self.db.list_files(account.id, urls=wanted) if wanted else []
            return self.stores.unremoved(found)
        path = path.strip("/")
        key = path.split("/", 1)[0] if path else None
        rows = self.stores.unremoved(await self.db.list_files(account.id, task_key=key))
        return [
            r
            for r in rows
            if _in_path(r, path)
            and (since is None or r["created_at"] >= since)
            and (until is None or r["created_at"] <= until)
            and (older_than is None or r["created_at"] < older_than)
        ]

    async def delete(self, account: Account, rows: list[FileRow], dry_run: bool) -> dict[str, Any]:
        """Delete ``rows`` (or, with ``dry_run``, say what deleting them would do)."""
        if dry_run:
            freed = sum(r["size"] for r in rows)
            usage = await self._usage(account) - freed
        else:
            freed = await self.stores.remove(rows)
            usage = await self._usage(account)
        return {"deleted": [file_name(r) for r in rows], "freed": freed, "usage": usage}

    async def expiration(self, account: Account) -> int:
        row = await self.db.account_by_id(account.id)
        return int(row["expiration_days"]) if row is not None else 0

    async def set_expiration(self, account: Account, days: int) -> None:
        await self.db.set_expiration(account.id, days)
