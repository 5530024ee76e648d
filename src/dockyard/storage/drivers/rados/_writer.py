"""The RADOS writer: bytes written in place into a file's stripes, its size saved on close.

A write goes straight into the stripe objects (``<oid>.<n>``) at its offset, in pieces
that never cross a stripe, with one piece in flight while the next gathers. ``close``
and ``commit`` then set the first stripe's ``size`` and ``mtime`` xattrs in one atomic
operation: until then a reader, ``stat`` or another instance's ``writer(path, size)``
sees the size of the last close, so bytes a crashed request wrote past it do not count
(they are overwritten by whoever continues the upload).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from dockyard.storage.drivers.base import PathNotFound, StorageError
from dockyard.storage.drivers.rados._pool import FileMeta, RadosPool, stripe_object

__all__ = ["StripeWriter", "save_size"]

WRITE_PIECE = 4 << 20
"""Most bytes sent in one librados write (a piece also ends at its stripe's end)."""


def save_size(pool: RadosPool, ioctx: Any, oid: str, size: int) -> None:
    """Set ``size`` and ``mtime`` on the first stripe of ``oid``, atomically (in a thread)."""
    rados = pool._rados
    with rados.WriteOpCtx() as op:
        op.set_xattr("size", str(size).encode())
        op.set_xattr("mtime", pool.now().encode())
        ioctx.operate_write_op(op, stripe_object(oid, 0))


class StripeWriter:
    """Writes ``path`` (the file ``meta.oid``) from ``offset`` on; see the module docstring."""

    def __init__(self, pool: RadosPool, path: str, meta: FileMeta, offset: int) -> None:
        self._pool = pool
        self._path = path
        self._oid = meta.oid
        self._stripe = meta.stripe
        self._size = offset
        self._sent = offset  # bytes written to the stripes, or in flight
        self._buffer = bytearray()
        self._pending: asyncio.Task[None] | None = None
        self._closed = False
        self._dirty = False

    @property
    def size(self) -> int:
        return self._size

    def _piece_length(self) -> int:
        """Bytes the next piece may hold: up to the end of the stripe it starts in."""
        return min(WRITE_PIECE, self._stripe - self._sent % self._stripe)

    async def _send(self, data: bytes, position: int) -> None:
        index, inner = divmod(position, self._stripe)
        name = stripe_object(self._oid, index)
        await self._pool._call(self._path, lambda io: io.write(name, data, inner))

    async def _settle(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise StorageError(f"write to a closed writer ({self._path})", self._pool.name)
        self._buffer += data
        self._size += len(data)
        self._dirty = True
        while self._buffer and len(self._buffer) >= self._piece_length():
            length = self._piece_length()
            piece = bytes(self._buffer[:length])
            del self._buffer[:length]
            await self._settle()
            self._pending = asyncio.ensure_future(self._send(piece, self._sent))
            self._sent += length

    async def _flush(self) -> None:
        """Send what is buffered (pieces that end at stripe ends), waiting for them all."""
        while self._buffer:
            length = min(self._piece_length(), len(self._buffer))
            piece = bytes(self._buffer[:length])
            del self._buffer[:length]
            await self._settle()
            self._pending = asyncio.ensure_future(self._send(piece, self._sent))
            self._sent += length
        await self._settle()

    async def _drop_pending(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(BaseException):
                await self._pending
            self._pending = None

    async def _finish(self) -> None:
        self._closed = True
        try:
            await self._flush()
            if self._dirty:
                size, oid, pool = self._size, self._oid, self._pool
                await pool._call(self._path, lambda io: save_size(pool, io, oid, size))
                self._dirty = False
        finally:
            await self._drop_pending()

    async def close(self) -> None:
        if not self._closed:
            await self._finish()

    async def commit(self) -> None:
        """Everything is in place once the size is saved: commit is a close that must
        not come after one."""
        if self._closed:
            raise StorageError(f"commit of a closed writer ({self._path})", self._pool.name)
        self._dirty = True  # the mtime of a committed file is the commit's
        await self._finish()

    async def cancel(self) -> None:
        self._closed = True
        await self._drop_pending()
        pool, path, oid = self._pool, self._path, self._oid
        with contextlib.suppress(PathNotFound):
            await pool._call(path, lambda io: pool.unlink_file(io, path, oid))
