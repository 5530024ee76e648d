"""In-memory driver: a dict of files for tests and throwaway registries (``storage.inmemory``)."""

from __future__ import annotations

import posixpath
import time
from collections.abc import AsyncIterator

from dockyard.storage.drivers.base import FileInfo, InvalidOffset, PathNotFound, StorageError

__all__ = ["InMemoryDriver"]

READ_CHUNK = 1 << 20


class InMemoryDriver:
    """Files as bytearrays; directories exist while something lives below them."""

    name = "inmemory"

    def __init__(self) -> None:
        self._files: dict[str, bytearray] = {}
        self._mtimes: dict[str, float] = {}
        # directory -> names of its direct children
        self._dirs: dict[str, set[str]] = {"/": set()}

    def _link(self, path: str) -> None:
        child = path
        while child != "/":
            parent = posixpath.dirname(child)
            self._dirs.setdefault(parent, set()).add(posixpath.basename(child))
            child = parent

    def _unlink(self, path: str) -> None:
        child = path
        while child != "/":
            parent = posixpath.dirname(child)
            siblings = self._dirs.get(parent)
            if siblings is None:
                return
            siblings.discard(posixpath.basename(child))
            if siblings or parent == "/":
                return
            del self._dirs[parent]
            child = parent

    def _file(self, path: str) -> bytearray:
        try:
            return self._files[path]
        except KeyError:
            raise PathNotFound(path, self.name) from None

    def _check_file_path(self, path: str) -> None:
        """A file may not replace a directory nor sit below a file (as on a filesystem)."""
        if path in self._dirs:
            raise StorageError(f"is a directory: {path}", self.name)
        parent = posixpath.dirname(path)
        while parent != "/":
            if parent in self._files:
                raise StorageError(f"not a directory: {parent}", self.name)
            parent = posixpath.dirname(parent)

    def _store(self, path: str, data: bytearray) -> None:
        self._check_file_path(path)
        self._files[path] = data
        self._mtimes[path] = time.time()
        self._link(path)

    def _remove_tree(self, path: str) -> None:
        prefix = path.rstrip("/") + "/"
        for p in [p for p in self._files if p.startswith(prefix)]:
            del self._files[p]
            self._mtimes.pop(p, None)
        for d in [d for d in self._dirs if d.startswith(prefix) or d == path]:
            del self._dirs[d]
        self._unlink(path)

    async def get_content(self, path: str) -> bytes:
        return bytes(self._file(path))

    async def put_content(self, path: str, data: bytes) -> None:
        self._store(path, bytearray(data))

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        data = self._file(path)
        if offset > len(data):
            raise InvalidOffset(path, offset, self.name)
        for start in range(offset, len(data), READ_CHUNK):
            yield bytes(data[start : start + READ_CHUNK])

    async def writer(self, path: str, offset: int = 0) -> _MemoryWriter:
        if offset == 0:
            self._store(path, bytearray())
        else:
            data = self._file(path)
            if len(data) < offset:
                raise InvalidOffset(path, offset, self.name)
            del data[offset:]
        return _MemoryWriter(self, path, offset)

    async def stat(self, path: str) -> FileInfo:
        if path in self._files:
            return FileInfo(path, len(self._files[path]), self._mtimes[path], False)
        if path in self._dirs:
            return FileInfo(path, 0, time.time(), True)
        raise PathNotFound(path, self.name)

    async def list(self, path: str) -> list[str]:
        children = self._dirs.get(path)
        if children is None:
            raise PathNotFound(path, self.name)
        base = path.rstrip("/")
        return [f"{base}/{c}" for c in sorted(children)]

    async def move(self, source: str, dest: str) -> None:
        data = self._file(source)
        self._check_file_path(dest)
        del self._files[source]
        self._mtimes.pop(source, None)
        self._unlink(source)
        self._store(dest, data)

    async def delete(self, path: str) -> None:
        if path in self._files:
            del self._files[path]
            self._mtimes.pop(path, None)
            self._unlink(path)
        elif path in self._dirs and path != "/":
            self._remove_tree(path)
        else:
            raise PathNotFound(path, self.name)

    async def redirect_url(self, path: str, method: str) -> str | None:
        return None

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        if path not in self._dirs:
            raise PathNotFound(path, self.name)
        for child in await self.list(path):
            info = await self.stat(child)
            yield info
            if info.is_dir:
                async for sub in self.walk(child):
                    yield sub

    def local_path(self, path: str) -> str | None:
        return None

    async def aclose(self) -> None:
        return None


class _MemoryWriter:
    def __init__(self, driver: InMemoryDriver, path: str, offset: int) -> None:
        self._driver = driver
        self._path = path
        self._opened_at = offset

    async def rollback(self) -> None:
        """Cut the file back to where this writer started."""
        del self._driver._file(self._path)[self._opened_at :]

    @property
    def size(self) -> int:
        return len(self._driver._file(self._path))

    async def write(self, data: bytes) -> None:
        self._driver._file(self._path).extend(data)

    async def commit(self) -> None:
        self._driver._mtimes[self._path] = time.time()

    async def cancel(self) -> None:
        await self._driver.delete(self._path)

    async def close(self) -> None:
        return None
