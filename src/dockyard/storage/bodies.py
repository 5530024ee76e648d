"""A request body streamed into an upload: written piece by piece (the driver's writer
batches its system calls) while the running digests hash it off the event loop in
batches of pieces (:class:`RunningHashes`); the pieces are never joined, which was a
copy of every byte."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence

from dockyard.errors import SizeInvalid
from dockyard.hashstate import ResumableHash
from dockyard.serial import SerialLane
from dockyard.storage.drivers.base import FileWriter

__all__ = ["BATCH", "INLINE", "RunningHashes", "empty_body", "feed", "prepend", "read_up_to"]

# Pieces are gathered to this size before hashing, to amortise thread hops.
BATCH = 1 << 20
# Below this, hashing inline is cheaper than a hop to a worker thread.
INLINE = 64 << 10


# Batches queued per algorithm: the thread hashing one goes straight on to the next,
# without a round trip through the event loop (SHA-512 bounds a chunked upload). On
# 2 cores an upload's event loop, hash thread and write thread (and the client) take
# turns: with 2 batches queued each stage was 40-55% busy while the others waited; with
# 4, large monolithic pushes are some 5-7% faster (benchmarks/README.md). The pieces are
# shared with the writer's queue: about 4 MiB held per upload instead of 2.
DEPTH = 4


class RunningHashes:
    """The running digests of one upload, updated off the event loop."""

    def __init__(self, hashes: dict[str, ResumableHash]) -> None:
        self.by_algorithm = hashes
        self._lanes = [(SerialLane(), h) for h in hashes.values()]
        self._pending: deque[asyncio.Future[None]] = deque()

    async def update(self, pieces: Sequence[bytes], size: int) -> None:
        """Hash ``pieces`` (``size`` bytes in all, never mutated afterwards); returns
        while up to :data:`DEPTH` batches are still hashing.

        Each algorithm hashes in a thread of its own: a chunk that saves SHA-256 and
        SHA-512 states costs the time of the slower one (SHA-512, without the CPU's
        SHA extensions), not of both one after the other.
        """
        if size <= INLINE and not self._pending:
            for h in self.by_algorithm.values():
                _hash_all(h, pieces)
            return
        while len(self._pending) >= DEPTH * len(self._lanes):
            await self._pending.popleft()
        self._pending.extend(lane.submit(_hash_all, h, pieces) for lane, h in self._lanes)

    async def settle(self) -> None:
        """Wait for every batch in flight."""
        while self._pending:
            await self._pending.popleft()

    def hexdigest(self, algorithm: str) -> str:
        """The digest so far in ``algorithm``."""
        return self.by_algorithm[algorithm].hexdigest()


def _hash_all(h: ResumableHash, pieces: Sequence[bytes]) -> None:
    for piece in pieces:
        h.update(piece)


async def feed(
    writer: FileWriter,
    body: AsyncIterator[bytes] | None,
    hashes: RunningHashes,
    length: int | None,
    *,
    final: bool,
    batch: int = BATCH,
) -> int:
    """Write ``body`` as it comes and hash it in batches of about ``batch`` bytes (the
    batches in flight hold a few of them); the number of bytes it held."""
    received = 0
    gathered: list[bytes] = []
    batched = 0
    async for chunk in body or empty_body():
        await writer.write(chunk)
        gathered.append(chunk)
        batched += len(chunk)
        if batched >= batch:
            # A new list: the one handed over is hashed while the next one fills.
            await hashes.update(gathered, batched)
            received += batched
            gathered, batched = [], 0
    if gathered:
        await hashes.update(gathered, batched)
        received += batched
    if length is not None and received != length:
        await hashes.settle()
        raise SizeInvalid(f"received {received} bytes, expected {length}")
    # The data's fsync (a chunk stays resumable; the last one completes the file for
    # the move) runs while the last batches are still hashing: a chunk's end waits
    # for the slower of the two, not for both one after the other.
    await asyncio.gather(hashes.settle(), writer.commit() if final else writer.close())
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
