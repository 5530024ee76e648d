"""The metadata index: listings, sizes and times in a database beside the storage.

Storage stays the source of truth (DESIGN.md, "Metadata index"): the index is
updated after every storage write, verified against the layout and rebuilt
from it (:mod:`dockyard.index.maintain`). Implementations: the storage walk
(:class:`dockyard.storage.metadata.StorageMetadataIndex`, ``driver: none``) and
:class:`~dockyard.index.sql.SqlIndex` on SQLite (embedded default, also
in-memory) or PostgreSQL (many instances).
"""

from dockyard.index.base import (
    Index,
    ManifestRecord,
    ReferrerRecord,
    RepositoryState,
    RepositoryUsage,
    TagRecord,
)
from dockyard.index.factory import IndexUnavailable, open_index
from dockyard.index.sql import SqlIndex

__all__ = [
    "Index",
    "IndexUnavailable",
    "ManifestRecord",
    "ReferrerRecord",
    "RepositoryState",
    "RepositoryUsage",
    "SqlIndex",
    "TagRecord",
    "open_index",
]
