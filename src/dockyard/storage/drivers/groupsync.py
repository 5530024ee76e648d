"""Group commit for the filesystem driver: one ``syncfs`` makes durable the small files
of every write that finished before it began (many concurrent manifest PUTs at once).

On ext4 an ``fsync`` of a new small file costs several synchronous disk round trips
(its data, its inode's table block, each new parent directory, a cache flush), each a
sleep and a wake-up: a manifest PUT's four files and a directory were about twenty.
``syncfs`` writes the filesystem's dirty data and metadata in one batch and flushes
the disk's cache once. Every batch of files goes through two syncs, as with
``fsync``: its temporary files, written by the sync thread at the start of a round,
are made durable by the first, then renamed into place in order, and the renames made
durable by the second, before its writer is answered. One sync is the second of the
batches renamed in the round before it and the first of those queued since, so a round
costs one ``syncfs`` however many writes it carries.

``syncfs`` also waits for what other writers left dirty on the same filesystem;
dockyard's own blob writes start their write-back every 2 MiB, so they leave little.
It is used only on filesystems whose ``syncfs`` is known to reach the disk (ext4,
XFS, btrfs); elsewhere (FUSE, network filesystems) each file is fsynced.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from dockyard.storage.drivers.smallfiles import write_closed

__all__ = ["GroupSync", "group_sync_for"]

# statfs(2) f_type of filesystems whose syncfs writes and flushes everything.
_SYNCFS_FILESYSTEMS = {
    0xEF53,  # ext2, ext3, ext4
    0x58465342,  # XFS
    0x9123683E,  # btrfs
}


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syncfs.argtypes = (ctypes.c_int,)
        libc.statfs.argtypes = (ctypes.c_char_p, ctypes.c_void_p)
    except (AttributeError, OSError):
        return None
    return libc


_libc = _load_libc()


def _filesystem_type(path: str) -> int | None:
    """statfs(2)'s ``f_type`` (its first field, a C ``long``) of the filesystem that
    holds ``path``, or will once it is made (its nearest existing ancestor's)."""
    assert _libc is not None
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on Linux
    while _libc.statfs(os.fsencode(path), buf) != 0:
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    return ctypes.c_ulong.from_buffer(buf).value & 0xFFFFFFFF


def group_sync_for(root: str) -> GroupSync | None:
    """A :class:`GroupSync` for the filesystem of ``root`` (an absolute path), or None
    where ``syncfs`` is missing or not known to make everything durable."""
    if _libc is None or _filesystem_type(root) not in _SYNCFS_FILESYSTEMS:
        return None
    return GroupSync(root)


class _Batch:
    __slots__ = ("done", "items", "pending")

    def __init__(self, items: Sequence[tuple[str, bytes]], done: asyncio.Future[None]) -> None:
        self.items = items
        self.pending: Sequence[tuple[str, str]] = ()  # (temporary, target), once written
        self.done = done


class GroupSync:
    """Renames batches of written temporary files into place, durably, in rounds of
    one ``syncfs`` each, run by one thread."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="fs-sync")
        self._fd = -1
        self._queued: list[_Batch] = []  # written, waiting for their first sync
        self._renamed: list[_Batch] = []  # renamed, waiting for their second sync
        self._running: asyncio.Task[None] | None = None

    async def commit(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Write each ``(target, content)`` (below root) to a temporary file beside it,
        rename them in order once the temporaries are durable; return once the renames
        are. Raises the OSError of a failed write, sync or rename (temporaries left
        unrenamed are removed)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queued.append(_Batch(items, done))
        if self._running is None:
            self._running = loop.create_task(self._rounds())
        await done

    async def _rounds(self) -> None:
        loop = asyncio.get_running_loop()
        renaming: list[_Batch] = []
        finishing: list[_Batch] = []
        try:
            while self._queued or self._renamed:
                renaming, self._queued = self._queued, []
                finishing, self._renamed = self._renamed, []
                try:
                    failures = await loop.run_in_executor(self._thread, self._round, renaming)
                except Exception as exc:  # nothing of this round is known to be durable
                    for batch in finishing + renaming:
                        _settle(batch.done, exc)
                    renaming, finishing = [], []
                    continue
                for batch in finishing:
                    _settle(batch.done, None)
                for batch, failure in zip(renaming, failures, strict=True):
                    if failure is None:
                        self._renamed.append(batch)
                    else:
                        _settle(batch.done, failure)
        except BaseException:
            for batch in finishing + renaming + self._queued + self._renamed:
                batch.done.cancel()
            self._queued, self._renamed = [], []
            raise
        finally:
            self._running = None

    def _round(self, renaming: list[_Batch]) -> list[OSError | None]:
        """In the sync thread: the temporaries of the batches queued since the last
        round written, one sync, then their renames. Written here rather than in a
        pool thread each: a thread hop less a batch, and the GIL no longer handed
        between a dozen threads making files at once; no later either, since a batch
        written during a round waited for the next one anyway."""
        failures: list[OSError | None] = []
        try:
            for batch in renaming:
                try:
                    batch.pending = write_closed(list(batch.items))
                except OSError as exc:  # nothing of it is left behind
                    failures.append(exc)
                else:
                    failures.append(None)
            self._sync()
        except BaseException:
            for batch in renaming:
                _discard(batch.pending)
            raise
        return [failure or _rename(batch.pending)
                for batch, failure in zip(renaming, failures, strict=True)]

    def _sync(self) -> None:
        assert _libc is not None
        if self._fd < 0:
            self._fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if _libc.syncfs(self._fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), self.root)
        # ext4 without a journal writes the last of its metadata (inode tables, the
        # directories' blocks) after the cache flush of its syncfs; an fsync flushes
        # the disk's cache once more (the root directory is clean: that is all it does).
        os.fsync(self._fd)

    async def aclose(self) -> None:
        """Finish the rounds under way, then let the thread and descriptor go."""
        if self._running is not None:
            with contextlib.suppress(Exception):
                await self._running
        self._thread.shutdown(wait=True)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _settle(done: asyncio.Future[None], failure: BaseException | None) -> None:
    if done.done():  # its writer was cancelled; the write goes on regardless
        return
    if failure is None:
        done.set_result(None)
    else:
        done.set_exception(failure)


def _rename(pending: Sequence[tuple[str, str]]) -> OSError | None:
    """Rename in order; on a failure, remove the temporaries not renamed yet."""
    for i, (tmp, target) in enumerate(pending):
        try:
            os.replace(tmp, target)
        except OSError as exc:
            _discard(pending[i:])
            return exc
    return None


def _discard(pending: Sequence[tuple[str, str]]) -> None:
    for tmp, _ in pending:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
