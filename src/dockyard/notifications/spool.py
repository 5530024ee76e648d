"""Where an endpoint's queued events wait: on local disk, so they survive a restart.

One spool per endpoint and per worker slot, a directory owned by one process at a
time (an exclusive ``flock`` on its ``lock`` file), so no two workers ever deliver
the same event::

    <directory>/<endpoint>/<slot>/
        lock                       held by the owning process
        cursor                     "<segment> <offset>": first event not yet delivered
        00000001.events            one JSON event per line, appended in order
        00000002.events            a new segment every few MiB

The cursor is rewritten after each delivery, in place: one write of a record of fixed
length at the start of the file, so it is always whole (one system call instead of the
five of a replacement by rename, each a hand-over of the GIL in the delivery thread).
A restart resumes at the first undelivered event (an event whose POST succeeded just
before a crash, before its cursor was written, is sent again: at least once, exactly
once otherwise).
Segments behind the cursor are deleted. A bound on queued events drops the oldest
(counted, for the metrics and the log). The events this process appended are also kept
in memory (up to ``_MIRROR_EVENTS``, then it reads them back from disk), so delivery
does not read and split again what it has just written, and takes them without a
thread hop (:meth:`Spool.peek_nowait`). The other methods block when ``blocking`` says
so: call them in a thread then.

:class:`MemorySpool` has the same interface for an endpoint without a directory; none
of its methods blocks.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from dockyard.filewrite import pwrite_all

__all__ = ["DiskSpool", "MemorySpool", "Position", "Spool", "SpoolBusy"]

Position = tuple[int, int]
"""(segment, offset) in a spool; opaque outside this module."""

_SEGMENT_BYTES = 4 << 20
_READ_BYTES = 256 << 10
#: Events kept in memory past the disk; a larger backlog is read back from the disk.
_MIRROR_EVENTS = 2000
_SUFFIX = ".events"
#: The cursor's record: both numbers zero-padded to one width, so every record has the
#: same length and a new one covers the old whole.
_CURSOR_FORMAT = "{:020d} {:020d}\n"


class SpoolBusy(OSError):
    """Another process owns this spool."""


class Spool:
    """The interface of both spools: append, peek, ack; ``pending`` events queued."""

    pending: int = 0
    drops: int = 0
    """Events dropped by the bound so far (a batch being retried may be among them)."""
    blocking = True
    """Whether :meth:`append`, :meth:`peek` and :meth:`ack` may wait for the disk (the
    caller on an event loop runs them in a thread then)."""

    def append(self, lines: Sequence[bytes]) -> int:
        """Queue events (one JSON line each); returns how many old ones were dropped."""
        raise NotImplementedError

    def peek(self, limit: int) -> tuple[list[bytes], Position]:
        """Up to ``limit`` of the oldest events (a new list: the caller's to change), and
        the position after them."""
        raise NotImplementedError

    def peek_nowait(self, limit: int) -> tuple[list[bytes], Position] | None:
        """:meth:`peek`, but None rather than waiting: for an event loop's thread."""
        return self.peek(limit) if not self.blocking else None

    def ack(self, position: Position, count: int) -> None:
        """The ``count`` events before ``position`` (from :meth:`peek`) were delivered."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the spool (its events stay for the next owner)."""


class MemorySpool(Spool):
    """Events in memory: lost on restart (no spool directory configured)."""

    blocking = False

    def __init__(self, max_events: int) -> None:
        self._events: deque[bytes] = deque()
        self._max = max_events
        self._lock = threading.Lock()
        self._serial = 0  # events removed so far: makes a position of the front

    def append(self, lines: Sequence[bytes]) -> int:
        with self._lock:
            self._events.extend(lines)
            over = max(0, len(self._events) - self._max)
            for _ in range(over):
                self._events.popleft()
            self._serial += over
            self.drops += over
            self.pending = len(self._events)
            return over

    def peek(self, limit: int) -> tuple[list[bytes], Position]:
        with self._lock:
            lines = [self._events[i] for i in range(min(limit, len(self._events)))]
            return lines, (self._serial, len(lines))

    def ack(self, position: Position, count: int) -> None:
        with self._lock:
            serial, taken = position
            # Events dropped since the peek were among those taken: remove the rest.
            remaining = max(0, serial + taken - self._serial)
            for _ in range(min(remaining, len(self._events))):
                self._events.popleft()
            self._serial += remaining
            self.pending = len(self._events)


class DiskSpool(Spool):
    """A spool directory (see the module docstring); raises SpoolBusy if it is owned."""

    def __init__(self, path: Path, max_events: int) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._max = max_events
        self._lock = threading.Lock()
        self._lock_fd = os.open(path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolBusy(f"{path} is owned by another process") from None
        self._writer: int | None = None
        self._cursor_fd = -1
        try:
            segments = self._segments()
            self._cursor_fd = os.open(path / "cursor", os.O_RDWR | os.O_CREAT, 0o600)
            self._cursor = self._read_cursor(segments)
            self.pending = self._count()
        except BaseException:
            self.close()  # the lock too: a later attempt must not find the spool owned
            raise
        self._tail = segments[-1] if segments else self._cursor[0]
        self._size = 0  # of the tail segment, once this process writes it
        self._peeked_from = self._cursor
        # (start, end, lines) of the latest batches appended, contiguous up to the end
        # of the spool: peeked from here when the cursor is at the first one's start.
        # A batch each, not a line: per-line entries cost the delivery thread more than
        # the rest of queueing an event.
        self._mirror: deque[tuple[Position, Position, Sequence[bytes]]] = deque()
        self._mirrored = 0  # lines in the mirror

    # -- layout ----------------------------------------------------------------------

    def _segment_path(self, number: int) -> Path:
        return self.path / f"{number:08d}{_SUFFIX}"

    def _segments(self) -> list[int]:
        found = []
        for entry in os.listdir(self.path):
            if entry.endswith(_SUFFIX) and entry[: -len(_SUFFIX)].isdigit():
                found.append(int(entry[: -len(_SUFFIX)]))
        return sorted(found)

    def _read_cursor(self, segments: list[int]) -> Position:
        # Also the record of earlier versions ("<segment> <offset>" unpadded, replaced
        # by rename): the first write of this version covers it whole.
        record = os.pread(self._cursor_fd, 128, 0)
        try:
            segment, offset = record.split()
            cursor = (int(segment), int(offset))
        except ValueError:  # none written yet
            cursor = (segments[0] if segments else 1, 0)
        # The cursor's segment was deleted (a crash after the delete, before the
        # cursor moved on): continue at the next one that exists.
        if segments and cursor[0] not in segments:
            later = [s for s in segments if s > cursor[0]]
            cursor = (later[0], 0) if later else (cursor[0], 0)
        return cursor

    def _write_cursor(self, cursor: Position) -> None:
        record = _CURSOR_FORMAT.format(*cursor).encode()
        if os.pwrite(self._cursor_fd, record, 0) != len(record):
            raise OSError(f"{self.path / 'cursor'}: short write")

    def _count(self) -> int:
        total = 0
        segment, offset = self._cursor
        for number in self._segments():
            if number < segment:
                continue
            with open(self._segment_path(number), "rb") as f:
                if number == segment:
                    f.seek(offset)
                total += sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        return total

    # -- the interface ----------------------------------------------------------------

    def append(self, lines: Sequence[bytes]) -> int:
        if not lines:
            return 0
        # One copy of the batch (a concatenation after the join would copy it again).
        data = b"\n".join([*lines, b""])
        with self._lock:
            if self._writer is None or self._size >= _SEGMENT_BYTES:
                self._rotate()
            assert self._writer is not None
            size = self._size
            # Whole, in writes the page cache serves from small folios (dockyard.filewrite).
            try:
                self._size = pwrite_all(self._writer, (data,), size)
            except BaseException:
                # It may have written part: the next append starts a new segment (lines
                # stay whole) rather than guess where this one ended.
                self._size = _SEGMENT_BYTES
                raise
            self._remember(lines, size)
            self.pending += len(lines)
            over = self.pending - self._max
            if over > 0:
                _, position = self._read(over)
                self._advance(position, over)
                self.drops += over
                return over
            return 0

    def _remember(self, lines: Sequence[bytes], offset: int) -> None:
        """Keep ``lines``, just written at ``offset`` of the tail segment, in the mirror
        (cleared instead when that would exceed its bound: the disk has them)."""
        if self._mirrored + len(lines) > _MIRROR_EVENTS:
            self._mirror.clear()
            self._mirrored = 0
            return
        end = offset + sum(map(len, lines)) + len(lines)
        self._mirror.append(((self._tail, offset), (self._tail, end), lines))
        self._mirrored += len(lines)

    def _forget(self) -> None:
        """Drop from the mirror the lines behind the cursor."""
        mirror, cursor = self._mirror, self._cursor
        while mirror and mirror[0][1] <= cursor:
            self._mirrored -= len(mirror.popleft()[2])
        if mirror and mirror[0][0] < cursor:  # a batch delivered in part: keep the rest
            (segment, offset), end, lines = mirror[0]
            done = 0
            while (segment, offset) < cursor:
                offset += len(lines[done]) + 1
                done += 1
            mirror[0] = ((segment, offset), end, lines[done:])
            self._mirrored -= done

    def _rotate(self) -> None:
        if self._writer is not None:
            os.close(self._writer)
            self._tail += 1
        elif self._segment_path(self._tail).exists():
            # Never append to a segment a previous process wrote: it may end in a
            # partial line (a crash mid-write); a fresh segment keeps lines whole.
            self._tail += 1
        self._writer = os.open(
            self._segment_path(self._tail), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        self._size = 0

    def peek(self, limit: int) -> tuple[list[bytes], Position]:
        with self._lock:
            found = self._peek_mirror(limit)
            if found is None:
                self._peeked_from = self._cursor
                found = self._read(limit)
            return found

    def peek_nowait(self, limit: int) -> tuple[list[bytes], Position] | None:
        # Not while a thread holds the lock: it may be waiting for the disk.
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._peek_mirror(limit)
        finally:
            self._lock.release()

    def _peek_mirror(self, limit: int) -> tuple[list[bytes], Position] | None:
        """:meth:`peek` from the mirror; None when the oldest events are not in it."""
        mirror = self._mirror
        if not (mirror and mirror[0][0] == self._cursor):
            return None
        self._peeked_from = self._cursor
        taken: list[bytes] = []
        position = self._cursor
        for start, end, lines in mirror:
            room = limit - len(taken)
            if len(lines) <= room:
                taken.extend(lines)
                position = end
            else:  # the batch's first ``room`` lines, and where they end
                part = lines[:room]
                taken.extend(part)
                position = (start[0], start[1] + sum(map(len, part)) + room)
            if len(taken) >= limit:
                break
        return taken, position

    def _read(self, limit: int, start: Position | None = None) -> tuple[list[bytes], Position]:
        lines: list[bytes] = []
        segment, offset = start or self._cursor
        while len(lines) < limit and segment <= self._tail:
            try:
                f = open(self._segment_path(segment), "rb")  # noqa: SIM115 (closed below)
            except FileNotFoundError:
                segment, offset = segment + 1, 0
                continue
            with f:
                f.seek(offset)
                offset = self._read_lines(f, offset, limit - len(lines), lines)
            if len(lines) < limit and segment < self._tail:
                segment, offset = segment + 1, 0
            else:
                break
        return lines, (segment, offset)

    @staticmethod
    def _read_lines(f: BinaryIO, offset: int, limit: int, into: list[bytes]) -> int:
        """Append up to ``limit`` whole lines of ``f`` (at ``offset``) to ``into``; the
        offset after them. Read in blocks and split (a delivery reads hundreds of events:
        a ``readline`` each cost more than the rest of reading them)."""
        rest = b""
        while limit > 0:
            block = f.read(_READ_BYTES)
            if not block:
                break  # the end (a partial last line, being written or torn, stays)
            *whole, rest = (rest + block).split(b"\n")
            taken = whole[:limit]
            into.extend(taken)
            limit -= len(taken)
            offset += sum(map(len, taken)) + len(taken)
        return offset

    def ack(self, position: Position, count: int) -> None:
        with self._lock:
            if position <= self._cursor:
                return  # dropped meanwhile: the cursor is past them already
            if self._cursor != self._peeked_from:
                # Some of them were dropped since the peek: count what is left.
                count = len(self._read_until(position))
            self._advance(position, count)

    def _read_until(self, position: Position) -> list[bytes]:
        lines: list[bytes] = []
        start = self._cursor
        while start < position:
            batch, start = self._read(1, start)
            if not batch:
                break
            lines.extend(batch)
        return lines

    def _advance(self, position: Position, count: int) -> None:
        old = self._cursor[0]
        self._cursor = position
        self._write_cursor(position)
        self._forget()
        for number in range(old, position[0]):
            with contextlib.suppress(FileNotFoundError):
                self._segment_path(number).unlink()
        self.pending = max(0, self.pending - count)

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                os.close(self._writer)
                self._writer = None
            if self._cursor_fd >= 0:
                os.close(self._cursor_fd)
                self._cursor_fd = -1
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = -1
