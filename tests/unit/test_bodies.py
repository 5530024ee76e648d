"""feed(): a body written piece by piece as it comes, hashed in batches of the size asked."""

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
def test_feed_writes_pieces_as_they_come_and_hashes_batches(
    batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dockyard.storage.bodies as bodies

    data = os.urandom(3 * BATCH + 12345)
    writer = _RecordingWriter()
    hashes = RunningHashes({"sha256": ResumableHash.new("sha256")})
    batches: list[int] = []
    hash_all = bodies._hash_all

    def recording(h: ResumableHash, pieces: list[bytes]) -> None:
        batches.append(sum(map(len, pieces)))
        hash_all(h, pieces)

    monkeypatch.setattr(bodies, "_hash_all", recording)
    received = asyncio.run(
        feed(writer, _pieces(data, 64 << 10), hashes, len(data), final=True, batch=batch)
    )

    assert received == len(data) and writer.committed
    # The writer got the pieces themselves, never joined (the driver batches its writes).
    assert [len(w) for w in writer.writes[:-1]] == [64 << 10] * (len(writer.writes) - 1)
    assert b"".join(writer.writes) == data
    # Every hashed batch but the last gathered exactly ``batch`` of the 64 KiB pieces.
    assert batches[:-1] == [batch] * (len(batches) - 1)
    assert 0 < batches[-1] <= batch
    assert hashes.hexdigest("sha256") == hashlib.sha256(data).hexdigest()
