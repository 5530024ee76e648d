"""Small files written whole and durably, and read in few system calls: the
filesystem driver's links, manifests and upload bookkeeping (each call here runs in a
worker thread, where every system call is a GIL hand-off)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
from collections.abc import Callable

from dockyard.filewrite import pwrite_all

__all__ = [
    "READ_CHUNK",
    "SMALL_READ",
    "atomic_write",
    "read_small",
    "start_writeback",
    "write_closed",
    "write_many",
    "write_unsynced",
]

READ_CHUNK = 1 << 20
# First read of a small file (a link, a manifest): most are read whole by it.
SMALL_READ = 64 << 10
_SYNC_FILE_RANGE_WRITE = 2


def _load_sync_file_range() -> Callable[[int, int, int], None] | None:
    """Linux's ``sync_file_range(fd, offset, n, SYNC_FILE_RANGE_WRITE)``, if libc has it."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int

    def start_writeback(fd: int, offset: int, count: int) -> None:
        fn(fd, offset, count, _SYNC_FILE_RANGE_WRITE)  # advisory: errors are harmless

    return start_writeback


start_writeback = _load_sync_file_range()


def atomic_write(target: str, data: bytes, *, sync: bool = True) -> None:
    """Temp file in the same directory, fsync (unless ``sync`` is false), rename:
    readers never see a torn file."""
    fd, tmp = _create_temporary(os.path.dirname(target))
    try:
        try:
            pwrite_all(fd, (data,), 0)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_unsynced(items: list[tuple[str, bytes]]) -> None:
    """Each file written as :func:`atomic_write` does, but not fsynced: whole or absent
    for readers and across a kill -9 (the page cache survives the process)."""
    for target, data in items:
        atomic_write(target, data, sync=False)


def _create_temporary(directory: str) -> tuple[int, str]:
    """A new temporary file in ``directory``, made first when missing: its descriptor
    and path. One system call where the directory exists (``open()`` and
    ``os.makedirs`` would add five, each a GIL hand-off in the thread), and a name
    from the process's random generator instead of a ``getrandom`` call each."""
    try:
        return _open_temporary(directory)
    except FileNotFoundError:
        os.makedirs(directory, exist_ok=True)
        return _open_temporary(directory)


def _open_temporary(directory: str) -> tuple[int, str]:
    while True:
        tmp = os.path.join(directory, f".tmp-{random.getrandbits(128):032x}")
        try:
            # O_EXCL: a name another process drew too (a generator seeded alike) is
            # never shared; it is drawn again.
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644), tmp
        except FileExistsError:
            continue


def read_small(target: str) -> bytes:
    """The whole of a small file in three system calls (open, read, close), where
    ``open()`` adds four (fstat, ioctl, lseek, a second read): every call made in a
    worker thread gives the GIL away and waits to get it back, which is what a
    manifest's fifty link reads cost under load, more than the reads themselves."""
    fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, SMALL_READ)
        if len(data) < SMALL_READ:  # a short read of a regular file is its end
            return data
        parts = [data]
        while chunk := os.read(fd, READ_CHUNK):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def _holds(target: str, data: bytes) -> bool:
    """Whether ``target`` already holds exactly ``data`` (a small file)."""
    try:
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return os.read(fd, len(data) + 1) == data
    except OSError:
        return False
    finally:
        os.close(fd)


def write_many(items: list[tuple[str, bytes]]) -> None:
    """Write small files so that they appear in order, durably, with two waits for the
    disk instead of one per file (as :func:`atomic_write` each would), where the
    filesystem has no :class:`~.groupsync.GroupSync`.

    Writeback of every temporary file (:func:`_write_temporaries`) starts at once, then
    each is fsynced (the first waits for the disk; the journal commit it forces carries
    the others' blocks, so theirs return at once). Only then are they renamed into
    place, in order, and the last directory fsynced: ext4 and XFS commit metadata in
    order, so a crash keeps a prefix of the renames, each over complete data, and the
    fsync makes all of them durable.
    """
    pending = _write_temporaries(items, writeback=True)
    renamed = 0
    try:
        for fd, _, _ in pending:
            os.fsync(fd)
        for fd, tmp, target in pending:
            os.close(fd)
            os.replace(tmp, target)
            renamed += 1
    except BaseException:
        _drop_temporaries(pending[renamed:])
        raise
    if pending:
        _fsync_directory(os.path.dirname(pending[-1][2]))


def write_closed(items: list[tuple[str, bytes]]) -> list[tuple[str, str]]:
    """The temporary files of ``items`` written and closed, for a
    :class:`~.groupsync.GroupSync` to sync and rename: (temporary, target) each."""
    pending = _write_temporaries(items, writeback=False)
    failure: OSError | None = None
    for fd, _, _ in pending:
        try:
            os.close(fd)  # each exactly once: a failed close releases the descriptor too
        except OSError as exc:
            failure = failure or exc
    if failure is not None:
        for _, tmp, _ in pending:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise failure
    return [(tmp, target) for _, tmp, target in pending]


def _write_temporaries(
    items: list[tuple[str, bytes]], *, writeback: bool
) -> list[tuple[int, str, str]]:
    """Each content written to a new temporary file beside its target, left open:
    (descriptor, temporary, target) each, in order. A file that already holds its
    content (a manifest pushed again) is not written; after a failure no temporary
    file is left behind."""
    pending: list[tuple[int, str, str]] = []
    made: set[str] = set()
    try:
        for target, data in items:
            directory = os.path.dirname(target)
            if not _make_directory(directory, made) and _holds(target, data):
                continue
            fd, tmp = _create_temporary(directory)
            pending.append((fd, tmp, target))
            pwrite_all(fd, (data,), 0)
            if writeback and start_writeback is not None:
                start_writeback(fd, 0, len(data))
    except BaseException:
        _drop_temporaries(pending)
        raise
    return pending


def _drop_temporaries(pending: list[tuple[int, str, str]]) -> None:
    for fd, tmp, _ in pending:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _make_directory(directory: str, made: set[str]) -> bool:
    """Make ``directory`` and its missing parents; whether it is new (made by this
    batch, in ``made``: no file in it to compare with). Tried from the leaf up, one
    ``mkdir`` a level: a new tag's seven directories cost ten system calls, where
    looking first (``os.makedirs``, a failed open) cost twenty, each a GIL hand-off."""
    if directory in made:
        return True
    try:
        os.mkdir(directory)
    except FileExistsError:
        return False
    except FileNotFoundError:
        _make_directory(os.path.dirname(directory), made)
        try:
            os.mkdir(directory)
        except FileExistsError:  # made meanwhile by another writer
            return False
    made.add(directory)
    return True


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
