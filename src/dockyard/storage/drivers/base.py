"""The storage driver contract: opaque paths and bytes, nothing registry-specific.

Paths are absolute, ``/``-separated, and match :data:`PATH_PATTERN`; drivers
assume callers went through :class:`CheckedDriver`, which enforces that once
for every driver (as distribution's ``base.Base`` does).
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast, runtime_checkable

from dockyard.errors import StorageError

__all__ = [
    "PATH_PATTERN",
    "AbortsStaleWrites",
    "CheckedDriver",
    "FileInfo",
    "FileWriter",
    "GetsMany",
    "InvalidOffset",
    "InvalidPath",
    "ListsMany",
    "PathNotFound",
    "PutsMany",
    "RollsBack",
    "StatsMany",
    "StorageDriver",
    "StorageError",
    "get_many",
    "list_many",
    "put_many",
    "put_unsynced",
    "roll_back",
    "walk_scanned",
]

PATH_PATTERN = re.compile(r"(?:/[A-Za-z0-9._-]+)+")


class PathNotFound(StorageError):
    """Nothing exists at ``path``."""

    def __init__(self, path: str, driver: str = "") -> None:
        super().__init__(f"path not found: {path}", driver)
        self.path = path


class InvalidPath(StorageError):
    """``path`` is not an acceptable storage path."""

    def __init__(self, path: str, driver: str = "") -> None:
        super().__init__(f"invalid path: {path[:300]!r}", driver)
        self.path = path


class InvalidOffset(StorageError):
    """A writer was asked to start beyond the end of the file."""

    def __init__(self, path: str, offset: int, driver: str = "") -> None:
        super().__init__(f"invalid offset {offset} for {path}", driver)
        self.path = path
        self.offset = offset


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What ``stat`` knows about a path."""

    path: str
    size: int
    mod_time: float
    is_dir: bool
    etag: str | None = None
    """The object store's entity tag where a listing gives it (S3: the MD5 hex of a
    single-part object's content), else None."""


class FileWriter(Protocol):
    """A stream of bytes into one file.

    ``close`` leaves what was written resumable: ``stat`` reports its size and
    ``writer(path, size)`` continues it, even from another process. ``commit``
    finishes the file so ``reader``/``move`` see it (an object store completes
    its multipart upload there), then closes.
    """

    @property
    def size(self) -> int:
        """Bytes in the file so far, including the offset the writer started at."""
        ...

    async def write(self, data: bytes) -> None:
        """Append ``data``; the caller must not mutate it afterwards."""
        ...

    async def commit(self) -> None:
        """Make everything written durable and complete, then close."""
        ...

    async def cancel(self) -> None:
        """Abandon the file and remove it."""
        ...

    async def close(self) -> None:
        """Persist what was written so far and release resources; resumable later."""
        ...


@runtime_checkable
class StorageDriver(Protocol):
    """Bytes at paths. Every method may raise :class:`StorageError`."""

    name: str

    async def get_content(self, path: str) -> bytes:
        """The whole file (small files only: links, states, manifests)."""
        ...

    async def put_content(self, path: str, data: bytes) -> None:
        """Write a whole file atomically: readers see the old or the new bytes."""
        ...

    def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        """Stream the file from ``offset`` in chunks, without holding it in memory."""
        ...

    async def writer(self, path: str, offset: int = 0) -> FileWriter:
        """Write from ``offset`` on, discarding anything after it (0 starts afresh)."""
        ...

    async def stat(self, path: str) -> FileInfo: ...

    async def list(self, path: str) -> list[str]:
        """Full paths of the direct children of the directory ``path``."""
        ...

    async def move(self, source: str, dest: str) -> None:
        """Move a file, replacing ``dest`` atomically where the backend can."""
        ...

    async def delete(self, path: str) -> None:
        """Remove a file or a whole directory tree."""
        ...

    async def redirect_url(self, path: str, method: str) -> str | None:
        """A URL the client may fetch directly, or None to serve through the registry."""
        ...

    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        """Every file and directory below ``path``, depth first."""
        ...

    def local_path(self, path: str) -> str | None:
        """An OS path for zero-copy sends, where the driver has one."""
        ...

    async def aclose(self) -> None:
        """Release clients, sessions and threads at shutdown."""
        ...


@functools.cache
def _type_has(kind: Any, protocol: Any) -> bool:
    return issubclass(kind, protocol)


def _has(driver: object, protocol: Any) -> bool:
    """``isinstance(driver, protocol)`` answered once per driver class: the check of a
    runtime protocol inspects every member, too slow for every request."""
    kind: Any = type(driver)
    return _type_has(kind, protocol)


@runtime_checkable
class ListsMany(Protocol):
    """A driver that lists many directories in one call cheaper than one by one."""

    async def list_many(self, paths: Sequence[str]) -> builtins.list[builtins.list[str] | None]:
        """For each of ``paths``, what :meth:`StorageDriver.list` answers, or None
        where it would raise :class:`PathNotFound`; in the order of ``paths``."""
        ...


# Directory listings in flight at once for a driver without ``list_many`` (an object
# store): each is a round trip, so they overlap, but a bucket is not flooded.
_LIST_CONCURRENCY = 32


async def list_many(driver: StorageDriver, paths: Sequence[str]) -> list[list[str] | None]:
    """The children of each of ``paths`` (None for a missing one), listed together:
    in one thread hop on the filesystem, concurrently on object stores."""
    if _has(driver, ListsMany):
        return await cast(ListsMany, driver).list_many(paths)
    gate = asyncio.Semaphore(_LIST_CONCURRENCY)

    async def one(path: str) -> list[str] | None:
        async with gate:
            try:
                return await driver.list(path)
            except PathNotFound:
                return None

    return list(await asyncio.gather(*(one(p) for p in paths)))


@runtime_checkable
class GetsMany(Protocol):
    """A driver that reads many small files in one call cheaper than one by one."""

    async def get_many(self, paths: Sequence[str]) -> list[bytes | None]:
        """What :func:`get_many` promises, in fewer round trips."""
        ...


async def get_many(driver: StorageDriver, paths: Sequence[str]) -> list[bytes | None]:
    """The content of each of ``paths`` (small files: links), None for a missing one;
    in one thread hop on the filesystem, concurrently on object stores."""
    if _has(driver, GetsMany):
        return await cast(GetsMany, driver).get_many(paths)
    gate = asyncio.Semaphore(_LIST_CONCURRENCY)

    async def one(path: str) -> bytes | None:
        async with gate:
            try:
                return await driver.get_content(path)
            except PathNotFound:
                return None

    return list(await asyncio.gather(*(one(p) for p in paths)))


@runtime_checkable
class StatsMany(Protocol):
    """A driver that stats many files in one call cheaper than one by one."""

    async def stat_many(self, paths: Sequence[str]) -> list[FileInfo | None]:
        """What :func:`stat_many` promises, in fewer round trips."""
        ...


async def stat_many(driver: StorageDriver, paths: Sequence[str]) -> list[FileInfo | None]:
    """:meth:`StorageDriver.stat` of each of ``paths`` (None for a missing one): in one
    thread hop on the filesystem (a manifest's fifty layers), concurrently elsewhere."""
    if _has(driver, StatsMany):
        return await cast(StatsMany, driver).stat_many(paths)
    gate = asyncio.Semaphore(_LIST_CONCURRENCY)

    async def one(path: str) -> FileInfo | None:
        async with gate:
            try:
                return await driver.stat(path)
            except PathNotFound:
                return None

    return list(await asyncio.gather(*(one(p) for p in paths)))


@runtime_checkable
class PutsMany(Protocol):
    """A driver that writes several small files together cheaper than one by one."""

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """What :func:`put_many` promises, in fewer round trips or disk flushes."""
        ...


async def put_many(driver: StorageDriver, items: Sequence[tuple[str, bytes]]) -> None:
    """Write each ``(path, data)`` whole, as ``put_content``, in order: a reader, or
    storage after a crash, sees a prefix of them written, never a later one without
    every earlier one (a tag only after the manifest it points to). All are durable
    once this returns. A driver may leave alone a file that already holds ``data``."""
    if _has(driver, PutsMany):
        await cast(PutsMany, driver).put_many(items)
        return
    for path, data in items:
        await driver.put_content(path, data)


@runtime_checkable
class PutsUnsynced(Protocol):
    """A driver whose durable writes wait for the disk, and that can skip the wait."""

    async def put_unsynced(self, items: Sequence[tuple[str, bytes]]) -> None:
        """What :func:`put_unsynced` promises, without waiting for the disk."""
        ...


async def put_unsynced(driver: StorageDriver, items: Sequence[tuple[str, bytes]]) -> None:
    """Write each ``(path, data)`` whole, as ``put_content``, but durable only as far as
    the process: a reader, and storage after a ``kill -9``, sees each file whole or not
    at all; after a power cut a file may be missing or empty. Only for files whose
    readers take a missing or damaged one for "not written" (an upload's bookkeeping).
    Drivers that cannot tell the two apart (object stores) write them as ``put_content``."""
    if _has(driver, PutsUnsynced):
        await cast(PutsUnsynced, driver).put_unsynced(items)
        return
    await asyncio.gather(*(driver.put_content(path, data) for path, data in items))


@runtime_checkable
class RollsBack(Protocol):
    """A writer that can discard what it wrote while it still holds the file."""

    async def rollback(self) -> None:
        """Cut the file back to the offset the writer was opened at, then close."""
        ...


async def roll_back(driver: StorageDriver, writer: FileWriter, path: str, offset: int) -> None:
    """Undo a failed write: natively where the writer can, else by reopening at ``offset``."""
    if isinstance(writer, RollsBack):
        await writer.rollback()
        return
    await writer.close()
    await (await driver.writer(path, offset)).close()


@runtime_checkable
class AbortsStaleWrites(Protocol):
    """A driver that keeps writer state outside the layout (S3 multipart uploads)."""

    async def abort_stale_multipart_uploads(
        self, older_than: datetime, keep: Callable[[str], Awaitable[bool]] | None = None
    ) -> int:
        """Abort in-progress writes started before ``older_than``, except those of the
        paths ``keep`` says are still in use (the backend's start date may be wrong or
        skewed); returns how many were aborted."""
        ...


async def walk_scanned(
    scan: Callable[[str], Awaitable[list[FileInfo]]], path: str
) -> AsyncIterator[FileInfo]:
    """Every file and directory below ``path``, depth first, for a driver whose ``scan``
    lists one directory's children (sorted); one removed meanwhile is passed over."""
    stack = [path]
    while stack:
        directory = stack.pop()
        try:
            entries = await scan(directory)
        except PathNotFound:
            if directory == path:
                raise
            continue
        for info in entries:
            yield info
        stack.extend(i.path for i in reversed(entries) if i.is_dir)


def check_path(path: str, driver: str) -> str:
    """Reject anything but clean absolute paths (no ``.``/``..``/empty components)."""
    # A "." or ".." component needs "/." in the path: most paths skip the split.
    if not PATH_PATTERN.fullmatch(path) or (
        "/." in path and any(p in {".", ".."} for p in path.split("/"))
    ):
        raise InvalidPath(path, driver)
    return path


class CheckedDriver:
    """Wraps any driver once: every path is checked before the driver sees it."""

    def __init__(self, inner: StorageDriver) -> None:
        self.inner = inner
        self.name = inner.name

    async def get_content(self, path: str) -> bytes:
        return await self.inner.get_content(check_path(path, self.name))

    async def put_content(self, path: str, data: bytes) -> None:
        await self.inner.put_content(check_path(path, self.name), data)

    def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        if offset < 0:
            raise InvalidOffset(path, offset, self.name)
        return self.inner.reader(check_path(path, self.name), offset)

    async def writer(self, path: str, offset: int = 0) -> FileWriter:
        if offset < 0:
            raise InvalidOffset(path, offset, self.name)
        return await self.inner.writer(check_path(path, self.name), offset)

    async def stat(self, path: str) -> FileInfo:
        return await self.inner.stat(check_path(path, self.name))

    async def list(self, path: str) -> list[str]:
        return await self.inner.list(check_path(path, self.name))

    async def get_many(self, paths: Sequence[str]) -> builtins.list[bytes | None]:
        return await get_many(self.inner, [check_path(p, self.name) for p in paths])

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        await put_many(self.inner, [(check_path(p, self.name), data) for p, data in items])

    async def put_unsynced(self, items: Sequence[tuple[str, bytes]]) -> None:
        await put_unsynced(self.inner, [(check_path(p, self.name), data) for p, data in items])

    async def list_many(self, paths: Sequence[str]) -> builtins.list[builtins.list[str] | None]:
        return await list_many(self.inner, [check_path(p, self.name) for p in paths])

    async def stat_many(self, paths: Sequence[str]) -> builtins.list[FileInfo | None]:
        return await stat_many(self.inner, [check_path(p, self.name) for p in paths])

    async def move(self, source: str, dest: str) -> None:
        await self.inner.move(check_path(source, self.name), check_path(dest, self.name))

    async def delete(self, path: str) -> None:
        await self.inner.delete(check_path(path, self.name))

    async def redirect_url(self, path: str, method: str) -> str | None:
        return await self.inner.redirect_url(check_path(path, self.name), method)

    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        return self.inner.walk(check_path(path, self.name))

    def local_path(self, path: str) -> str | None:
        return self.inner.local_path(check_path(path, self.name))

    async def aclose(self) -> None:
        await self.inner.aclose()
