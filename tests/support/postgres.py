"""A private PostgreSQL cluster on a free loopback port (Debian's ``postgresql`` 15).

``initdb`` makes the cluster in a temporary directory (trust authentication, fsync off:
test data), and ``postgres`` serves it in the foreground, so stopping the process group
stops the cluster; the directory goes with :meth:`PostgresServer.stop`. Run as root,
both run as the ``postgres`` user, which PostgreSQL requires.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

from tests.support.net import LoopbackServer, NotReady

__all__ = ["PG_BIN", "PostgresServer", "find_postgres"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def find_postgres() -> Path | None:
    """The directory of ``initdb`` and ``postgres``, or None if PostgreSQL is absent."""
    if (PG_BIN / "initdb").exists() and (PG_BIN / "postgres").exists():
        return PG_BIN
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PostgresServer(LoopbackServer):
    """A throwaway cluster: ``dsn(database)`` names a database made by :meth:`database`."""

    what = "postgres"
    log_name = "postgres.log"
    deadline = 60.0

    def __init__(self, workdir: Path) -> None:
        # Outside pytest's private (0700) temp root, so the postgres user can reach it.
        self.cluster = Path(tempfile.mkdtemp(prefix="dockyard-pg-"))
        super().__init__(workdir)
        self.bin = find_postgres() or PG_BIN
        self.data = self.cluster / "data"
        self.sockets = self.cluster / "run"
        self._as_postgres = os.geteuid() == 0

    def _user(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if self._as_postgres else command

    def start(self, deadline: float | None = None) -> None:
        if not self.data.exists():
            self.sockets.mkdir(parents=True, exist_ok=True)
            if self._as_postgres:
                shutil.chown(self.cluster, "postgres", "postgres")
                shutil.chown(self.sockets, "postgres", "postgres")
            with self.log_path.open("ab") as log:
                subprocess.run(
                    self._user([str(self.bin / "initdb"), "-D", str(self.data), "-U",
                                "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]),
                    check=True, stdout=log, stderr=subprocess.STDOUT, timeout=120,
                )
        super().start(deadline)

    def command(self) -> list[str]:
        return self._user([
            str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-h", "127.0.0.1", "-k", str(self.sockets), "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=200",
        ])

    def environment(self) -> Mapping[str, str] | None:
        return {k: v for k, v in os.environ.items() if not k.startswith("PG")}

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _execute(self, sql: str) -> None:
        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(self.dsn(), timeout=5)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(run())

    def ready(self) -> bool:
        try:
            self._execute("SELECT 1")
        except Exception as exc:  # refused, or "the database system is starting up"
            raise NotReady(str(exc)) from None
        return True

    def database(self) -> str:
        """A new, empty database; its name."""
        name = f"dockyard_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE DATABASE "{name}"')
        return name

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.cluster, ignore_errors=True)
