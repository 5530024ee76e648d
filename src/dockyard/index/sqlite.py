"""The embedded index database: SQLite in WAL mode, used from one worker thread.

Every call runs in a single-thread executor, so the event loop never blocks on
the file and the connection is only ever used by one thread. WAL lets readers
in other processes (``--workers N``, ``dockyard index verify`` beside the
server) go on while one writes; writers queue on SQLite's lock (``BEGIN
IMMEDIATE`` with a generous busy timeout). A process that forks after using
the index opens a fresh connection in the child.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from dockyard.index.db import Row, Stmt
from dockyard.index.schema import MIGRATIONS, Dialect, migration_sql

__all__ = ["MEMORY", "SqliteDatabase"]

T = TypeVar("T")

MEMORY = ":memory:"
"""The path of an in-memory database (the index of the ``inmemory`` storage driver)."""

_BUSY_TIMEOUT_MS = 60_000


class SqliteDatabase:
    """One SQLite file (or :data:`MEMORY`), opened lazily in this process."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self.where = "memory" if path == MEMORY else path
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != MEMORY:
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False,
                timeout=_BUSY_TIMEOUT_MS / 1000,
            )
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            if self.path != MEMORY:
                conn.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL: a commit survives a process crash; only an OS crash
                # may lose the last ones, which verify/rebuild repairs from storage.
                conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._pid != os.getpid():
            # Never use a connection or thread inherited through fork().
            self._conn, self._executor, self._pid = None, None, os.getpid()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="dockyard-index")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: work(self._connect()))

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return await self._run(lambda conn: conn.execute(sql, tuple(params)).fetchall())

    async def write(self, statements: Sequence[Stmt]) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for stmt in statements:
                    if stmt.many is not None:
                        conn.executemany(stmt.sql, stmt.many)
                    else:
                        conn.execute(stmt.sql, tuple(stmt.params))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        await self._run(work)

    async def migrate(self) -> int:
        def work(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
                current = int(row[0] or 0)
                for version in range(current + 1, len(MIGRATIONS) + 1):
                    for sql in migration_sql(version, "sqlite"):
                        conn.execute(sql)
                    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return max(current, len(MIGRATIONS))

        return await self._run(work)

    async def aclose(self) -> None:
        if self._executor is None or self._pid != os.getpid():
            return
        conn = self._conn
        if conn is not None:
            await self._run(lambda c: c.close())
        self._executor.shutdown(wait=True)
        self._conn, self._executor = None, None
