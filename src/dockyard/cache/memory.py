"""An in-process LRU of blob descriptors (``blobdescriptor: inmemory``)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from dockyard.digest import Digest
from dockyard.types import BlobDescriptor

__all__ = ["MemoryCache"]


class MemoryCache:
    """Least recently used descriptors, at most ``size`` entries.

    Only global descriptors are kept: blob content under a digest never changes,
    while a repository's links can be deleted by another worker or instance this
    process would never hear of.
    """

    def __init__(self, size: int = 10000) -> None:
        self.size = max(size, 1)
        self._entries: OrderedDict[Digest, BlobDescriptor] = OrderedDict()

    async def get(self, repository: str | None, digest: Digest) -> BlobDescriptor | None:
        if repository is not None:
            return None
        desc = self._entries.get(digest)
        if desc is not None:
            self._entries.move_to_end(digest)
        return desc

    async def get_many(
        self, repository: str | None, digests: Sequence[Digest]
    ) -> list[BlobDescriptor | None]:
        if repository is not None:
            return [None] * len(digests)
        entries = self._entries
        found = [entries.get(digest) for digest in digests]
        for desc in found:
            if desc is not None:
                entries.move_to_end(desc.digest)
        return found

    async def set(self, repository: str | None, desc: BlobDescriptor) -> None:
        if repository is not None:
            return
        self._entries[desc.digest] = desc
        self._entries.move_to_end(desc.digest)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    async def clear(self, repository: str | None, digest: Digest) -> None:
        if repository is None:
            self._entries.pop(digest, None)
