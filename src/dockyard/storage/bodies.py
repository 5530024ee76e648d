"""A request body streamed into an upload: gathered into batches, each written while
the running digests hash it off the event loop (:class:`RunningHashes`)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import deque
from collections.abc import AsyncIterator

from dockyard.errors import SizeInvalid
from dockyard.hashstate import ResumableHash
from dockyard.storage.drivers.base import FileWriter

__all__ = ["BATCH", "INLINE", "RunningHashes", "empty_body", "feed", "prepend", "read_up_to"]

# Chunks are gathered to this size before hashing/writing, to amortise thread hops.
BATCH = 1 << 20
# Below this, hashing inline is cheaper than a hop to a worker thread.
INLINE = 64 << 10


# Batches queued per algorithm: the thread hashing one goes straight on to the next,
# without a round trip through the event loop (SHA-512 bounds a chunked upload).
DEPTH = 2


class _Lane:
    """One algorithm's batches, hashed in order by one worker thread at a time."""

    def __init__(self, h: ResumableHash) -> None:
        self.h = h
        self._queue: deque[tuple[bytes, concurrent.futures.Future[None]]] = deque()
        self._lock = threading.Lock()
        self._busy = False

    def push(self, data: bytes) -> asyncio.Future[None]:
        """Queue ``data``; the future is done once it is hashed (on the running loop)."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._lock:
            self._queue.append((data, done))
            start, self._busy = not self._busy, True
        if start:
            asyncio.get_running_loop().run_in_executor(None, self._drain)
        return asyncio.wrap_future(done)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._busy = False
                    return
                data, done = self._queue.popleft()
            # A batch whose waiter was cancelled is hashed all the same: order matters.
            waited = done.set_running_or_notify_cancel()
            try:
                self.h.update(data)
            except BaseException as exc:
                if waited:
                    done.set_exception(exc)
            else:
                if waited:
                    done.set_result(None)


class RunningHashes:
    """The running digests of one upload, updated off the event loop."""

    def __init__(self, hashes: dict[str, ResumableHash]) -> None:
        self.by_algorithm = hashes
        self._lanes = [_Lane(h) for h in hashes.values()]
        self._pending: deque[asyncio.Future[None]] = deque()

    async def update(self, data: bytes) -> None:
        """Hash ``data``; returns while up to :data:`DEPTH` batches are still hashing.

        Each algorithm hashes in a thread of its own: a chunk that saves SHA-256 and
        SHA-512 states costs the time of the slower one (SHA-512, without the CPU's
        SHA extensions), not of both one after the other.
        """
        if len(data) <= INLINE and not self._pending:
            for h in self.by_algorithm.values():
                h.update(data)
            return
        while len(self._pending) >= DEPTH * len(self._lanes):
            await self._pending.popleft()
        self._pending.extend(lane.push(data) for lane in self._lanes)

    async def settle(self) -> None:
        """Wait for every batch in flight."""
        while self._pending:
            await self._pending.popleft()

    def hexdigest(self, algorithm: str) -> str:
        """The digest so far in ``algorithm``."""
        return self.by_algorithm[algorithm].hexdigest()


async def feed(
    writer: FileWriter,
    body: AsyncIterator[bytes] | None,
    hashes: RunningHashes,
    length: int | None,
    *,
    final: bool,
) -> int:
    """Write and hash ``body``; the number of bytes it held."""
    received = 0
    batch: list[bytes] = []
    batched = 0
    async for chunk in body or empty_body():
        batch.append(chunk)
        batched += len(chunk)
        if batched >= BATCH:
            data = b"".join(batch)
            batch.clear()
            batched = 0
            await asyncio.gather(hashes.update(data), writer.write(data))
            received += len(data)
    if batch:
        data = b"".join(batch)
        await asyncio.gather(hashes.update(data), writer.write(data))
        received += len(data)
    await hashes.settle()
    if length is not None and received != length:
        raise SizeInvalid(f"received {received} bytes, expected {length}")
    # A chunk stays resumable; the last one completes the file for the move.
    await (writer.commit() if final else writer.close())
    return received


async def read_up_to(
    body: AsyncIterator[bytes], limit: int
) -> tuple[bytes, AsyncIterator[bytes] | None]:
    """Up to ``limit`` bytes of ``body``; the rest of the stream, or None if it ended."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in body:
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), body
    return b"".join(chunks), None


async def prepend(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``head``, then the rest of the stream."""
    yield head
    async for chunk in rest:
        yield chunk


async def empty_body() -> AsyncIterator[bytes]:
    """A body with no bytes."""
    return
    yield b""
