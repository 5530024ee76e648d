"""The metadata index: listings answered behind one interface (DESIGN.md).

The first implementation reads the storage layout
(:class:`dockyard.storage.metadata.StorageMetadataIndex`); an SQLite or
PostgreSQL index, derived from the layout and rebuildable from it, can replace
it without the HTTP layer noticing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dockyard.digest import Digest

__all__ = ["MetadataIndex", "Page"]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; ``more`` says whether entries follow the last one."""

    entries: list[str]
    more: bool
    version: str | None = None
    """A whole tag list (no ``n``, no ``last``) served by an index: a token that changes
    whenever the repository's tags do, so its encoded body can be reused while it
    holds (None: not known, encode every time)."""
    since: str | None = None
    """With ``version``: the version whose list this one is with the names ``added``
    inserted, and nothing else changed (None: not known), so that a body encoded for
    that version can be brought up to this one instead of encoded again."""
    added: tuple[str, ...] = ()
    """The names inserted since ``since``, sorted (none of them in that list)."""


class MetadataIndex(Protocol):
    async def repositories(self, n: int, last: str) -> Page:
        """Repository names after ``last`` in catalog order, at most ``n``."""
        ...

    async def tags(self, repository: str, n: int | None, last: str) -> Page:
        """Tags of ``repository`` after ``last``, sorted; raises NameUnknown."""
        ...

    async def referrers(self, repository: str, subject: Digest) -> list[Digest]:
        """Manifests whose ``subject`` is ``subject`` (may include deleted ones)."""
        ...
