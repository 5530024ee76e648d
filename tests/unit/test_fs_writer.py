"""The filesystem writer gathers the pieces it is given and writes them with pwritev,
at their offsets, whatever their number and however short the kernel's writes, each
write at most WRITE_MAX bytes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from dockyard import filewrite
from dockyard.filewrite import WRITE_MAX
from dockyard.storage.drivers.filesystem import FilesystemDriver

PATH = "/docker/registry/v2/repositories/a/_uploads/u/data"


def _write(root: Path, chunks: list[list[bytes]]) -> bytes:
    """Each list of pieces written by a writer of its own, resuming where the last
    one closed; the file's content."""

    async def scenario() -> bytes:
        driver = FilesystemDriver(str(root))
        try:
            offset = 0
            for pieces in chunks:
                writer = await driver.writer(PATH, offset)
                for piece in pieces:
                    await writer.write(piece)
                offset += sum(map(len, pieces))
                assert writer.size == offset
                await writer.close()
            return await driver.get_content(PATH)
        finally:
            await driver.aclose()

    return asyncio.run(scenario())


def test_more_pieces_than_one_pwritev_takes(tmp_path: Path) -> None:
    # 5,000 pieces of 3 bytes up to 1 MiB of 16-byte ones: batches of thousands of
    # pieces, past IOV_MAX, and a last batch gathered only by close.
    chunks = [[os.urandom(3) for _ in range(5000)],
              [os.urandom(16) for _ in range((1 << 20) // 16 + 7)],
              [os.urandom(300_000) for _ in range(5)]]
    assert _write(tmp_path, chunks) == b"".join(b"".join(c) for c in chunks)


def test_short_writes_go_on_inside_the_piece_they_ended_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pwritev = os.pwritev

    def short(fd: int, buffers: list[bytes], offset: int) -> int:
        # At most 1,000 bytes a call: most calls end inside a piece.
        taken: list[memoryview] = []
        size = 0
        for b in buffers:
            view = memoryview(b)[: 1000 - size]
            taken.append(view)
            size += len(view)
            if size == 1000:
                break
        return pwritev(fd, taken, offset)

    monkeypatch.setattr(filewrite.os, "pwritev", short)
    chunks = [[os.urandom(n) for n in (1, 999, 1500, 70_000, 3)] * 20, [os.urandom(4096)]]
    assert _write(tmp_path, chunks) == b"".join(b"".join(c) for c in chunks)


def test_no_write_takes_more_than_write_max(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large pieces are written in slices (the page cache gives a write folios as large
    as the write), small ones gathered up to the same size."""
    pwritev = os.pwritev
    calls: list[tuple[int, int]] = []  # (bytes, buffers) of each call

    def recording(fd: int, buffers: list[bytes], offset: int) -> int:
        calls.append((sum(map(len, buffers)), len(buffers)))
        return pwritev(fd, buffers, offset)

    monkeypatch.setattr(filewrite.os, "pwritev", recording)
    chunks = [[os.urandom(1 << 20), os.urandom(300_000), os.urandom(5)],
              [os.urandom(3) for _ in range(5000)] + [os.urandom(WRITE_MAX + 1)]]
    assert _write(tmp_path, chunks) == b"".join(b"".join(c) for c in chunks)
    assert max(size for size, _ in calls) == WRITE_MAX
    assert max(count for _, count in calls) <= os.sysconf("SC_IOV_MAX")
    # The 1 MiB piece alone fills eight whole writes.
    assert sum(1 for size, _ in calls if size == WRITE_MAX) >= 8
    assert sum(size for size, _ in calls) == sum(len(p) for c in chunks for p in c)
