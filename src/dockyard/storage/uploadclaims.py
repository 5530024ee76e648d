"""One writer per chunk of an upload, across processes and hosts, on any driver.

An upload's hash states are trusted at commit without re-reading its data, so
the bytes in ``data`` must be exactly the bytes those states hashed. Two
requests writing from the same offset at once (one token used twice, a retry
racing the request it retries, a PATCH racing the final PUT) would break that.
Drivers offer no lock that works on every backend, so each request *claims* the
offset it writes from: it writes ``claims/<offset>/<request id>`` (holding the
time), then lists ``claims/<offset>/``. Of two requests that claim the same
offset, the later to list always sees the other (listing is strongly
consistent on the filesystem, S3, Azure and GCS), so at most one goes on; the
other is refused and may retry from the upload's current offset. Requests that
all saw each other withdraw and try again a few times after a random pause, so
one of them usually gets through.

A claim is refreshed while its request runs, deleted when the request fails
cleanly (its bytes were cut off again), and kept when the chunk is acknowledged,
as a fence against a late request with the same token. A claim not refreshed for
:data:`LEASE` seconds belongs to a request that died (``kill -9``) or froze, and
so does one made on this host by a process that no longer exists (a restarted
server resumes at once): it no longer blocks the offset, so an interrupted
upload stays resumable, but the upload is marked tainted, and committing a
tainted upload re-hashes its data instead of trusting the hash states.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import time
import uuid

from dockyard.storage.drivers.base import PathNotFound, StorageDriver

__all__ = ["LEASE", "ChunkClaim", "OffsetBusy"]

# Seconds without a refresh after which a claim's request is presumed dead. Long
# enough for clock skew between hosts and a slow storage round trip.
LEASE = 60.0
_REFRESH = LEASE / 4
# Tries before a busy offset is refused (a request writing a chunk holds it longer).
_ATTEMPTS = 4


def _host() -> str:
    """This host (and pid namespace: containers may share a hostname)."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return f"{socket.gethostname()}/{namespace}"


_HOST = _host()


def _alive(stamp: dict[str, object]) -> bool:
    """Whether the request that wrote ``stamp`` may still be running."""
    if time.time() - float(str(stamp.get("time", 0))) >= LEASE:
        return False
    pid = stamp.get("pid")
    if stamp.get("host") != _HOST or not isinstance(pid, int):
        return True  # another host: only the lease tells
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


class OffsetBusy(Exception):
    """Another live request is writing from this offset."""


class ChunkClaim:
    """This request's claim on writing an upload from ``offset``."""

    def __init__(self, driver: StorageDriver, directory: str) -> None:
        self.driver = driver
        self.directory = directory
        self.path = f"{directory}/{uuid.uuid4().hex}"
        self._refresher: asyncio.Task[None] | None = None

    async def acquire(self) -> bool:
        """Claim the offset; True if a dead request had claimed it (taint the upload).

        Raises :class:`OffsetBusy` (after withdrawing) if a live request holds it.
        """
        for attempt in range(1, _ATTEMPTS):
            try:
                return await self._try()
            except OffsetBusy:
                await asyncio.sleep(random.uniform(0.005, 0.05) * attempt)
        return await self._try()

    async def _try(self) -> bool:
        await self._stamp()
        expired = False
        for other in await self.driver.list(self.directory):
            if other == self.path:
                continue
            try:
                stamp = json.loads(await self.driver.get_content(other))
                alive = isinstance(stamp, dict) and _alive(stamp)
            except PathNotFound:
                continue  # withdrawn meanwhile
            except ValueError:
                alive = False  # unreadable: not a live request's
            if alive:
                await self.release()
                raise OffsetBusy(self.directory)
            expired = True
        self._refresher = asyncio.get_running_loop().create_task(self._refresh())
        return expired

    async def keep(self) -> None:
        """The chunk was acknowledged: stop refreshing, leave the claim as a fence."""
        await self._stop()

    async def release(self) -> None:
        """Nothing of this request's remains in the data: let the offset be written."""
        await self._stop()
        with contextlib.suppress(PathNotFound):
            await self.driver.delete(self.path)

    async def _stamp(self) -> None:
        stamp = {"time": time.time(), "host": _HOST, "pid": os.getpid()}
        await self.driver.put_content(self.path, json.dumps(stamp).encode())

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(_REFRESH)
            with contextlib.suppress(Exception):  # a missed refresh only risks a taint
                await self._stamp()

    async def _stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
