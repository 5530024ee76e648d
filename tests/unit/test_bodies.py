"""feed(): a body gathered into batches of the size asked, written and hashed whole."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

import pytest

from dockyard.hashstate import ResumableHash
from dockyard.storage.bodies import BATCH, RunningHashes, feed


class _RecordingWriter:
    """A FileWriter that keeps what it is given, write by write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.committed = False

    @property
    def size(self) -> int:
        return sum(map(len, self.writes))

    async def write(self, data: bytes) -> None:
        self.writes.append(data)

    async def commit(self) -> None:
        self.committed = True

    async def cancel(self) -> None:
        raise AssertionError("not cancelled in these tests")

    async def close(self) -> None:
        pass


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("batch", [BATCH, 256 << 10])
def test_feed_writes_batches_of_the_size_asked(batch: int) -> None:
    data = os.urandom(3 * BATCH + 12345)
    writer = _RecordingWriter()
    hashes = RunningHashes({"sha256": ResumableHash.new("sha256")})

    received = asyncio.run(
        feed(writer, _pieces(data, 64 << 10), hashes, len(data), final=True, batch=batch)
    )

    assert received == len(data) and writer.committed
    assert b"".join(writer.writes) == data
    # Every write but the last gathered exactly one batch of the 64 KiB pieces.
    assert [len(w) for w in writer.writes[:-1]] == [batch] * (len(writer.writes) - 1)
    assert 0 < len(writer.writes[-1]) <= batch
    assert hashes.hexdigest("sha256") == hashlib.sha256(data).hexdigest()
