"""The shared index database: PostgreSQL through an asyncpg pool (``dockyard[postgres]``).

Several instances on one object store and one PostgreSQL see each other's
writes at once. Migrations take a transaction-scoped advisory lock, so
instances starting together apply each one exactly once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from dockyard.index.db import Row, Stmt, Written
from dockyard.index.schema import MIGRATIONS, Dialect, migration_sql

__all__ = ["PostgresDatabase"]

_PLACEHOLDER = re.compile(r"\?")
# Any constant: the key of the advisory lock that serializes migrations.
_MIGRATION_LOCK = 0x646F636B79617264


def _numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2...``."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _m: f"${next(counter)}", sql)


class PostgresDatabase:
    """A pool of connections to ``dsn``, opened on first use."""

    dialect: Dialect = "postgres"

    def __init__(self, dsn: str, pool_size: int = 10) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self.where = re.sub(r"//[^@/]*@", "//", dsn)  # without the password
        self._pool: Any = None

    async def _get_pool(self) -> Any:
        if self._pool is None:
            import asyncpg

            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self.pool_size
            )
        return self._pool

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            rows = await conn.fetch(_numbered(sql), *params)
        return [tuple(r) for r in rows]

    def state(self) -> object | None:
        return None  # other instances write without telling: always ask the server

    async def write(self, statements: Sequence[Stmt]) -> Written:
        pool = await self._get_pool()
        rows: list[Row] = []
        async with pool.acquire() as conn, conn.transaction():
            for stmt in statements:
                if stmt.many is not None:
                    if stmt.many:
                        await conn.executemany(_numbered(stmt.sql), stmt.many)
                elif stmt.returning:
                    row = await conn.fetchrow(_numbered(stmt.sql), *stmt.params)
                    rows.append(tuple(row) if row is not None else ())
                else:
                    await conn.execute(_numbered(stmt.sql), *stmt.params)
        return Written(rows)

    async def migrate(self) -> int:
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
            )
            current = int(await conn.fetchval("SELECT MAX(version) FROM schema_version") or 0)
            for version in range(current + 1, len(MIGRATIONS) + 1):
                for sql in migration_sql(version, "postgres"):
                    await conn.execute(sql)
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
        return max(current, len(MIGRATIONS))

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
