"""An in-process LRU of parsed manifest revisions, wrapped around a repository's reader."""

from __future__ import annotations

from collections import OrderedDict

from dockyard.digest import Digest
from dockyard.manifest import SCHEMA1_SIGNED, SCHEMA1_UNSIGNED
from dockyard.types import ManifestReader, StoredManifest

__all__ = ["CachedManifestReader", "ManifestLRU"]


class ManifestLRU:
    """Revisions by digest, at most ``size`` of them and ``max_bytes`` of bodies, shared
    by every repository of a process.

    Content-addressed, so never stale; schema1 manifests are not kept (signed ones
    can gain signatures). The byte bound keeps a worker's memory flat whatever the
    manifests' sizes: 2,048 manifests of 50 layers (about 8 KB each) would hold 16 MiB,
    a third of a worker, where a few hundred already serve the pulls of many images.
    """

    def __init__(self, size: int = 2048, max_bytes: int = 4 << 20) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[Digest, StoredManifest] = OrderedDict()

    def get(self, digest: Digest) -> StoredManifest | None:
        found = self._entries.get(digest)
        if found is not None:
            self._entries.move_to_end(digest)
        return found

    def add(self, stored: StoredManifest) -> None:
        if stored.media_type in (SCHEMA1_SIGNED, SCHEMA1_UNSIGNED):
            return
        if len(stored.body) > self.max_bytes:
            return  # it would push everything else out
        self.remove(stored.digest)
        self._entries[stored.digest] = stored
        self._bytes += len(stored.body)
        while len(self._entries) > self.size or self._bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped.body)

    def remove(self, digest: Digest) -> None:
        dropped = self._entries.pop(digest, None)
        if dropped is not None:
            self._bytes -= len(dropped.body)


class CachedManifestReader:
    """A repository's :class:`ManifestReader` with the process's LRU in front."""

    __slots__ = ("inner", "lru")

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
