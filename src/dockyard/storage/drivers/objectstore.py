"""What the object store drivers (s3, azure, gcs) share: stores of named objects.

:class:`PartWriter`
    The writer they all build on: ``write`` buffers until a part (an S3 multipart
    part, an Azure block, a GCS part object) is full and uploads it while the next
    one fills -- at most one upload in flight, so memory stays at two parts.
    ``close`` uploads what is left as a last part, then lets the driver make the
    parts the file's resumable content (:meth:`PartWriter._save`: nothing more for
    S3, Put Block List, the GCS part list). A driver supplies how one part is
    uploaded and saved, and ``commit``.
:class:`PrefixTree`
    ``list`` and ``walk`` from one listing of a directory (a name prefix) at a time.

An object store driver is a package laid out as the others (a template for the next):
``_params`` reads ``storage.<driver>`` with ``params.ParameterReader``; a store class
(``_bucket``/``_container``) holds the client (its library imported at the top: the
factory imports the package only when configured, and reports a missing extra), keys,
single requests with their error mapping, and ``delete``; ``_writer`` has the
:class:`PartWriter` subclass and ``open_writer``, which finds an upload again (in any
instance) and cuts it back to the requested offset;
``_driver`` subclasses the store with the rest of the contract.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import AsyncIterator
from typing import Generic, Protocol, TypeVar

from dockyard.storage.drivers.base import FileInfo, PathNotFound, StorageError, walk_scanned

__all__ = ["PartWriter", "PrefixTree"]


class _Driver(Protocol):
    name: str

    async def delete(self, path: str) -> None: ...


D = TypeVar("D", bound=_Driver)


class PartWriter(Generic[D]):
    """Uploads ``part_size`` pieces as data arrives; see the module docstring.

    Subclasses implement :meth:`_put_part` (upload one part and remember it),
    :meth:`_save` (make the parts uploaded so far the file's content) and ``commit``.
    ``dirty`` says whether the file must be saved even if nothing is written (a
    writer that started afresh, or cut the file back).
    """

    def __init__(self, driver: D, path: str, offset: int, part_size: int, *, dirty: bool) -> None:
        self._driver = driver
        self._path = path
        self._size = offset
        self._part_size = part_size
        self._dirty = dirty
        self._buffer = bytearray()
        self._pending: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    async def _put_part(self, data: bytes) -> None:
        """Upload ``data`` as the next part."""
        raise NotImplementedError

    async def _save(self) -> None:
        """Make the parts uploaded so far the file's (resumable) content."""
        raise NotImplementedError

    async def _settle(self) -> None:
        """Wait for the part upload in flight, if any (its error is raised here)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise StorageError(f"write to a closed writer ({self._path})", self._driver.name)
        self._buffer += data
        self._size += len(data)
        part_size = self._part_size
        while len(self._buffer) >= part_size:
            await self._settle()
            part = bytes(self._buffer[:part_size])
            del self._buffer[:part_size]
            self._pending = asyncio.ensure_future(self._put_part(part))
            self._dirty = True

    async def _flush(self) -> None:
        """Wait for the part in flight, then upload the rest of the buffer as a last part."""
        await self._settle()
        if self._buffer:
            part = bytes(self._buffer)
            self._buffer.clear()
            self._dirty = True
            await self._put_part(part)

    async def _drop_pending(self) -> None:
        """Cancel a part upload a failed flush left running."""
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(BaseException):
                await self._pending
            self._pending = None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._flush()
            if self._dirty:
                await self._save()
                self._dirty = False
        finally:
            await self._drop_pending()

    async def cancel(self) -> None:
        self._closed = True
        await self._drop_pending()
        with contextlib.suppress(PathNotFound):
            await self._driver.delete(self._path)


class PrefixTree:
    """``list`` and ``walk`` for a store whose directories are name prefixes.

    The driver yields the direct children of a directory from ``_children`` (in any
    order); a directory without any (except the root) is PathNotFound.
    """

    name: str

    def _children(self, path: str) -> AsyncIterator[FileInfo]:
        raise NotImplementedError

    async def _scan(self, path: str) -> builtins.list[FileInfo]:
        """The direct children of a directory, sorted; PathNotFound if there are none."""
        out = [info async for info in self._children(path)]
        if not out and path != "/":
            raise PathNotFound(path, self.name)
        return sorted(out, key=lambda i: i.path)

    async def list(self, path: str) -> builtins.list[str]:
        return [info.path for info in await self._scan(path)]

    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        return walk_scanned(self._scan, path)
