"""Leases of the periodic maintenance jobs: in-process, and in a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.redis import RedisServer, find_redis

from dockyard.maintenance.jobs import LocalLease, RedisLease, held


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if find_redis() is None:
        pytest.fail("redis-server is not installed (scripts/install-test-deps installs it)")
    with RedisServer(tmp_path / "redis") as server:
        yield server


def test_local_lease_is_exclusive() -> None:
    async def run() -> None:
        lease = LocalLease()
        async with held(lease, "gc") as first:
            assert first
            async with held(lease, "gc") as second:
                assert not second
        async with held(lease, "gc") as again:
            assert again

    asyncio.run(run())


def test_redis_lease_one_holder_across_clients(redis_server: RedisServer) -> None:
    import redis.asyncio as aioredis

    async def run() -> None:
        a = aioredis.Redis(host="127.0.0.1", port=redis_server.port)
        b = aioredis.Redis(host="127.0.0.1", port=redis_server.port)
        try:
            one, two = RedisLease(a), RedisLease(b)
            assert await one.acquire("gc", 5)
            assert not await two.acquire("gc", 5)
            assert not await two.renew("gc", 5)
            await two.release("gc")  # not its lease: nothing happens
            assert await one.renew("gc", 5)
            await one.release("gc")
            assert await two.acquire("gc", 0.3)
            await asyncio.sleep(0.5)  # expired: free for the next holder
            assert await one.acquire("gc", 5)
            await two.release("gc")  # its token no longer holds the lease
            assert not await two.acquire("gc", 5)
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(run())


def test_index_lease_in_one_sqlite_file_shared_by_two_connections(tmp_path: Path) -> None:
    from dockyard.index.fence import IndexLease
    from dockyard.index.sqlite import SqliteDatabase

    async def run() -> None:
        a = SqliteDatabase(str(tmp_path / "index.db"))
        b = SqliteDatabase(str(tmp_path / "index.db"))
        try:
            one, two = IndexLease(a), IndexLease(b)
            assert await one.acquire("gc", 5)
            assert not await two.acquire("gc", 5)
            assert not await two.renew("gc", 5)
            assert await one.renew("gc", 5)
            await two.release("gc")  # not its lease
            assert not await two.acquire("gc", 5)
            await one.release("gc")
            assert await two.acquire("gc", 0.2)
            await asyncio.sleep(0.4)  # expired: the next one takes it
            assert await one.acquire("gc", 5)
            assert not await two.renew("gc", 5)
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(run())
