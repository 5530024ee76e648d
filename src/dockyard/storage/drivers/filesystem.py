"""Filesystem driver: a directory tree, every blocking call off the event loop."""

from __future__ import annotations

import asyncio
import bisect
import builtins
import contextlib
import errno
import fcntl
import os
import shutil
import stat as statmod
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, TypeVar

from dockyard.filewrite import pwrite_all
from dockyard.nowait import read_cached
from dockyard.serial import SerialLane
from dockyard.storage.drivers.base import (
    FileInfo,
    InvalidOffset,
    PathNotFound,
    StorageError,
)
from dockyard.storage.drivers.dirwatch import WatchedListings
from dockyard.storage.drivers.groupsync import group_sync_for
from dockyard.storage.drivers.smallfiles import (
    READ_CHUNK,
    SMALL_READ,
    atomic_write,
    read_small,
    start_writeback,
    write_many,
    write_unsynced,
)

__all__ = ["FilesystemDriver"]

T = TypeVar("T")
_NOT_FOUND = {errno.ENOENT, errno.ENOTDIR}
# Start the disk writing this often while a blob streams in, so the fsync at
# commit waits only for the tail instead of the whole blob. Every chunk of a chunked
# upload ends in an fsync, so the tail is waited for once per PATCH: 2 MiB is about
# 0.6 ms of this disk (8 MiB was 2.5 ms).
_WRITEBACK_EVERY = 2 << 20
# A writer gathers the pieces it is given to this size, then writes them in one
# system call or a few (``pwritev``: the pieces are never joined, which was a copy of each
# byte; see dockyard.filewrite for the size of a write).
_WRITE_BATCH = 1 << 20
# Writes of one writer queued to its thread at once (each a batch of about 1 MiB): as
# many as the upload's hash batches in flight (dockyard.storage.bodies.DEPTH), so that
# neither queue stalls the event loop while the other still has room.
_WRITES_QUEUED = 4
# Listings of directories this big are cached (a few hundred of them at most).
_CACHED_LISTING_MIN = 512
_CACHED_LISTINGS = 256
# How long a writer waits for another request's writer of the same file.
_LOCK_WAIT = 30.0
# Entries a walk gathers per thread hop (a few hundred directories of an index rebuild).
_WALK_BATCH = 2000
# First read of a file of ``get_many`` from the caches: a link (71 bytes for sha256) is
# read whole by it; a longer file is read again in the thread.
_LINK_READ = 4096


def _is_temporary(name: str) -> bool:
    return name.startswith(".tmp-")


def _children(base: str, names: list[str]) -> list[str]:
    """Sorted full paths of ``names`` in ``base``, without temporary files: once sorted,
    the names starting ``.tmp-`` are those in [``.tmp-``, ``.tmp.``), cut in one go."""
    names.sort()
    del names[bisect.bisect_left(names, ".tmp-"):bisect.bisect_left(names, ".tmp.")]
    prefix = base + "/"
    return [prefix + n for n in names]


def _remove_tree(target: str) -> None:
    """``shutil.rmtree(target)``, but an entry that vanishes meanwhile is no error: another
    request may remove a file of the tree concurrently (a final PUT withdraws its claim
    while its finished upload's directory is removed after the response). Only the
    tree itself missing is "not found"; an entry added meanwhile still fails it."""

    def vanished(function: object, name: str, exc: BaseException) -> None:
        if name == target or not isinstance(exc, FileNotFoundError):
            raise exc

    if sys.version_info >= (3, 12):
        shutil.rmtree(target, onexc=vanished)
    else:
        shutil.rmtree(target, onerror=lambda fn, name, info: vanished(fn, name, info[1]))


class FilesystemDriver:
    """Stores each path as a file below ``root`` (``rootdirectory`` in config.yml)."""

    name = "filesystem"

    def __init__(self, root: str, max_threads: int = 32) -> None:
        self.root = os.path.abspath(root)
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="fs")
        # Big directories (a repository's tags): listings kept exact by inotify, or
        # where it is missing, directory -> (mtime_ns, sorted children) (see ``list``).
        self._watched = WatchedListings(_CACHED_LISTINGS, _CACHED_LISTING_MIN, _is_temporary)
        self._listings: dict[str, tuple[int, list[str]]] = {}
        self._group = group_sync_for(self.root)

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> FilesystemDriver:
        root = str(params.get("rootdirectory") or "/var/lib/registry")
        return cls(root, int(params.get("maxthreads") or 32))

    def _os(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    async def _run(self, path: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except OSError as exc:
            raise self._map(path, exc) from exc

    def _map(self, path: str, exc: OSError) -> StorageError:
        if exc.errno in _NOT_FOUND:
            return PathNotFound(path, self.name)
        return StorageError(f"{exc.strerror or exc} ({path})", self.name)

    async def get_content(self, path: str) -> bytes:
        target = self._os(path)
        # From the caches without a thread hop when the file is small and cached.
        data = read_cached(target, 0, SMALL_READ)
        if data is not None and len(data) < SMALL_READ:
            return data
        return await self._run(path, read_small, target)

    async def put_content(self, path: str, data: bytes) -> None:
        await self._run(path, atomic_write, self._os(path), data)

    async def get_many(self, paths: Sequence[str]) -> builtins.list[bytes | None]:
        """Many small files (a manifest's layer links): those the kernel has cached
        read without a thread hop, the others (or missing ones) in one thread hop."""
        out: builtins.list[bytes | None] = []
        missed: builtins.list[int] = []
        for i, path in enumerate(paths):
            data = read_cached(self._os(path), 0, _LINK_READ)
            if data is None or len(data) >= _LINK_READ:
                missed.append(i)
            out.append(data)
        if not missed:
            return out

        def read() -> None:
            for i in missed:
                try:
                    out[i] = read_small(self._os(paths[i]))
                except OSError as exc:
                    if exc.errno not in _NOT_FOUND and exc.errno != errno.EISDIR:
                        raise self._map(paths[i], exc) from exc
                    out[i] = None

        await self._run(paths[missed[0]], read)
        return out

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Several small files, written and made durable by the sync thread together
        with those of concurrent calls (:mod:`.groupsync`); else in one thread hop with
        two disk flushes (:func:`write_many`)."""
        if not items:
            return
        targets = [(self._os(p), d) for p, d in items]
        if self._group is None:
            await self._run(items[0][0], write_many, targets)
            return
        try:
            await self._group.commit(targets)
        except OSError as exc:
            raise self._map(items[0][0], exc) from exc

    async def put_unsynced(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Small files in one thread hop, renamed into place without an fsync (see
        :func:`~dockyard.storage.drivers.base.put_unsynced`)."""
        if items:
            await self._run(items[0][0], write_unsynced, [(self._os(p), d) for p, d in items])

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        f: BinaryIO = await self._run(path, open, self._os(path), "rb")
        try:
            size = await self._run(path, lambda: os.fstat(f.fileno()).st_size)
            if offset > size:
                raise InvalidOffset(path, offset, self.name)
            f.seek(offset)
            while chunk := await self._run(path, f.read, READ_CHUNK):
                yield chunk
        finally:
            f.close()

    async def writer(self, path: str, offset: int = 0) -> _FileWriter:
        target = self._os(path)

        def open_at() -> BinaryIO:
            if offset == 0:
                os.makedirs(os.path.dirname(target), exist_ok=True)
            flags = os.O_RDWR | (os.O_CREAT if offset == 0 else 0)
            f = os.fdopen(os.open(target, flags, 0o644), "r+b")
            try:
                # One writer per file: a request resuming an upload waits until the
                # one it replaces (say, a client that dropped mid-chunk) has let go.
                _lock(f.fileno(), path, self.name)
                if os.fstat(f.fileno()).st_size < offset:
                    raise InvalidOffset(path, offset, self.name)
                f.truncate(offset)  # writes give their offsets (pwritev)
            except BaseException:
                f.close()
                raise
            return f

        f = await self._run(path, open_at)
        return _FileWriter(self, path, f, offset)

    async def stat(self, path: str) -> FileInfo:
        st = await self._run(path, os.stat, self._os(path))
        is_dir = statmod.S_ISDIR(st.st_mode)
        return FileInfo(path, 0 if is_dir else st.st_size, st.st_mtime, is_dir)

    async def stat_many(self, paths: Sequence[str]) -> builtins.list[FileInfo | None]:
        """Many files (a manifest's layers) stat'ed in one thread hop."""

        def stats() -> builtins.list[FileInfo | None]:
            out: builtins.list[FileInfo | None] = []
            for path in paths:
                try:
                    st = os.stat(self._os(path))
                except OSError as exc:
                    if exc.errno not in _NOT_FOUND:
                        raise self._map(path, exc) from exc
                    out.append(None)
                    continue
                is_dir = statmod.S_ISDIR(st.st_mode)
                out.append(FileInfo(path, 0 if is_dir else st.st_size, st.st_mtime, is_dir))
            return out

        return await self._run(paths[0] if paths else "/", stats)

    async def list(self, path: str) -> list[str]:
        """Children, sorted; big directories (a repository's tags) come from a cache.

        On Linux the cache is kept exact by inotify (:mod:`.dirwatch`): right after a
        tag push, by this process or any other, the listing is the cached one with the
        change applied, not a new read of the directory. Without inotify a cached
        listing is used only while the directory's mtime is unchanged and was already
        over a second old when listed: the kernel's clock is coarse, so a change within
        the same tick could otherwise go unseen.
        """
        base = path.rstrip("/")

        def scan() -> list[str]:
            target = self._os(path)
            watched = self._watched.names(target, base, lambda t: _children(base, os.listdir(t)))
            if watched is not None:
                return watched
            mtime = os.stat(target).st_mtime_ns
            cached = self._listings.get(target)
            if cached is not None and cached[0] == mtime:
                return list(cached[1])
            children = _children(base, os.listdir(target))
            if len(children) >= _CACHED_LISTING_MIN and time.time_ns() - mtime > 1_000_000_000:
                self._listings[target] = (mtime, children)
                while len(self._listings) > _CACHED_LISTINGS:
                    self._listings.pop(next(iter(self._listings)))
            return list(children)

        return await self._run(path, scan)

    async def list_many(self, paths: Sequence[str]) -> builtins.list[builtins.list[str] | None]:
        """Many small directories (a catalog's repositories) in one thread hop."""

        def scan() -> builtins.list[builtins.list[str] | None]:
            out: builtins.list[builtins.list[str] | None] = []
            for path in paths:
                try:
                    names = os.listdir(self._os(path))
                except OSError as exc:
                    if exc.errno in _NOT_FOUND:
                        out.append(None)
                        continue
                    raise self._map(path, exc) from exc
                out.append(_children(path.rstrip("/"), names))
            return out

        return await self._run(paths[0] if paths else "/", scan)

    async def move(self, source: str, dest: str) -> None:
        def move() -> None:
            target = self._os(dest)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(self._os(source), target)

        await self._run(source, move)

    async def delete(self, path: str) -> None:
        def delete() -> None:
            target = self._os(path)
            if os.path.isdir(target) and not os.path.islink(target):
                _remove_tree(target)
            else:
                os.unlink(target)

        await self._run(path, delete)

    async def redirect_url(self, path: str, method: str) -> str | None:
        return None

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        """Depth first, children sorted; directories are scanned a batch at a time in
        one thread hop (a hop per directory cost more than the scan of a small one, and
        an index rebuild walks every tag's directories)."""
        base = path.rstrip("/")

        def scan(directory: str) -> list[FileInfo]:
            out = []
            with os.scandir(self._os(directory)) as it:
                for e in it:
                    if e.name.startswith(".tmp-"):
                        continue
                    st = e.stat()
                    is_dir = e.is_dir()
                    out.append(
                        FileInfo(f"{directory}/{e.name}", 0 if is_dir else st.st_size,
                                 st.st_mtime, is_dir)
                    )
            return sorted(out, key=lambda i: i.path)

        def batch(stack: list[str]) -> list[FileInfo]:
            out: list[FileInfo] = []
            while stack and len(out) < _WALK_BATCH:
                directory = stack.pop()
                try:
                    entries = scan(directory)
                except OSError as exc:
                    if directory == base or exc.errno not in _NOT_FOUND:
                        raise
                    continue  # removed meanwhile
                out.extend(entries)
                stack.extend(i.path for i in reversed(entries) if i.is_dir)
            return out

        stack = [base]
        while stack:
            for info in await self._run(base, batch, stack):
                yield info

    def local_path(self, path: str) -> str | None:
        return self._os(path)

    async def aclose(self) -> None:
        if self._group is not None:
            await self._group.aclose()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._watched.close()


def _lock(fd: int, path: str, driver: str) -> None:
    """Take the file's exclusive lock, waiting a bounded time for its holder."""
    deadline = time.monotonic() + _LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise StorageError(
                    f"{path} is busy: another request is writing it", driver
                ) from None
            time.sleep(0.005)


class _FileWriter:
    """Writes behind: pieces are gathered to :data:`_WRITE_BATCH` bytes and each batch
    queued to a thread while the caller reads on.

    Up to :data:`_WRITES_QUEUED` batches are queued, written one after the other by
    the same thread (:class:`~dockyard.serial.SerialLane`), so memory stays bounded
    by that many batches and the one gathering.
    """

    def __init__(self, driver: FilesystemDriver, path: str, f: BinaryIO, offset: int) -> None:
        self._driver = driver
        self._path = path
        self._file = f
        self._size = offset
        self._opened_at = offset
        self._flushed = offset
        self._gathered: list[bytes] = []
        self._gathered_size = 0
        self._lane = SerialLane(driver._pool)
        self._pending: deque[asyncio.Future[None]] = deque()

    def _write(self, pieces: list[bytes], start: int) -> None:
        """Runs in a worker thread: write, and kick off write-back every few MiB."""
        end = pwrite_all(self._file.fileno(), pieces, start)
        if start_writeback is not None and end - self._flushed >= _WRITEBACK_EVERY:
            start_writeback(self._file.fileno(), self._flushed, end - self._flushed)
            self._flushed = end

    @property
    def size(self) -> int:
        return self._size

    async def _settle(self, keep: int = 0) -> None:
        """Wait until at most ``keep`` writes are queued; after a failed one, for all
        (none may still be writing once the caller cuts or closes the file)."""
        while len(self._pending) > keep:
            try:
                await self._pending.popleft()
            except OSError as exc:
                while self._pending:
                    with contextlib.suppress(OSError):
                        await self._pending.popleft()
                raise self._driver._map(self._path, exc) from exc

    async def write(self, data: bytes) -> None:
        self._gathered.append(data)
        self._gathered_size += len(data)
        self._size += len(data)
        if self._gathered_size >= _WRITE_BATCH:
            await self._submit()

    async def _submit(self) -> None:
        """Queue the pieces gathered as one write, once fewer than
        :data:`_WRITES_QUEUED` are queued."""
        if not self._gathered:
            return
        await self._settle(_WRITES_QUEUED - 1)
        pieces, start = self._gathered, self._size - self._gathered_size
        self._gathered, self._gathered_size = [], 0
        self._pending.append(self._lane.submit(self._write, pieces, start))

    async def commit(self) -> None:
        await self.close()

    async def cancel(self) -> None:
        self._gathered.clear()
        if not self._file.closed:
            try:
                await self._settle()
            finally:
                await self._driver._run(self._path, self._file.close)
        with contextlib.suppress(PathNotFound):
            await self._driver.delete(self._path)

    async def rollback(self) -> None:
        """Cut the file back to where this writer started, then close (under the lock)."""
        self._gathered.clear()
        if self._file.closed:
            return
        try:
            with contextlib.suppress(StorageError):
                await self._settle()
            await self._driver._run(self._path, self._file.truncate, self._opened_at)
        finally:
            await self._driver._run(self._path, self._file.close)

    async def close(self) -> None:
        """Flush and fsync what was written: an acknowledged chunk survives a power cut.

        Write-back has been running since the first megabytes (``_write``), so
        this mostly waits for the tail.
        """
        if self._file.closed:
            return
        try:
            await self._submit()
            await self._settle()
        except BaseException:
            await self._driver._run(self._path, self._file.close)
            raise
        await self._driver._run(self._path, self._sync_and_close, self._size != self._opened_at)

    def _sync_and_close(self, wrote: bool) -> None:
        """One thread hop: fsync (if anything was written) and close."""
        try:
            if wrote:
                os.fsync(self._file.fileno())
        finally:
            self._file.close()

