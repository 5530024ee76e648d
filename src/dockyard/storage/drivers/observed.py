"""Driver wrappers that let observers see every call (tracing, metrics).

As distribution's ``driver/base.Base`` times and traces each operation of any driver,
:class:`ObservedDriver` wraps whichever driver is configured once and enters
``observe(action, path)`` around each call (a span), and :class:`TimedDriver` tells
``timings[action](seconds)`` how long each call took (a histogram). Action names are
the original's (``GetContent``, ``PutContent``, ``Reader``, ``Writer``, ``Stat``,
``List``, ``Move``, ``Delete``, ``RedirectURL``, ``Walk``). A reader is observed until
its first chunk (the open, as the original observes ``Reader``), not while the client
drains it; a walk only at its start.

Two wrappers rather than one observer interface: a timing taken inline costs one call
a driver operation where a context manager costs three (making it, entering it,
leaving it), and the timing is on every storage call of every request with metrics on.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from dockyard.storage.drivers import base
from dockyard.storage.drivers.base import FileInfo, FileWriter, StorageDriver

__all__ = ["ACTIONS", "ObservedDriver", "Observer", "TimedDriver", "Timings"]

ACTIONS = ("GetContent", "PutContent", "Reader", "Writer", "Stat", "List", "Move", "Delete",
           "RedirectURL", "Walk")

#: ``observe(action, path)``: a context manager entered around one driver call.
Observer = Callable[[str, str], AbstractContextManager[object]]
#: ``timings[action](seconds)``: told the duration of each call of every action.
Timings = Mapping[str, Callable[[float], None]]

_clock = time.perf_counter


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


class TimedDriver(_Wrapper):
    """``inner`` with each call's duration told to ``timings[action]``; the batched
    calls are methods here too (see :class:`ObservedDriver`), a batch one timing."""

    def __init__(self, inner: StorageDriver, timings: Timings) -> None:
        super().__init__(inner)
        self._timings = timings
        # Looked up once: a call costs the clock twice and one call of its timing.
        (self._get, self._put, self._reader, self._writer, self._stat, self._list,
         self._move, self._delete, self._redirect, self._walk) = (
            timings[action] for action in ACTIONS)

    async def list_many(self, paths: Sequence[str]) -> list[list[str] | None]:
        start = _clock()
        try:
            return await base.list_many(self.inner, paths)
        finally:
            self._list(_clock() - start)

    async def get_many(self, paths: Sequence[str]) -> list[bytes | None]:
        start = _clock()
        try:
            return await base.get_many(self.inner, paths)
        finally:
            self._get(_clock() - start)

    async def stat_many(self, paths: Sequence[str]) -> list[FileInfo | None]:
        start = _clock()
        try:
            return await base.stat_many(self.inner, paths)
        finally:
            self._stat(_clock() - start)

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        start = _clock()
        try:
            await base.put_many(self.inner, items)
        finally:
            self._put(_clock() - start)

    async def put_unsynced(self, items: Sequence[tuple[str, bytes]]) -> None:
        start = _clock()
        try:
            await base.put_unsynced(self.inner, items)
        finally:
            self._put(_clock() - start)

    async def get_content(self, path: str) -> bytes:
        start = _clock()
        try:
            return await self.inner.get_content(path)
        finally:
            self._get(_clock() - start)

    async def put_content(self, path: str, data: bytes) -> None:
        start = _clock()
        try:
            await self.inner.put_content(path, data)
        finally:
            self._put(_clock() - start)

    def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        return self._timed_reader(self.inner.reader(path, offset))

    async def _timed_reader(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        iterator = aiter(chunks)
        try:
            start = _clock()
            try:
                first = await anext(iterator, None)
            finally:
                self._reader(_clock() - start)
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
        start = _clock()
        try:
            return await self.inner.writer(path, offset)
        finally:
            self._writer(_clock() - start)

    async def stat(self, path: str) -> FileInfo:
        start = _clock()
        try:
            return await self.inner.stat(path)
        finally:
            self._stat(_clock() - start)

    async def list(self, path: str) -> list[str]:
        start = _clock()
        try:
            return await self.inner.list(path)
        finally:
            self._list(_clock() - start)

    async def move(self, source: str, dest: str) -> None:
        start = _clock()
        try:
            await self.inner.move(source, dest)
        finally:
            self._move(_clock() - start)

    async def delete(self, path: str) -> None:
        start = _clock()
        try:
            await self.inner.delete(path)
        finally:
            self._delete(_clock() - start)

    async def redirect_url(self, path: str, method: str) -> str | None:
        start = _clock()
        try:
            return await self.inner.redirect_url(path, method)
        finally:
            self._redirect(_clock() - start)

    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        start = _clock()
        try:
            return self.inner.walk(path)
        finally:
            self._walk(_clock() - start)
