"""The server's periodic maintenance jobs (retention, online garbage collection), one
collector at a time across every instance.

Every instance runs the loop on one of its workers; before each run the job takes a
lease named after it, so that only one instance works at a time: in Redis (``SET NX
PX`` with a random token, released only by its holder, so a lease that expired while
its holder stalled is not released by it for the next holder), or, with no shared
store, in the process (one instance: nothing else to exclude). A lease outlives a
crashed holder by ``ttl`` at most; the holder renews it while it works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from dockyard.maintenance.purge import format_duration

__all__ = ["Lease", "LocalLease", "RedisLease", "held", "run_periodically"]

log = logging.getLogger("dockyard.maintenance")

#: Lease lifetime; renewed every third of it while the job runs.
LEASE_TTL = 60.0


class Lease(Protocol):
    """A named lock that expires unless renewed; ``acquire`` never waits."""

    async def acquire(self, name: str, ttl: float) -> bool: ...

    async def renew(self, name: str, ttl: float) -> bool: ...

    async def release(self, name: str) -> None: ...


class LocalLease:
    """One instance: a set of names held in this process."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    async def acquire(self, name: str, ttl: float) -> bool:
        if name in self._held:
            return False
        self._held.add(name)
        return True

    async def renew(self, name: str, ttl: float) -> bool:
        return name in self._held

    async def release(self, name: str) -> None:
        self._held.discard(name)


_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class RedisLease:
    """Leases in the Redis every instance shares (``dockyard:lease:<name>``)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._tokens: dict[str, str] = {}

    async def acquire(self, name: str, ttl: float) -> bool:
        token = os.urandom(16).hex()
        taken = await self.client.set(f"dockyard:lease:{name}", token, nx=True,
                                      px=int(ttl * 1000))
        if taken:
            self._tokens[name] = token
        return bool(taken)

    async def renew(self, name: str, ttl: float) -> bool:
        token = self._tokens.get(name)
        if token is None:
            return False
        done = await self.client.eval(_RENEW, 1, f"dockyard:lease:{name}", token,
                                      str(int(ttl * 1000)))
        return bool(done)

    async def release(self, name: str) -> None:
        token = self._tokens.pop(name, None)
        if token is not None:
            await self.client.eval(_RELEASE, 1, f"dockyard:lease:{name}", token)


@contextlib.asynccontextmanager
async def held(lease: Lease, name: str, ttl: float = LEASE_TTL) -> AsyncIterator[bool]:
    """Yields whether ``name`` was taken; while inside, the lease is renewed."""
    if not await lease.acquire(name, ttl):
        yield False
        return

    async def renew() -> None:
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                if not await lease.renew(name, ttl):
                    log.warning("%s: lease lost; another instance may start the job", name)
                    return
            except Exception as exc:  # the store is down: the job goes on, logged
                log.warning("%s: renewing the lease failed: %s", name, exc)

    renewer = asyncio.get_running_loop().create_task(renew(), name=f"lease-{name}")
    try:
        yield True
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        with contextlib.suppress(Exception):
            await lease.release(name)


async def run_periodically(
    name: str,
    interval: float,
    job: Callable[[], Awaitable[None]],
    lease: Lease,
    *,
    first_delay: float | None = None,
) -> None:
    """``job`` every ``interval`` seconds (the first after ``first_delay``, by default a
    random fraction of the interval, so instances started together spread out), when
    the lease ``name`` is free. Runs until cancelled; a failing run is logged."""
    delay = random.uniform(0.1, 1.0) * min(interval, 300.0) if first_delay is None else first_delay
    log.info("%s: first run in %.0fs, then every %s", name, delay, format_duration(interval))
    await asyncio.sleep(delay)
    while True:
        try:
            async with held(lease, name) as mine:
                if mine:
                    await job()
                else:
                    log.info("%s: another instance holds the lease; skipped", name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; next run in %s", name, format_duration(interval))
        await asyncio.sleep(interval)
