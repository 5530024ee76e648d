"""An in-process LRU of parsed manifest revisions, wrapped around a repository's reader."""

from __future__ import annotations

from collections import OrderedDict

from dockyard.digest import Digest
from dockyard.manifest import SCHEMA1_SIGNED, SCHEMA1_UNSIGNED
from dockyard.types import ManifestReader, StoredManifest

__all__ = ["CachedManifestReader", "ManifestLRU"]


class ManifestLRU:
    """Revisions by digest, at most ``size``, shared by every repository of a process.

    Content-addressed, so never stale; schema1 manifests are not kept (signed ones
    can gain signatures).
    """

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self._entries: OrderedDict[Digest, StoredManifest] = OrderedDict()

    def get(self, digest: Digest) -> StoredManifest | None:
        found = self._entries.get(digest)
        if found is not None:
            self._entries.move_to_end(digest)
        return found

    def add(self, stored: StoredManifest) -> None:
        if stored.media_type in (SCHEMA1_SIGNED, SCHEMA1_UNSIGNED):
            return
        self._entries[stored.digest] = stored
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def remove(self, digest: Digest) -> None:
        self._entries.pop(digest, None)


class CachedManifestReader:
    """A repository's :class:`ManifestReader` with the process's LRU in front."""

    def __init__(self, inner: ManifestReader, lru: ManifestLRU) -> None:
        self.inner = inner
        self.lru = lru

    async def read(self, digest: Digest, canonical: Digest | None) -> StoredManifest:
        cached = self.lru.get(digest)
        if cached is not None:
            return cached
        stored = await self.inner.read(digest, canonical)
        self.lru.add(stored)
        return stored

    def forget(self, digest: Digest) -> None:
        self.lru.remove(digest)
        self.inner.forget(digest)
