"""Sorted listings of big directories kept exact by the kernel's change events (inotify).

A repository's tags directory holds thousands of entries; reading it again after every
tag push costs most of a ``tags/list``. Here a listing, once read, is kept with an
inotify watch on its directory: the kernel queues an event for every entry created,
deleted or renamed in it, by any process (another worker, ``docker-registry`` on the
same root), before the system call that made the change returns. Each use first applies
the queued events, so a cached listing is exactly what a fresh read would return,
including right after a change, where a cache validated by the directory's mtime must
read the directory again (the mtime moved, or may not have within one clock tick).

A listing is dropped when the kernel says its directory went away, moved or was
unmounted, or that events were lost (queue overflow); each use also checks that the
path still names the watched directory (device and inode), since a watch follows the
directory, not its path. Where inotify is missing or out of watches or instances,
:meth:`WatchedListings.names` answers None and the driver lists as before.

Linux only (ctypes on libc); events are read without blocking, from one descriptor per
process (a forked child opens its own).
"""

from __future__ import annotations

import bisect
import ctypes
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["WatchedListings"]

_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_IN_MOVED_FROM = 0x40
_IN_MOVED_TO = 0x80
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_UNMOUNT = 0x2000
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_ONLYDIR = 0x01000000
_WATCHED = (_IN_CREATE | _IN_DELETE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_DELETE_SELF
            | _IN_MOVE_SELF | _IN_ONLYDIR)
_GONE = _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_UNMOUNT | _IN_IGNORED
_ADDED = _IN_CREATE | _IN_MOVED_TO
_REMOVED = _IN_DELETE | _IN_MOVED_FROM
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name
_READ_SIZE = 64 << 10


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        for name in ("inotify_init1", "inotify_add_watch", "inotify_rm_watch"):
            getattr(libc, name)
    except (AttributeError, OSError):
        return None
    libc.inotify_init1.argtypes = (ctypes.c_int,)
    libc.inotify_add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
    libc.inotify_rm_watch.argtypes = (ctypes.c_int, ctypes.c_int)
    return libc


_LIBC = _libc()


@dataclass(slots=True)
class _Listing:
    wd: int
    identity: tuple[int, int]  # st_dev, st_ino of the directory listed
    base: str  # the driver path of the directory; children are base/name
    children: list[str]  # sorted full driver paths


class WatchedListings:
    """At most ``limit`` listings of directories with at least ``smallest`` entries.

    ``skip(name)`` says which names a listing leaves out (temporary files).
    Thread-safe: the driver's worker threads share one instance.
    """

    def __init__(self, limit: int, smallest: int, skip: Callable[[str], bool]) -> None:
        self.limit = limit
        self.smallest = smallest
        self.skip = skip
        self._lock = threading.Lock()
        self._fd = -1
        self._pid = 0
        self._tried = False  # whether this process tried to open its descriptor
        self._listings: OrderedDict[str, _Listing] = OrderedDict()
        self._by_wd: dict[int, str] = {}

    def names(self, target: str, base: str, read: Callable[[str], list[str]]) -> list[str] | None:
        """The sorted children (``base/name``) of the directory ``target``: from the
        cache when it holds it, else from ``read(target)`` and kept. None for a small
        directory, or where inotify cannot be used: the caller lists it itself.
        Raises OSError as ``os.stat`` or ``read`` of ``target`` would."""
        with self._lock:
            self._forked()
            if self._fd >= 0:
                self._apply_events()
            st = os.stat(target)
            identity = (st.st_dev, st.st_ino)
            cached = self._listings.get(target)
            if cached is not None and cached.identity == identity:
                self._listings.move_to_end(target)
                return list(cached.children)
            if cached is not None:
                self._forget(target)
            # Too small to hold `smallest` entries (each takes at least 12 bytes of an
            # ext4 directory, a subdirectory one link): not worth a watch.
            if st.st_size < self.smallest * 12 and st.st_nlink < self.smallest + 2:
                return None
            if not self._open():
                return None
            # Watch first, then read: a change in between is both in the listing and
            # queued, and applying an event twice changes nothing.
            wd = _inotify(self._fd, "inotify_add_watch", os.fsencode(target), _WATCHED)
            if wd < 0 or wd in self._by_wd:
                # No watch left (ENOSPC), or the same directory under another path.
                return None
            try:
                children = read(target)
            except BaseException:
                _inotify(self._fd, "inotify_rm_watch", wd)
                raise
            if len(children) < self.smallest:
                _inotify(self._fd, "inotify_rm_watch", wd)
                return children
            self._listings[target] = _Listing(wd, identity, base, children)
            self._by_wd[wd] = target
            while len(self._listings) > self.limit:
                self._forget(next(iter(self._listings)))
            self._apply_events()
            kept = self._listings.get(target)
            return list(kept.children) if kept is not None else None

    def close(self) -> None:
        """Drop every listing and the inotify descriptor (a later use opens another)."""
        with self._lock:
            if self._fd >= 0 and self._pid == os.getpid():
                os.close(self._fd)
            self._fd, self._pid, self._tried = -1, 0, False
            self._listings.clear()
            self._by_wd.clear()

    def _forked(self) -> None:
        if self._pid != os.getpid():
            # A forked child must not read its parent's events (or share its queue).
            self._pid, self._fd, self._tried = os.getpid(), -1, False
            self._listings.clear()
            self._by_wd.clear()

    def _open(self) -> bool:
        """The inotify descriptor, opened at the first big directory (an instance is a
        per-user resource: processes that list none take none)."""
        if not self._tried and _LIBC is not None:
            self._tried = True
            # -1 (no inotify here, or out of instances): the driver lists as before.
            self._fd = _inotify(-1, "inotify_init1", _IN_NONBLOCK | _IN_CLOEXEC)
        return self._fd >= 0

    def _forget(self, target: str) -> None:
        listing = self._listings.pop(target, None)
        if listing is not None and self._by_wd.pop(listing.wd, None) is not None:
            _inotify(self._fd, "inotify_rm_watch", listing.wd)

    def _apply_events(self) -> None:
        while True:
            try:
                data = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            at = 0
            while at < len(data):
                wd, mask, _, size = _EVENT.unpack_from(data, at)
                name = os.fsdecode(data[at + _EVENT.size : at + _EVENT.size + size].rstrip(b"\0"))
                at += _EVENT.size + size
                self._apply(wd, mask, name)

    def _apply(self, wd: int, mask: int, name: str) -> None:
        if mask & _IN_Q_OVERFLOW:
            for lost in list(self._listings):  # events were lost: nothing is known
                self._forget(lost)
            return
        target = self._by_wd.get(wd)
        if target is None:
            return
        listing = self._listings[target]
        if mask & _GONE:
            if mask & _IN_IGNORED:  # the kernel removed the watch itself
                del self._by_wd[wd]
                del self._listings[target]
            else:
                self._forget(target)
            return
        if not name or self.skip(name):
            return
        child = f"{listing.base}/{name}"
        children = listing.children
        at = bisect.bisect_left(children, child)
        present = at < len(children) and children[at] == child
        if mask & _ADDED and not present:
            children.insert(at, child)
        elif mask & _REMOVED and present:
            del children[at]


def _inotify(fd: int, call: str, *args: object) -> int:
    """``inotify_init1`` (``fd`` unused), ``inotify_add_watch`` or ``inotify_rm_watch``
    on ``fd``; -1 on failure (inotify is an optimisation: a failure lists as before)."""
    assert _LIBC is not None
    fn = getattr(_LIBC, call)
    result: int = fn(*args) if call == "inotify_init1" else fn(fd, *args)
    return result
