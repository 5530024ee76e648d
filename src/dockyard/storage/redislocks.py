"""Upload locks in Redis (``redis.addr``): ``SET NX PX`` with a token, renewed while held.

Keys (hash-tagged, so both of an upload sit on one Redis Cluster slot)::

    dockyard::upload::{<repository>/<uuid>}::lock     token of the holder, expires after LEASE
    dockyard::upload::{<repository>/<uuid>}::holder   token of the last holder until it
                                                      releases (kept for a week)

Acquiring sets both atomically (a Lua script); a holder key left by another token
means that request never released: its lease ran out (it died or froze), so the
lease is :attr:`abandoned`. Renewing and releasing only touch keys that still hold
this request's token, so a request that lost its lease cannot release its
successor's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from typing import Any

from redis.exceptions import RedisError

from dockyard.storage.uploadlocks import LockBusy, LockUnavailable

__all__ = ["LEASE", "RedisUploadLocks"]

log = logging.getLogger("dockyard.uploads")

# Seconds a holder keeps the upload without renewing (as a storage claim's lease).
LEASE = 60.0
# How long an unreleased holder record is kept (longer than any upload is resumed).
_HOLDER_TTL = 7 * 24 * 3600
# Tries before a busy upload is refused (a request writing a chunk holds it longer).
_ATTEMPTS = 4

_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local previous = redis.call('GET', KEYS[2])
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
  if previous then return 2 end
  return 1
end
return 0
"""
_RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""


class _RedisLease:
    """A held upload; renews its lease in the background until :meth:`finish`."""

    def __init__(self, locks: RedisUploadLocks, keys: list[str], token: str, abandoned: bool
                 ) -> None:
        self._locks = locks
        self._keys = keys
        self._token = token
        self._abandoned = abandoned
        self._renewer = asyncio.get_running_loop().create_task(self._renew())

    @property
    def abandoned(self) -> bool:
        return self._abandoned

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._locks.renew_every)
            try:
                held = await self._locks.run(_RENEW_SCRIPT, self._keys, self._token,
                                             int(self._locks.lease * 1000))
            except RedisError as exc:  # a missed renewal only risks a taint
                log.warning("upload lock %s: cannot renew: %s", self._keys[0], exc)
                continue
            if not held:
                log.warning("upload lock %s: lease lost while writing", self._keys[0])
                return

    async def finish(self) -> None:
        self._renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewer
        try:
            await self._locks.run(_RELEASE, self._keys, self._token)
        except RedisError as exc:  # the lease runs out; the next holder re-hashes
            log.warning("upload lock %s: cannot release: %s", self._keys[0], exc)


class RedisUploadLocks:
    """:class:`~dockyard.storage.uploadlocks.UploadLocks` on one Redis client."""

    def __init__(self, client: Any, *, lease: float = LEASE) -> None:
        self.client = client  # redis.asyncio.Redis (shared with the Redis cache)
        self.lease = lease
        self.renew_every = lease / 4

    async def run(self, script: str, keys: list[str], *args: str | int) -> int:
        return int(await self.client.eval(script, len(keys), *keys, *args))

    async def acquire(self, upload: str) -> _RedisLease:
        base = f"dockyard::upload::{{{upload}}}"
        keys = [f"{base}::lock", f"{base}::holder"]
        token = secrets.token_hex(16)
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                got = await self.run(_ACQUIRE, keys, token, int(self.lease * 1000), _HOLDER_TTL)
            except RedisError as exc:
                raise LockUnavailable(str(exc)) from exc
            if got:
                return _RedisLease(self, keys, token, abandoned=got == 2)
            if attempt < _ATTEMPTS:
                await asyncio.sleep(random.uniform(0.005, 0.05) * attempt)
        raise LockBusy(upload)

    async def aclose(self) -> None:
        with contextlib.suppress(RedisError):
            await self.client.aclose()
