"""``registry_storage_action_seconds``: a wrapper timing every call into the storage driver.

Like distribution's ``driver/base.Base``, it sits once around whatever driver is
configured; the action names are the original's (``GetContent``, ``Stat``...).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from dockyard.metrics._families import Metrics
from dockyard.storage.drivers.base import FileInfo, FileWriter, StorageDriver

__all__ = ["TimedDriver"]


class TimedDriver:
    """``inner`` with each call's duration observed under ``driver`` and ``action``.

    A reader is timed until its first chunk (the open, as the original times
    ``Reader``), not while the client drains it.
    """

    def __init__(self, inner: StorageDriver, metrics: Metrics) -> None:
        self.inner = inner
        self.name = inner.name
        histogram = metrics.storage_action
        self._timers = {
            action: histogram.labels(inner.name, action)
            for action in ("GetContent", "PutContent", "Reader", "Writer", "Stat", "List",
                           "Move", "Delete", "RedirectURL", "Walk")
        }

    def __getattr__(self, name: str) -> Any:
        # Optional capabilities (AbortsStaleWrites...) stay visible through the wrapper.
        return getattr(self.inner, name)

    def _observe(self, action: str, start: float) -> None:
        self._timers[action].observe(time.perf_counter() - start)

    async def get_content(self, path: str) -> bytes:
        start = time.perf_counter()
        try:
            return await self.inner.get_content(path)
        finally:
            self._observe("GetContent", start)

    async def put_content(self, path: str, data: bytes) -> None:
        start = time.perf_counter()
        try:
            await self.inner.put_content(path, data)
        finally:
            self._observe("PutContent", start)

    def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        return self._timed_reader(self.inner.reader(path, offset))

    async def _timed_reader(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        start = time.perf_counter()
        first = True
        try:
            async for chunk in chunks:
                if first:
                    first = False
                    self._observe("Reader", start)
                yield chunk
        finally:
            if first:
                self._observe("Reader", start)
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    async def writer(self, path: str, offset: int = 0) -> FileWriter:
        start = time.perf_counter()
        try:
            return await self.inner.writer(path, offset)
        finally:
            self._observe("Writer", start)

    async def stat(self, path: str) -> FileInfo:
        start = time.perf_counter()
        try:
            return await self.inner.stat(path)
        finally:
            self._observe("Stat", start)

    async def list(self, path: str) -> list[str]:
        start = time.perf_counter()
        try:
            return await self.inner.list(path)
        finally:
            self._observe("List", start)

    async def move(self, source: str, dest: str) -> None:
        start = time.perf_counter()
        try:
            await self.inner.move(source, dest)
        finally:
            self._observe("Move", start)

    async def delete(self, path: str) -> None:
        start = time.perf_counter()
        try:
            await self.inner.delete(path)
        finally:
            self._observe("Delete", start)

    async def redirect_url(self, path: str, method: str) -> str | None:
        start = time.perf_counter()
        try:
            return await self.inner.redirect_url(path, method)
        finally:
            self._observe("RedirectURL", start)

    def walk(self, path: str) -> AsyncIterator[FileInfo]:
        # A walk is long and lazy; its time is the caller's, so it is counted, not timed.
        self._timers["Walk"].observe(0.0)
        return self.inner.walk(path)

    def local_path(self, path: str) -> str | None:
        return self.inner.local_path(path)

    async def aclose(self) -> None:
        await self.inner.aclose()
