"""Which index ``storage.index`` configures, built once (in the app factory, or a command)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dockyard.index.sql import SqlIndex
from dockyard.index.sqlite import MEMORY, SqliteDatabase

__all__ = ["INDEX_FILE", "IndexUnavailable", "open_index", "resolve_index_driver"]

INDEX_FILE = "dockyard-index.db"
"""The SQLite file's name under the filesystem driver's ``rootdirectory``."""

_DEFAULT_ROOT = "/var/lib/registry"


class IndexUnavailable(Exception):
    """The configured index cannot be used (the message names the key)."""


def resolve_index_driver(configured: str, storage_driver: str, path: str) -> str:
    """The index driver in effect: ``configured``, or the default for the storage.

    By default SQLite is on for filesystem (a file beside the data) and inmemory
    (an in-memory database) storage; object stores walk storage unless an index
    is configured, since a local file cannot be shared between their instances.
    """
    if configured:
        return configured
    if storage_driver in ("filesystem", "inmemory") or path:
        return "sqlite"
    return "none"


def open_index(
    driver: str,
    storage_driver: str,
    storage_parameters: Mapping[str, Any],
    *,
    path: str = "",
    dsn: str = "",
    pool_size: int = 10,
) -> SqlIndex | None:
    """The index ``storage.index`` names, not yet migrated; None for ``none``."""
    driver = resolve_index_driver(driver, storage_driver, path)
    if driver == "none":
        return None
    if driver == "sqlite":
        if not path:
            if storage_driver == "inmemory":
                path = MEMORY
            elif storage_driver == "filesystem":
                root = str(storage_parameters.get("rootdirectory") or _DEFAULT_ROOT)
                path = os.path.join(root, INDEX_FILE)
            else:
                raise IndexUnavailable(
                    f"storage.index.path: needed for sqlite with {storage_driver} storage"
                )
        return SqlIndex(SqliteDatabase(path))
    if driver == "postgres":
        if not dsn:
            raise IndexUnavailable("storage.index.dsn: needed for the postgres index")
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            raise IndexUnavailable(
                "storage.index.driver: postgres needs the asyncpg package "
                "(pip install 'dockyard[postgres]')"
            ) from None
        from dockyard.index.postgres import PostgresDatabase

        return SqlIndex(PostgresDatabase(dsn, pool_size))
    raise IndexUnavailable(
        f"storage.index.driver: unknown index {driver!r}; expected sqlite, postgres or none"
    )
