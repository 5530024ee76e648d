"""One download of a blob from the upstream, streamed to every client waiting for it.

The bytes go two ways as they arrive: into the cache (the caller's consumer, an
ordinary upload committed under the digest, so they are hashed before the blob
becomes visible) and into a *spool*, an unlinked temporary file from which each
waiting client reads at its own pace. Memory stays constant however big the blob
and however slow a client: a client that lags reads older bytes back from the
spool, and one that leaves only stops reading.

Clients get the bytes as the spool grows, except the last :data:`HOLD_BACK`
bytes (all of a smaller blob): those wait until the download's digest matched.
So a small blob from an upstream that lies is refused with a clean error, and a
big one is broken off before its end (its headers are sent, and bytes cannot be
taken back; distribution streams the upstream's bytes unchecked): a client never
receives a complete wrong blob, and nothing is cached.

Across processes sharing storage (``--workers N``, several hosts), a claim in
storage (:class:`~dockyard.storage.uploadclaims.ChunkClaim`, under
:data:`CLAIMS_ROOT`) lets one of them download; the others wait for the blob to
appear and serve it from storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import tempfile
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from dockyard.digest import Digest
from dockyard.errors import BackendUnavailable, DigestInvalid, StorageError
from dockyard.filewrite import pwrite_all
from dockyard.registry.namespace import BlobContent
from dockyard.serial import SerialLane
from dockyard.storage.drivers.base import PathNotFound, StorageDriver
from dockyard.storage.uploadclaims import ChunkClaim, OffsetBusy

__all__ = [
    "CLAIMS_ROOT",
    "HOLD_BACK",
    "BlobFill",
    "FillingBlob",
    "claim_fill",
    "release_claim",
    "verify",
]

log = logging.getLogger("dockyard.proxy")

# Held from the clients until the digest matched.
HOLD_BACK = 1 << 20
# A reader's pread from the spool: the response holds one or two of them while the
# client receives (1 MiB each cost a worker 4-5 MiB more at a cold fetch's peak).
_READ = 256 << 10
# Chunks queued for the spool's writing thread while the download goes on.
_SPOOL_QUEUED = 2
# Beside distribution's /scheduler-state.json, outside the layout it reads.
CLAIMS_ROOT = "/proxy-fills"
# How often a process that lost the claim looks for the blob (the winner's lease is
# refreshed meanwhile; one that died stops blocking after uploadclaims.LEASE).
_POLL = 0.5


class _Spool:
    """The spool's descriptor, closed once neither the fill nor any reader holds it."""

    def __init__(self) -> None:
        fd, path = tempfile.mkstemp(prefix="dockyard-fill-")
        os.unlink(path)
        self.fd = fd
        weakref.finalize(self, os.close, fd)


class BlobFill:
    """A blob on its way from the upstream, shared by every request that wants it."""

    def __init__(self, download: Callable[[BlobFill], Coroutine[Any, Any, None]]) -> None:
        self.size: int | None = None
        self._spool: _Spool | None = None
        self._written = 0
        self._changed = asyncio.Event()
        self.task: asyncio.Task[None] = asyncio.get_running_loop().create_task(download(self))
        self.task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: readers re-raise it; no "never retrieved" warning
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def tee(self, chunks: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
        """``chunks`` (``size`` bytes), each passed on once queued for the spool (a
        thread writes it meanwhile; readers see it once written)."""
        try:
            spool = await asyncio.to_thread(_Spool)
        except OSError as exc:
            raise BackendUnavailable(f"cannot create the download's spool file: {exc}") from None
        self._spool, self.size = spool, size
        self._notify()
        lane = SerialLane()
        pending: deque[asyncio.Future[None]] = deque()
        queued = 0
        async for chunk in chunks:
            while len(pending) >= _SPOOL_QUEUED:
                await _spooled(pending.popleft())
            # The call holds the spool, so its descriptor stays open until it ran.
            written = lane.submit(_write_all, spool, chunk, queued)
            queued += len(chunk)
            written.add_done_callback(functools.partial(self._spooled_to, queued))
            pending.append(written)
            yield chunk
        while pending:
            await _spooled(pending.popleft())

    def _spooled_to(self, end: int, written: asyncio.Future[None]) -> None:
        if not written.cancelled() and written.exception() is None:
            self._written = end
            self._notify()

    async def streaming(self) -> bool:
        """Wait until the bytes flow (True) or the fill ended without a spool (False:
        another process stored the blob). Raises what made the fill fail."""
        while self._spool is None and not self.task.done():
            await self._changed.wait()
        if self._spool is not None:
            return True
        self.task.result()
        return False

    async def reader(self, offset: int = 0) -> AsyncIterator[bytes]:
        """The blob from ``offset``, as it arrives; its last bytes once they are verified."""
        spool, size = self._spool, self.size
        assert spool is not None and size is not None, "reader() before streaming()"
        position = offset
        while position < size:
            changed = self._changed
            if self.task.done():
                self.task.result()  # a failed fill breaks the response off here
                limit = size
            else:
                limit = min(self._written, max(size - HOLD_BACK, 0))
            if position < limit:
                count = min(_READ, limit - position)
                try:
                    chunk = await asyncio.to_thread(os.pread, spool.fd, count, position)
                except OSError as exc:
                    raise BackendUnavailable(f"cannot read the download's spool: {exc}") from None
                if not chunk:
                    raise BackendUnavailable("the download's spool ended early")
                position += len(chunk)
                yield chunk
            else:
                await changed.wait()


def _write_all(spool: _Spool, data: bytes, offset: int) -> None:
    pwrite_all(spool.fd, (data,), offset)


async def _spooled(written: asyncio.Future[None]) -> None:
    try:
        await written
    except OSError as exc:  # a full disk, typically
        raise BackendUnavailable(f"cannot write the download's spool: {exc}") from None


@dataclass(frozen=True, slots=True)
class FillingBlob(BlobContent):
    """A blob served from its fill in progress rather than from storage."""

    fill: BlobFill

    def local_path(self) -> str | None:
        return None

    def reader(self, offset: int = 0) -> AsyncIterator[bytes]:
        return self.fill.reader(offset)

    async def redirect_url(self, method: str) -> str | None:
        return None


async def claim_fill(
    driver: StorageDriver, repository: str, digest: Digest, stored: Callable[[], Awaitable[bool]]
) -> ChunkClaim | None:
    """This process's claim on downloading ``repository@digest``; None once ``stored()``
    says another process has stored it (waiting for it meanwhile)."""
    claim = ChunkClaim(driver, f"{CLAIMS_ROOT}/{repository}/{digest.algorithm}/{digest.hex}")
    waiting = False
    while True:
        # PathNotFound: the winner removed the claims as it finished (see release_claim).
        with contextlib.suppress(OffsetBusy, PathNotFound):
            await claim.acquire()
            if not await stored():
                return claim
            await claim.finish()
            return None
        if await stored():
            return None
        if not waiting:
            waiting = True
            log.info("proxy: %s@%s is being downloaded by another process", repository, digest)
        await asyncio.sleep(_POLL)


async def release_claim(claim: ChunkClaim, *, stored: bool) -> None:
    """Withdraw the claim; once the blob is stored, remove the claims' directory too
    (whoever claims after that finds the blob stored and downloads nothing)."""
    await claim.finish()
    if stored:
        with contextlib.suppress(StorageError):
            await claim.driver.delete(claim.directory)


async def verify(chunks: AsyncIterator[bytes], digest: Digest, size: int) -> None:
    """Consume ``chunks`` and check them against ``digest`` and ``size`` (nothing stored)."""
    h = hashlib.new(digest.algorithm)
    received = 0
    async for chunk in chunks:
        await asyncio.to_thread(h.update, chunk)
        received += len(chunk)
    if received != size or h.hexdigest() != digest.hex:
        raise DigestInvalid(f"digest {digest} does not match the upstream's content")
