"""What the SQL index needs of a database: SQLite in a thread, or PostgreSQL via asyncpg.

Statements are written once, with ``?`` placeholders and the upsert syntax both
databases share (``INSERT ... ON CONFLICT ... DO UPDATE``); the PostgreSQL
adapter numbers the placeholders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dockyard.index.schema import Dialect

__all__ = ["Database", "Row", "Stmt", "Written"]

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Stmt:
    """One statement of a write transaction; with ``many``, run once per parameter row."""

    sql: str
    params: Sequence[object] = ()
    many: Sequence[Sequence[object]] | None = None
    returning: bool = False
    """The statement ends in ``RETURNING``: its first row goes in :attr:`Written.rows`."""


@dataclass(frozen=True, slots=True)
class Written:
    """What a committed write gives back."""

    rows: list[Row]
    """The first row of each statement with ``returning``, in order."""
    state: object | None = None
    """:meth:`Database.state` as this commit left it, before any other writer's, when
    this write was the only one in its transaction; else None, as when the database
    cannot tell."""


class Database(Protocol):
    """A connection (pool) to one index database."""

    dialect: Dialect
    where: str
    """For people: the file or the server."""

    async def fetch(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """The rows of one query (a consistent snapshot)."""
        ...

    def state(self) -> object | None:
        """A value that changes whenever a commit changes the database, by any process:
        equal values mean nothing changed in between. None when it
        cannot be told without a query. Cheap and never blocking (for the event loop).
        """
        ...

    async def write(self, statements: Sequence[Stmt]) -> Written:
        """Run ``statements`` in one transaction: all or nothing."""
        ...

    async def migrate(self) -> int:
        """Apply pending migrations (serialized against other processes); the version."""
        ...

    async def aclose(self) -> None: ...
