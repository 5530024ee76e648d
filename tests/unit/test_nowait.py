"""File calls for the event loop that never wait for the disk (dockyard.nowait)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard import nowait

MiB = 1 << 20


def _evict(path: Path, offset: int) -> int:
    """Drop ``path``'s pages from ``offset`` on out of the page cache; an open descriptor."""
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)  # only clean pages can be dropped
    os.posix_fadvise(fd, offset, 0, os.POSIX_FADV_DONTNEED)
    return fd


@pytest.fixture
def blob(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(MiB + 17)
    path = tmp_path / "data"
    path.write_bytes(data)
    return path, data


def test_a_cached_file_is_read_without_a_thread(blob: tuple[Path, bytes]) -> None:
    path, data = blob
    assert nowait.read_cached(str(path), 0, 64 << 10) == data[: 64 << 10]
    assert nowait.read_cached(str(path), 1000, 50) == data[1000:1050]
    # Fewer bytes only at the end of the file.
    assert nowait.read_cached(str(path), MiB, 64 << 10) == data[MiB:]
    assert nowait.read_cached(str(path), len(data) + 5, 10) == b""
    fd = nowait.open_cached(str(path))
    assert fd is not None
    try:
        assert os.pread(fd, 10, 5) == data[5:15]
        assert nowait.cached_pages(fd, 0, len(data))
        assert nowait.cached_pages(fd, 7, 0)
    finally:
        os.close(fd)


def test_a_missing_file_is_left_to_the_thread(tmp_path: Path) -> None:
    """None, so that the caller's thread hop raises FileNotFoundError as before."""
    assert nowait.open_cached(str(tmp_path / "missing")) is None
    assert nowait.read_cached(str(tmp_path / "missing"), 0, 10) is None


def test_pages_out_of_the_cache_are_reported(blob: tuple[Path, bytes]) -> None:
    path, data = blob
    fd = _evict(path, 0)
    try:
        if nowait.cached_pages(fd, 0, len(data)):
            pytest.skip("the page cache kept the pages (or cachestat is missing)")
        # A read that would wait for the disk is refused, left to a thread.
        assert nowait.read_cached(str(path), MiB, 100) is None
        assert os.pread(fd, 4096, 0) == data[:4096]  # back in the cache
        assert nowait.cached_pages(fd, 0, 4096)
        assert nowait.read_cached(str(path), 10, 100) == data[10:110]
    finally:
        os.close(fd)
