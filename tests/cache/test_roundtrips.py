"""Storage round trips of a blob HEAD, counted on a real driver, with and without caches.

These figures are what the README states; they are measured here, not estimated.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dockyard.cache.base import SafeCache
from dockyard.cache.memory import MemoryCache
from dockyard.digest import Digest
from dockyard.registry.namespace import Namespace, RegistryOptions
from dockyard.storage import paths
from dockyard.storage.drivers.base import CheckedDriver
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
