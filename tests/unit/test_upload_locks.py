"""Upload locks in Redis (a real redis-server on loopback): one holder, leases, hand-overs.

Leases are shortened to fractions of a second so expiry and renewal run in the test;
the waits below let a lease run out, they measure nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from tests.support.redis import RedisServer, find_redis

from dockyard.storage.redislocks import RedisUploadLocks
from dockyard.storage.uploadlocks import LockBusy, LockUnavailable

UPLOAD = "library/app/0b7f2c44-5a1e-4c1b-9d5e-2f3a4b5c6d7e"


@pytest.fixture(scope="module")
def redis_addr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if find_redis() is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with RedisServer(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server.addr


def locks_on(addr: str, lease: float = 60.0) -> RedisUploadLocks:
    host, _, port = addr.rpartition(":")
    return RedisUploadLocks(aioredis.Redis(host=host, port=int(port)), lease=lease)


def test_one_holder_at_a_time_across_clients(redis_addr: str) -> None:
    """Two instances (two clients): the second is refused until the first releases."""

    async def run() -> None:
        one, other = locks_on(redis_addr), locks_on(redis_addr)
        first = await one.acquire(UPLOAD)
        assert first.abandoned is False
        with pytest.raises(LockBusy):
            await other.acquire(UPLOAD)
        # Another upload is independent.
        elsewhere = await other.acquire(UPLOAD + "x")
        await elsewhere.finish()
        await first.finish()
        second = await other.acquire(UPLOAD)
        assert second.abandoned is False  # released properly: nothing to re-hash
        await second.finish()
        await one.aclose()
        await other.aclose()

    asyncio.run(run())


def test_many_racers_exactly_one_wins(redis_addr: str) -> None:
    async def run() -> None:
        clients = [locks_on(redis_addr) for _ in range(8)]
        results = await asyncio.gather(*(c.acquire(UPLOAD + "race") for c in clients),
                                       return_exceptions=True)
        winners = [r for r in results if not isinstance(r, BaseException)]
        assert len(winners) == 1
        assert all(isinstance(r, LockBusy) for r in results if isinstance(r, BaseException))
        await winners[0].finish()
        for c in clients:
            await c.aclose()

    asyncio.run(run())


def test_renewed_while_held_then_abandoned_when_the_holder_stops(redis_addr: str) -> None:
    """A live holder keeps the upload past its lease; one that stops renewing loses it,
    and the next holder is told the upload was abandoned (so it gets re-hashed)."""

    async def run() -> None:
        locks = locks_on(redis_addr, lease=0.4)
        held = await locks.acquire(UPLOAD + "lease")
        await asyncio.sleep(1.0)  # 2.5 leases: renewed every 0.1 s meanwhile
        with pytest.raises(LockBusy):
            await locks_on(redis_addr, lease=0.4).acquire(UPLOAD + "lease")
        # The holder freezes: no more renewals, no release.
        held._renewer.cancel()  # type: ignore[attr-defined]
        await asyncio.sleep(0.6)
        successor = await locks.acquire(UPLOAD + "lease")
        assert successor.abandoned is True
        # The frozen one wakes up and releases: its successor keeps the upload.
        await held.finish()
        with pytest.raises(LockBusy):
            await locks.acquire(UPLOAD + "lease")
        await successor.finish()
        after = await locks.acquire(UPLOAD + "lease")
        assert after.abandoned is False
        await after.finish()
        await locks.aclose()

    asyncio.run(run())


def test_unreachable_redis_is_unavailable_not_busy() -> None:
    async def run() -> None:
        locks = locks_on("127.0.0.1:9")
        with pytest.raises(LockUnavailable):
            await locks.acquire(UPLOAD)
        await locks.aclose()

    asyncio.run(run())
