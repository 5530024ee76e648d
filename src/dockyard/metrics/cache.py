"""Blob descriptor cache hits and misses: a wrapper counting what the cache answers."""

from __future__ import annotations

from collections.abc import Sequence

from dockyard.cache.base import BlobDescriptorCache, CacheFailure
from dockyard.digest import Digest
from dockyard.metrics._families import Metrics
from dockyard.types import BlobDescriptor

__all__ = ["CountingCache"]


class CountingCache:
    """``inner`` (a cache backend, inside ``SafeCache``) with its lookups counted.

    Both generations of the original's names: 2.8's ``registry_storage_cache_total``
    with ``type`` Request, Hit, Miss or Error, and 3.x's
    ``registry_storage_cache_{requests,hits,errors}_total``.
    """

    def __init__(self, inner: BlobDescriptorCache, metrics: Metrics) -> None:
        self.inner = inner
        self._request = metrics.cache.labels("Request")
        self._hit = metrics.cache.labels("Hit")
        self._miss = metrics.cache.labels("Miss")
        self._error = metrics.cache.labels("Error")
        self._requests = metrics.cache_requests.labels()
        self._hits = metrics.cache_hits.labels()
        self._errors = metrics.cache_errors.labels()

    async def get(self, repository: str | None, digest: Digest) -> BlobDescriptor | None:
        return (await self.get_many(repository, [digest]))[0]

    async def get_many(
        self, repository: str | None, digests: Sequence[Digest]
    ) -> list[BlobDescriptor | None]:
        """Counted as one lookup per digest, as :meth:`get` one by one would be."""
        count = len(digests)
        self._request.inc(count)
        self._requests.inc(count)
        try:
            found = await self.inner.get_many(repository, digests)
        except CacheFailure:
            self._error.inc(count)
            self._errors.inc(count)
            raise
        hits = sum(desc is not None for desc in found)
        self._miss.inc(count - hits)
        self._hit.inc(hits)
        self._hits.inc(hits)
        return found

    async def set(self, repository: str | None, desc: BlobDescriptor) -> None:
        await self.inner.set(repository, desc)

    async def clear(self, repository: str | None, digest: Digest) -> None:
        await self.inner.clear(repository, digest)
