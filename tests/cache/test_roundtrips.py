"""Storage round trips of a blob HEAD, counted on a real driver, with and without caches.

These figures are what the README states; they are measured here, not estimated.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dockyard.cache.base import SafeCache
from dockyard.cache.memory import MemoryCache
from dockyard.digest import Digest
from dockyard.registry.namespace import Namespace, RegistryOptions
from dockyard.storage import paths
from dockyard.storage.drivers.base import CheckedDriver, FileInfo
from dockyard.storage.drivers.filesystem import FilesystemDriver


class CountingDriver:
    """Counts every driver call by method name, then delegates."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: Counter[str] = Counter()

    def __getattr__(self, attr: str) -> Any:
        target = getattr(self.inner, attr)
        if not callable(target):
            return target

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[attr] += 1
            return target(*args, **kwargs)

        return counted


async def _setup(tmp_path: Path) -> tuple[CountingDriver, Digest]:
    data = b"layer bytes"
    digest = Digest.of(data)
    driver = CountingDriver(CheckedDriver(FilesystemDriver(str(tmp_path))))
    await driver.inner.put_content(paths.blob_data_path(digest), data)
    await driver.inner.put_content(paths.layer_link_path("lib/app", digest), str(digest).encode())
    return driver, digest


def _heads(driver: CountingDriver, namespace: Namespace, digest: Digest, n: int) -> int:
    async def run() -> None:
        for _ in range(n):
            # What a blob HEAD calls.
            desc = (await namespace.repository("lib/app").open_blob(digest)).descriptor
            assert desc.size == len(b"layer bytes")

    driver.calls.clear()
    asyncio.run(run())
    return sum(driver.calls.values())


def test_blob_head_without_cache_costs_two_round_trips(tmp_path: Path) -> None:
    driver, digest = asyncio.run(_setup(tmp_path))
    namespace = Namespace(driver, RegistryOptions())  # type: ignore[arg-type]
    assert _heads(driver, namespace, digest, 10) == 20
    assert driver.calls == Counter({"get_content": 10, "stat": 10})


def test_blob_head_with_memory_cache_costs_one_round_trip(tmp_path: Path) -> None:
    driver, digest = asyncio.run(_setup(tmp_path))
    cache = SafeCache(MemoryCache(100), "inmemory")
    namespace = Namespace(driver, RegistryOptions(), cache=cache)  # type: ignore[arg-type]
    _heads(driver, namespace, digest, 1)  # warm
    # The link is still read every time (another worker may have deleted it).
    assert _heads(driver, namespace, digest, 10) == 10
    assert driver.calls == Counter({"get_content": 10})


@pytest.mark.usefixtures("redis_server")
def test_blob_head_with_redis_cache_costs_no_storage_round_trip(
    tmp_path: Path, redis_url: str
) -> None:
    from dockyard.cache.redis import RedisCache

    driver, digest = asyncio.run(_setup(tmp_path))
    host_port = redis_url.removeprefix("redis://")

    def namespace() -> Namespace:
        cache = SafeCache(RedisCache.from_settings(host_port), "redis")
        return Namespace(driver, RegistryOptions(), cache=cache)  # type: ignore[arg-type]

    _heads(driver, namespace(), digest, 1)  # warm
    assert _heads(driver, namespace(), digest, 10) == 0


class CountingFilesystem(FilesystemDriver):
    """The filesystem driver (batches included) with its reads counted by method."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.calls: Counter[str] = Counter()

    async def get_content(self, path: str) -> bytes:
        self.calls["get_content"] += 1
        return await super().get_content(path)

    async def get_many(self, paths: Sequence[str]) -> list[bytes | None]:
        self.calls["get_many"] += 1
        return await super().get_many(paths)

    async def stat(self, path: str) -> FileInfo:
        self.calls["stat"] += 1
        return await super().stat(path)

    async def stat_many(self, paths: Sequence[str]) -> list[FileInfo | None]:
        self.calls["stat_many"] += 1
        return await super().stat_many(paths)


def _layers(tmp_path: Path, count: int) -> tuple[CountingFilesystem, list[Digest]]:
    """``count`` blobs linked in ``lib/app``, as a manifest's layers."""
    driver = CountingFilesystem(str(tmp_path))

    async def push() -> list[Digest]:
        digests = []
        for i in range(count):
            data = f"layer {i}".encode()
            digest = Digest.of(data)
            await driver.put_content(paths.blob_data_path(digest), data)
            await driver.put_content(paths.layer_link_path("lib/app", digest),
                                     str(digest).encode())
            digests.append(digest)
        return digests

    return driver, asyncio.run(push())


def _checked(
    driver: CountingFilesystem, namespace: Namespace, digests: list[Digest]
) -> list[bool]:
    """What a manifest PUT's blob check answers for ``digests``."""
    driver.calls.clear()
    return asyncio.run(namespace.repository("lib/app").layers.present(digests))


def test_manifest_blob_check_reads_links_and_asks_the_cache_for_content(
    tmp_path: Path,
) -> None:
    """A manifest of 50 layers: one batch of link reads and one of stats without a cache;
    with the memory cache warm, the links only (the content's presence is cached, the
    links never are: another worker may remove one)."""
    driver, digests = _layers(tmp_path, 50)
    absent = Digest.of(b"never pushed")
    plain = Namespace(driver, RegistryOptions())
    assert _checked(driver, plain, [*digests, absent]) == [True] * 50 + [False]
    assert driver.calls == Counter({"get_many": 1, "stat_many": 1})

    cached = Namespace(driver, RegistryOptions(),
                       cache=SafeCache(MemoryCache(), "inmemory"))
    assert _checked(driver, cached, digests) == [True] * 50  # fills the cache
    assert _checked(driver, cached, [*digests, absent]) == [True] * 50 + [False]
    assert driver.calls == Counter({"get_many": 1})

    # A link removed (by another worker): absent, whatever the cache holds.
    asyncio.run(driver.delete(paths.layer_link_path("lib/app", digests[3])))
    assert _checked(driver, cached, digests[:5]) == [True, True, True, False, True]
    # Content deleted and forgotten (garbage collection clears the cache): absent.
    asyncio.run(cached.blobs.delete(digests[0]))
    assert _checked(driver, cached, digests[:2]) == [False, True]


def test_manifest_blob_check_with_redis_is_one_round_trip_to_it(
    tmp_path: Path, redis_url: str
) -> None:
    from dockyard.cache.redis import RedisCache

    driver, digests = _layers(tmp_path, 50)

    async def scenario() -> None:
        cache = RedisCache.from_settings(redis_url.removeprefix("redis://"))
        repo = Namespace(driver, RegistryOptions(),
                         cache=SafeCache(cache, "redis")).repository("lib/app")
        driver.calls.clear()
        assert await repo.layers.present(digests) == [True] * 50
        assert driver.calls == Counter({"get_many": 1, "stat_many": 1})
        driver.calls.clear()
        assert await repo.layers.present(digests) == [True] * 50
        assert driver.calls == Counter({"get_many": 1})
        first, missing = await cache.get_many(None, [digests[0], Digest.of(b"absent")])
        assert first is not None and first.size == len(b"layer 0") and missing is None
        assert await cache.get_many("lib/app", [digests[0]]) == [None]  # set never filled

    asyncio.run(scenario())
