"""Driver wrappers that let observers see every call (tracing, metrics).

As distribution's ``driver/base.Base`` checks, times and traces each operation of any
driver, :class:`ObservedDriver` wraps whichever driver is configured once and enters
``observe(action, path)`` around each call (a span), and :class:`TimedDriver`, the
path checker of :class:`~.base.CheckedDriver` with a timing, tells
``timings[action]`` how long each call took (a histogram's tally). Action names are
the original's (``GetContent``, ``PutContent``, ``Reader``, ``Writer``, ``Stat``,
``List``, ``Move``, ``Delete``, ``RedirectURL``, ``Walk``). A reader is observed until
its first chunk (the open, as the original observes ``Reader``), not while the client
drains it; a walk only at its start.

Two wrappers rather than one observer interface: a timing taken inline costs no call
where a context manager costs three (making it, entering it, leaving it), and the
timing is on every storage call of every request with metrics on.
"""

from __future__ import annotations

import bisect
import builtins
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from dockyard.storage.drivers import base
from dockyard.storage.drivers.base import (
    CheckedDriver,
    FileInfo,
    FileWriter,
    InvalidOffset,
    StorageDriver,
    check_path,
)

__all__ = ["ACTIONS", "ObservedDriver", "Observer", "Tally", "TimedDriver", "Timings"]

ACTIONS = ("GetContent", "PutContent", "Reader", "Writer", "Stat", "List", "Move", "Delete",
           "RedirectURL", "Walk")

#: ``observe(action, path)``: a context manager entered around one driver call.
Observer = Callable[[str, str], AbstractContextManager[object]]


class Tally(Protocol):
    """A histogram that a timing updates in place: the bucket of the first bound not
    below the value counts one (the last: +Inf), ``sum`` adds the value (as metrics'
    ``Histogram.observe``; a call of it would cost more than the update)."""

    bounds: Sequence[float]
    counts: list[int]
    sum: float


#: ``timings[action]``: the tally of the durations of each call of every action.
Timings = Mapping[str, Tally]

_clock = time.perf_counter
_bisect = bisect.bisect_left


class _Wrapper:
    """What both wrappers pass through as it is."""

    def __init__(self, inner: StorageDriver) -> None:
        self.inner = inner
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:
        # Optional capabilities (AbortsStaleWrites...) stay visible through the wrapper.
        return getattr(self.inner, name)

    def local_path(self, path: str) -> str | None:
        return self.inner.local_path(path)

    async def aclose(self) -> None:
        await self.inner.aclose()


class ObservedDriver(_Wrapper):
    """``inner`` with ``observe`` around each call; other attributes pass through."""

    def __init__(self, inner: StorageDriver, observe: Observer) -> None:
        super().__init__(inner)
        self._observe = observe

    # The batched calls are methods of the class, not passed through ``__getattr__``:
    # ``base._has`` checks a driver's class, so without them every batch through this
    # wrapper fell back to one call per path. Each batch is one observation.

    async def list_many(self, paths: Sequence[str]) -> list[list[str] | None]:
        with self._observe("List", paths[0] if paths else ""):
            return await base.list_many(self.inner, paths)

    async def get_many(self, paths: Sequence[str]) -> list[bytes | None]:
        with self._observe("GetContent", paths[0] if paths else ""):
            return await base.get_many(self.inner, paths)

    async def stat_many(self, paths: Sequence[str]) -> list[FileInfo | None]:
        with self._observe("Stat", paths[0] if paths else ""):
            return await base.stat_many(self.inner, paths)

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        with self._observe("PutContent", items[0][0] if items else ""):
            await base.put_many(self.inner, items)

    async def put_unsynced(self, items: Sequence[tuple[str, bytes]]) -> None:
        with self._observe("PutContent", items[0][0] if items else ""):
            await base.put_unsynced(self.inner, items)

    async def get_content(self, path: str) -> bytes:
        with self._observe("GetContent", path):
            return await self.inner.get_content(path)

    async def put_content(self, path: str, data: bytes) -> None:
        with self._observe("PutContent", path):
            await self.inner.put_content(path, data)

    def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        return self._observed_reader(path, self.inner.reader(path, offset))

    async def _observed_reader(
        self, path: str, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        iterator = aiter(chunks)
        try:
            with self._observe("Reader", path):
                first = await anext(iterator, None)
            if first is None:
                return
            yield first
            async for chunk in iterator:
                yield chunk
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()

    async def writer(self, path: str, offset: int = 0) -> FileWriter:
        with self._observe("Writer", path):
            return await self.inner.writer(path, offset)

    async def stat(self, path: str) -> FileInfo:
        with self._observe("Stat", path):
            return await self.inner.stat(path)

    async def list(self, path: str) -> list[str]:
        with self._observe("List", path):
            return await self.inner.list(path)

    async def move(self, source: str, dest: str) -> None:
        with self._observe("Move", source):
            await self.inner.move(source, dest)

    async def delete(self, path: str) -> None:
        with self._observe("Delete", path):
            await self.inner.delete(path)

    async def redirect_url(self, path: str, method: str) -> str | None:
        with self._observe("RedirectURL", path):
            return await self.inner.redirect_url(path, method)

    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        with self._observe("Walk", path):
            return self.inner.walk(path)


class TimedDriver(CheckedDriver):
    """:class:`~.base.CheckedDriver` that also tallies how long each call took in
    ``timings[action]`` (not a path refused by the check, as distribution's
    ``base.Base``); the batched calls are timed once a batch.

    The check and the timing in one wrapper, as distribution's ``base.Base`` does them:
    a wrapper of its own cost each driver call a coroutine more, over half of what
    timing it costs. With tracing, ``inner`` is the :class:`ObservedDriver` (the span
    is then inside the timing).
    """

    def __init__(self, inner: StorageDriver, timings: Timings) -> None:
        super().__init__(inner)
        # Looked up once: a call costs the clock twice and the tally's update.
        (self._get, self._put, self._reader, self._writer, self._stat, self._list,
         self._move, self._delete, self._redirect, self._walk) = (
            timings[action] for action in ACTIONS)

    async def get_content(self, path: str) -> bytes:
        check_path(path, self.name)
        start = _clock()
        try:
            return await self.inner.get_content(path)
        finally:
            seconds = _clock() - start
            t = self._get
            t.counts[_bisect(t.bounds, seconds)] += 1
            t.sum += seconds

    async def put_content(self, path: str, data: bytes) -> None:
        check_path(path, self.name)
        start = _clock()
        try:
            await self.inner.put_content(path, data)
        finally:
            seconds = _clock() - start
            t = self._put
            t.counts[_bisect(t.bounds, seconds)] += 1
            t.sum += seconds

    def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        return self._timed_reader(super().reader(path, offset))

    async def _timed_reader(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        iterator = aiter(chunks)
        try:
            start = _clock()
            try:
                first = await anext(iterator, None)
            finally:
                seconds = _clock() - start
                t = self._reader
                t.counts[_bisect(t.bounds, seconds)] += 1
                t.sum += seconds
            if first is None:
                return
            yield first
            async for chunk in iterator:
                yield chunk
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()

    async def writer(self, path: str, offset: int = 0) -> FileWriter:
        if offset < 0:
            raise InvalidOffset(path, offset, self.name)
        check_path(path, self.name)
        start = _clock()
        try:
            return await self.inner.writer(path, offset)
        finally:
            seconds = _clock() - start
            t = self._writer
            t.counts[_bisect(t.bounds, seconds)] += 1
            t.sum += seconds

    async def stat(self, path: str) -> FileInfo:
        check_path(path, self.name)
        start = _clock()
        try:
            return await self.inner.stat(path)
        finally:
            seconds = _clock() - start
            t = self._stat
            t.counts[_bisect(t.bounds, seconds)] += 1
            t.sum += seconds

    async def list(self, path: str) -> builtins.list[str]:
        check_path(path, self.name)
        start = _clock()
        try:
            return await self.inner.list(path)
        finally:
            seconds = _clock() - start
            t = self._list
            t.counts[_bisect(t.bounds, seconds)] += 1
            t.sum += seconds

    async def get_many(self, paths: Sequence[str]) -> builtins.list[bytes | None]:
        checked = [check_path(p, self.name) for p in paths]
        start = _clock()
        try:
            return await base.get_many(self.inner, checked)
        finally:
            seconds = _clock() - start
            t = self._get
            t.counts[_bisect(t.bounds, seconds)] += 1
            t.sum += seconds

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        checked = [(check_path(p, self.name), data) for p, data in items]
        start = _clock()
        try:
            await base.put_many(self.inner, checked)
        finally:
            seconds = _clock() - start
            t = self._put
            t.counts[_bisect(t.bounds, seconds)] += 1
            t.sum += seconds

    async def put_unsynced(self, items: Sequence[tuple[str, bytes]]) -> None:
        checked = [(check_path(p, self.name), data) for p, data in items]
        start = _clock()
        try:
            await base.put_unsynced(self.inner, checked)
        finally:
            seconds = _clock() - start
            t = self._put
            t.counts[_bisect(t.bounds, seconds)] += 1
            t.sum += seconds

    async def list_many(self, paths: Sequence[str]) -> builtins.list[builtins.list[str] | None]:
        checked = [check_path(p, self.name) for p in paths]
        start = _clock()
        try:
            return await base.list_many(self.inner, checked)
        finally:
            seconds = _clock() - start
            t = self._list
            t.counts[_bisect(t.bounds, seconds)] += 1
            t.sum += seconds

    async def stat_many(self, paths: Sequence[str]) -> builtins.list[FileInfo | None]:
        checked = [check_path(p, self.name) for p in paths]
        start = _clock()
        try:
            return await base.stat_many(self.inner, checked)
        finally:
            seconds = _clock() - start
            t = self._stat
            t.counts[_bisect(t.bounds, seconds)] += 1
            t.sum += seconds

    async def move(self, source: str, dest: str) -> None:
        check_path(source, self.name)
        check_path(dest, self.name)
        start = _clock()
        try:
            await self.inner.move(source, dest)
        finally:
            seconds = _clock() - start
            t = self._move
            t.counts[_bisect(t.bounds, seconds)] += 1
            t.sum += seconds

    async def delete(self, path: str) -> None:
        check_path(path, self.name)
        start = _clock()
        try:
            await self.inner.delete(path)
        finally:
            seconds = _clock() - start
            t = self._delete
            t.counts[_bisect(t.bounds, seconds)] += 1
            t.sum += seconds

    async def redirect_url(self, path: str, method: str) -> str | None:
        check_path(path, self.name)
        start = _clock()
        try:
            return await self.inner.redirect_url(path, method)
        finally:
            seconds = _clock() - start
            t = self._redirect
            t.counts[_bisect(t.bounds, seconds)] += 1
            t.sum += seconds

    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        check_path(path, self.name)
        start = _clock()
        try:
            return self.inner.walk(path)
        finally:
            seconds = _clock() - start
            t = self._walk
            t.counts[_bisect(t.bounds, seconds)] += 1
            t.sum += seconds
