"""``SafeCache`` counts every lookup in the original's cache counters, batched ones too."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from dockyard.cache.base import CacheFailure, SafeCache
from dockyard.cache.memory import MemoryCache
from dockyard.digest import Digest
from dockyard.metrics import Metrics
from dockyard.metrics.cache import cache_counts
from dockyard.types import BlobDescriptor


def _digest(i: int) -> Digest:
    return Digest.of(str(i).encode())


class _Broken(MemoryCache):
    async def get_many(
        self, repository: str | None, digests: Sequence[Digest]
    ) -> list[BlobDescriptor | None]:
        raise CacheFailure("down")


def test_a_batched_lookup_counts_one_request_per_digest() -> None:
    metrics = Metrics()
    counts = cache_counts(metrics)
    cache = SafeCache(MemoryCache(100), "inmemory", counts)
    stored = BlobDescriptor(digest=_digest(0), size=1, media_type="application/octet-stream")

    async def run() -> list[BlobDescriptor | None]:
        await cache.set(None, stored)
        return await cache.get_many(None, [_digest(0), _digest(1), _digest(2)])

    found = asyncio.run(run())
    assert [d is not None for d in found] == [True, False, False]
    assert (counts.request.value, counts.hit.value, counts.miss.value) == (3, 1, 2)
    assert counts.error.value == 0


def test_a_failed_batched_lookup_counts_errors_and_misses_nothing() -> None:
    counts = cache_counts(Metrics())
    cache = SafeCache(_Broken(100), "inmemory", counts)
    found = asyncio.run(cache.get_many(None, [_digest(0), _digest(1)]))
    assert found == [None, None]
    assert (counts.request.value, counts.error.value) == (2, 2)
    assert (counts.hit.value, counts.miss.value) == (0, 0)
