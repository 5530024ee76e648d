"""Writing a file's data in system calls the page cache serves well.

The page cache gives a write folios as large as the write (ext4's large folios,
Linux 6.x). On a VM whose host takes back the guest's free memory (free page
reporting, as Firecracker and other balloon devices do), large folios come from
blocks the host has taken back and must fault in again 4 KiB at a time: here, writes
of 1 MiB into a new file ran at 0.4-0.6 GB/s, writes of 64-128 KiB at 3-4.6 GB/s
(docker-registry writes 32 KiB at a time); eight image pushes cost the server
1.5-1.8 CPU-s a round with writes of up to 1 MiB, 1.0-1.4 with these.
:func:`pwrite_all` keeps each write at :data:`WRITE_MAX` bytes, small pieces gathered
into one ``pwritev``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

__all__ = ["WRITE_MAX", "pwrite_all"]

#: Bytes one write system call takes at most.
WRITE_MAX = 128 << 10
_IOV_MAX = os.sysconf("SC_IOV_MAX")


def pwrite_all(fd: int, pieces: Iterable[bytes], offset: int) -> int:
    """Write ``pieces`` one after the other at ``offset`` of ``fd``, each system call at
    most :data:`WRITE_MAX` bytes; the offset where they end."""
    batch: list[bytes | memoryview] = []
    size = 0
    for piece in pieces:
        view = memoryview(piece)
        while view:
            part = view[:WRITE_MAX - size]
            batch.append(part)
            size += len(part)
            view = view[len(part):]
            if size == WRITE_MAX or len(batch) == _IOV_MAX:
                offset = _pwritev_all(fd, batch, offset)
                batch, size = [], 0
    return _pwritev_all(fd, batch, offset) if batch else offset


def _pwritev_all(fd: int, views: list[bytes | memoryview], offset: int) -> int:
    """``views`` in one ``pwritev``, and again for what a short write left; the offset
    after them."""
    while views:
        written = os.pwritev(fd, views, offset)
        offset += written
        done = 0
        while done < len(views) and written >= len(views[done]):
            written -= len(views[done])
            done += 1
        del views[:done]
        if written:  # a short write ended inside this view
            views[0] = memoryview(views[0])[written:]
    return offset
