"""File calls that never block, for the event loop: they succeed from the kernel's caches
or say they would have to wait, and the caller takes the thread hop only then.

A thread hop costs a wake-up of a pool thread, one of the event loop and the GIL
changing hands twice (about 0.1 ms of CPU on this VM, most of it in context switches);
a blob GET took three. Linux answers the common case without one:

- :func:`open_cached`: ``openat2`` with ``RESOLVE_CACHED`` (Linux 5.12) opens only if
  every path component is in the dentry cache, else fails with ``EAGAIN``;
- :func:`cached_pages`: ``cachestat`` (Linux 6.5) tells whether a file's range is in
  the page cache, so that ``sendfile`` from it will not wait for the disk.

Where the kernel lacks a call (``ENOSYS``) or a filter forbids it (``EPERM``), both
answer "would block" from then on, and every call takes the thread hop, as before.
The calls go through :class:`ctypes.PyDLL`, which keeps the GIL: each takes
microseconds, less than handing the GIL over and back.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

__all__ = ["cached_pages", "open_cached", "read_cached"]

# Numbers of the generic syscall table, shared by x86-64 and arm64 since Linux 5.x.
_SYS_OPENAT2 = 437
_SYS_CACHESTAT = 451
_AT_FDCWD = -100
_RESOLVE_CACHED = 0x20
_PAGE = os.sysconf("SC_PAGE_SIZE")


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64))


class _Range(ctypes.Structure):
    _fields_ = (("off", ctypes.c_uint64), ("len", ctypes.c_uint64))


class _CacheStat(ctypes.Structure):
    _fields_ = (("nr_cache", ctypes.c_uint64), ("nr_dirty", ctypes.c_uint64),
                ("nr_writeback", ctypes.c_uint64), ("nr_evicted", ctypes.c_uint64),
                ("nr_recently_evicted", ctypes.c_uint64))


class _IoVec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))


class _Libc:
    """The few libc functions used here, called without giving the GIL away."""

    def __init__(self, libc: ctypes.PyDLL) -> None:
        self.syscall = libc.syscall
        self.syscall.restype = ctypes.c_long
        self.preadv2 = libc.preadv2
        self.preadv2.restype = ctypes.c_ssize_t
        self.preadv2.argtypes = (ctypes.c_int, ctypes.POINTER(_IoVec), ctypes.c_int,
                                 ctypes.c_int64, ctypes.c_int)
        self.close = libc.close
        self.close.argtypes = (ctypes.c_int,)


def _load() -> _Libc | None:
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "aarch64"):
        return None
    try:
        return _Libc(ctypes.PyDLL(None, use_errno=True))
    except (AttributeError, OSError):
        return None


_libc = _load()
_long = ctypes.c_long  # syscall(2) reads every argument as a long
_open_works = _libc is not None
_stat_works = _libc is not None
_UNSUPPORTED = {errno.ENOSYS, errno.EPERM, errno.EINVAL}
_RWF_NOWAIT = 0x8


def open_cached(path: str) -> int | None:
    """A read-only descriptor of ``path`` if opening it needs no I/O; None when it
    would, or when it fails (the caller opens it in a thread, where errors raise)."""
    global _open_works
    if not _open_works or _libc is None:
        return None
    how = _OpenHow(os.O_RDONLY | os.O_CLOEXEC, 0, _RESOLVE_CACHED)
    fd = _libc.syscall(_long(_SYS_OPENAT2), _long(_AT_FDCWD), os.fsencode(path),
                       ctypes.byref(how), _long(ctypes.sizeof(how)))
    if fd >= 0:
        return int(fd)
    if ctypes.get_errno() in _UNSUPPORTED:
        _open_works = False
    return None


def read_cached(path: str, offset: int, count: int) -> bytes | None:
    """Up to ``count`` bytes of ``path`` from ``offset`` (fewer only at its end) if all
    of them are in the caches; None when reading would wait for the disk or fails."""
    fd = open_cached(path)
    if fd is None or _libc is None:
        return None
    try:
        buf = ctypes.create_string_buffer(count)
        got = 0
        while got < count:
            vec = _IoVec(ctypes.addressof(buf) + got, count - got)
            # RWF_NOWAIT may return part of what is cached: read on until the end.
            n = _libc.preadv2(fd, ctypes.byref(vec), 1, offset + got, _RWF_NOWAIT)
            if n < 0:
                return None
            if n == 0:
                break
            got += n
        return ctypes.string_at(buf, got)
    finally:
        _libc.close(fd)


def cached_pages(fd: int, offset: int, count: int) -> bool:
    """Whether every page of ``count`` bytes of ``fd`` from ``offset`` is in the page
    cache (reading them waits for no disk); False when the kernel cannot tell."""
    global _stat_works
    if not _stat_works or _libc is None:
        return False
    if count <= 0:
        return True
    first, last = offset // _PAGE, (offset + count - 1) // _PAGE
    found = _CacheStat()
    rng = _Range(first * _PAGE, (last - first + 1) * _PAGE)
    if _libc.syscall(_long(_SYS_CACHESTAT), _long(fd), ctypes.byref(rng),
                     ctypes.byref(found), _long(0)) < 0:
        if ctypes.get_errno() in _UNSUPPORTED:
            _stat_works = False
        return False
    return bool(found.nr_cache >= last - first + 1)
