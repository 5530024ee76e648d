"""The cache contract and the decorator that puts a cache in front of storage."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

from dockyard.digest import CANONICAL_ALGORITHM, Digest
from dockyard.types import BlobDescriptor, BlobDescriptorService

__all__ = ["BlobDescriptorCache", "CacheFailure", "CachedBlobStatter", "LookupCounts", "SafeCache"]

log = logging.getLogger("dockyard.cache")


class CacheFailure(Exception):
    """The cache backend failed; callers fall through to storage."""


class BlobDescriptorCache(Protocol):
    """Descriptors by digest, globally (``repository=None``) and per repository."""

    async def get(self, repository: str | None, digest: Digest) -> BlobDescriptor | None: ...

    async def set(self, repository: str | None, desc: BlobDescriptor) -> None: ...

    async def get_many(
        self, repository: str | None, digests: Sequence[Digest]
    ) -> list[BlobDescriptor | None]:
        """:meth:`get` of each, in one round trip."""
        ...

    async def clear(self, repository: str | None, digest: Digest) -> None: ...


class _Count(Protocol):
    value: float


class LookupCounts(Protocol):
    """Where :class:`SafeCache` counts its lookups (the metrics package's counters)."""

    @property
    def request(self) -> _Count: ...
    @property
    def hit(self) -> _Count: ...
    @property
    def miss(self) -> _Count: ...
    @property
    def error(self) -> _Count: ...


class SafeCache:
    """Wraps a cache so its failures are logged (once a minute) and never fail a request.

    With ``counts``, every lookup is counted there: here rather than in a wrapper of
    its own, which would cost a coroutine per lookup (a blob HEAD makes two).
    """

    def __init__(
        self, inner: BlobDescriptorCache, name: str, counts: LookupCounts | None = None
    ) -> None:
        self.inner = inner
        self.name = name
        self.counts = counts
        self._last_warning = 0.0
        self._failing = False

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning > 60:
            self._last_warning = now
            log.warning("%s cache unavailable, serving from storage: %s", self.name, exc)
        self._failing = True

    def _ok(self) -> None:
        if self._failing:
            self._failing = False
            self._last_warning = 0.0
            log.info("%s cache is back", self.name)

    async def get(self, repository: str | None, digest: Digest) -> BlobDescriptor | None:
        counts = self.counts
        if counts is not None:
            counts.request.value += 1
        try:
            found = await self.inner.get(repository, digest)
        except CacheFailure as exc:
            if counts is not None:
                counts.error.value += 1
            self._failed(exc)
            return None
        self._ok()
        if counts is not None:
            (counts.miss if found is None else counts.hit).value += 1
        return found

    async def get_many(
        self, repository: str | None, digests: Sequence[Digest]
    ) -> list[BlobDescriptor | None]:
        """Counted as one lookup per digest, as :meth:`get` one by one would be."""
        counts, count = self.counts, len(digests)
        if counts is not None:
            counts.request.value += count
        try:
            found = await self.inner.get_many(repository, digests)
        except CacheFailure as exc:
            if counts is not None:
                counts.error.value += count
            self._failed(exc)
            return [None] * count
        self._ok()
        if counts is not None:
            hits = sum(desc is not None for desc in found)
            counts.hit.value += hits
            counts.miss.value += count - hits
        return found

    async def set(self, repository: str | None, desc: BlobDescriptor) -> None:
        try:
            await self.inner.set(repository, desc)
        except CacheFailure as exc:
            self._failed(exc)
        else:
            self._ok()

    async def clear(self, repository: str | None, digest: Digest) -> None:
        try:
            await self.inner.clear(repository, digest)
        except CacheFailure as exc:
            self._failed(exc)
        else:
            self._ok()


class CachedBlobStatter:
    """A store's descriptors with a cache in front (distribution's ``cachedBlobStatter``).

    ``repository`` None is the global content store; a name, that repository's
    links, of which only canonical (sha256) digests are looked up and remembered
    (a link in another algorithm names content stored under its sha256).
    """

    __slots__ = ("cache", "inner", "repository")

    def __init__(
        self, inner: BlobDescriptorService, cache: BlobDescriptorCache, repository: str | None
    ) -> None:
        self.inner = inner
        self.cache = cache
        self.repository = repository

    async def stat(self, digest: Digest) -> BlobDescriptor:
        if self.repository is not None and digest.algorithm != CANONICAL_ALGORITHM:
            return await self.inner.stat(digest)
        if hit := await self.cache.get(self.repository, digest):
            return hit
        desc = await self.inner.stat(digest)
        if desc.digest == digest:  # not through a link to other content
            await self.cache.set(self.repository, desc)
        return desc

    async def stat_many(self, digests: Sequence[Digest]) -> list[BlobDescriptor | None]:
        """The cache's descriptors, in one lookup; the store asked once for the rest."""
        cacheable = [
            i for i, d in enumerate(digests)
            if self.repository is None or d.algorithm == CANONICAL_ALGORITHM
        ]
        out: list[BlobDescriptor | None] = [None] * len(digests)
        hits = await self.cache.get_many(self.repository, [digests[i] for i in cacheable])
        for i, hit in zip(cacheable, hits, strict=True):
            out[i] = hit
        missing = [i for i, desc in enumerate(out) if desc is None]
        if not missing:
            return out
        found = await self.inner.stat_many([digests[i] for i in missing])
        for i, desc in zip(missing, found, strict=True):
            out[i] = desc
            if desc is not None and desc.digest == digests[i]:  # not through a link
                await self.cache.set(self.repository, desc)
        return out

    async def clear(self, digest: Digest) -> None:
        await self.cache.clear(self.repository, digest)
        await self.inner.clear(digest)
