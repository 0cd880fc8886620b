"""A throwaway PostgreSQL cluster for tests: Debian's ``initdb`` and ``pg_ctl`` in a temp folder.

PostgreSQL refuses to run as root, so when the tests run as root the cluster belongs to
``nobody`` (the folder is created outside pytest's private temp dir, which only root can
enter). The server listens on 127.0.0.1 on a free port with ``trust`` authentication for
the superuser ``dragon``; each test server gets a database of its own (``new_database``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.server import free_port


def postgres_bin() -> Path | None:
    """The newest installed server's bin folder (``/usr/lib/postgresql/<major>/bin``)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    return Path(found[-1]).parent if found else None


class PostgresCluster:
    def __init__(self) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed: run `make install`")
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="dragon-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user = "nobody" if os.geteuid() == 0 else None
        if self.user:
            os.chown(self.root, pwd.getpwnam(self.user).pw_uid, -1)
        self._databases = 0
        self._run(
            "initdb", "-D", str(self.data), "-U", "dragon", "-A", "trust", "--no-sync", "-E", "UTF8"
        )
        self.start()

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.bin / tool), *args],
            capture_output=True,
            text=True,
            user=self.user,
            check=check,
            cwd=self.root,
        )

    @property
    def url(self) -> str:
        return f"postgresql://dragon@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql://dragon@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c max_connections=300"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def sql(self, statement: str, database: str = "postgres") -> str:
        return self._run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "dragon",
            "-d",
            database,
            "-At",
            "-c",
            statement,
        ).stdout

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        self._databases += 1
        name = f"dragon_{self._databases}"
        self.sql(f"CREATE DATABASE {name}")
        return self.database_url(name)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
