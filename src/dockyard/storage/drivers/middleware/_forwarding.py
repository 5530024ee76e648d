"""The base of every storage middleware: the wrapped driver's methods, unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

from dockyard.storage.drivers.base import AbortsStaleWrites, FileInfo, FileWriter, StorageDriver

__all__ = ["ForwardingDriver"]


class ForwardingDriver:
    """A :class:`StorageDriver` that hands every call to ``inner``; middleware overrides
    the methods it changes (today ``redirect_url`` and ``aclose``).

    It is also :class:`AbortsStaleWrites`, so upload purging still finds an object
    store's abandoned multipart uploads through the middleware (none elsewhere).
    """

    def __init__(self, inner: StorageDriver) -> None:
        self.inner = inner
        self.name = inner.name

    async def get_content(self, path: str) -> bytes:
        return await self.inner.get_content(path)

    async def put_content(self, path: str, data: bytes) -> None:
        await self.inner.put_content(path, data)

    def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        return self.inner.reader(path, offset)

    async def writer(self, path: str, offset: int = 0) -> FileWriter:
        return await self.inner.writer(path, offset)

    async def stat(self, path: str) -> FileInfo:
        return await self.inner.stat(path)

    async def list(self, path: str) -> list[str]:
        return await self.inner.list(path)

    async def move(self, source: str, dest: str) -> None:
        await self.inner.move(source, dest)

    async def delete(self, path: str) -> None:
        await self.inner.delete(path)

    async def redirect_url(self, path: str, method: str) -> str | None:
        return await self.inner.redirect_url(path, method)

    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        return self.inner.walk(path)

    def local_path(self, path: str) -> str | None:
        return self.inner.local_path(path)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def abort_stale_multipart_uploads(
        self, older_than: datetime, keep: Callable[[str], Awaitable[bool]] | None = None
    ) -> int:
        if isinstance(self.inner, AbortsStaleWrites):
            return await self.inner.abort_stale_multipart_uploads(older_than, keep)
        return 0
