"""The cache contract and the decorator that puts a cache in front of storage."""

from __future__ import annotations

import logging
import time
from typing import Protocol

from dockyard.digest import Digest
from dockyard.types import BlobDescriptor

__all__ = ["BlobDescriptorCache", "CacheFailure", "SafeCache"]

log = logging.getLogger("dockyard.cache")


class CacheFailure(Exception):
    """The cache backend failed; callers fall through to storage."""


class BlobDescriptorCache(Protocol):
    """Descriptors by digest, globally (``repository=None``) and per repository."""

    async def get(self, repository: str | None, digest: Digest) -> BlobDescriptor | None: ...

    async def set(self, repository: str | None, desc: BlobDescriptor) -> None: ...

    async def clear(self, repository: str | None, digest: Digest) -> None: ...


class SafeCache:
    """Wraps a cache so its failures are logged (once a minute) and never fail a request."""

    def __init__(self, inner: BlobDescriptorCache, name: str) -> None:
        self.inner = inner
        self.name = name
        self._last_warning = 0.0
        self._failing = False

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning > 60:
            self._last_warning = now
            log.warning("%s cache unavailable, serving from storage: %s", self.name, exc)
        self._failing = True

    def _ok(self) -> None:
        if self._failing:
            self._failing = False
            self._last_warning = 0.0
            log.info("%s cache is back", self.name)

    async def get(self, repository: str | None, digest: Digest) -> BlobDescriptor | None:
        try:
            found = await self.inner.get(repository, digest)
        except CacheFailure as exc:
            self._failed(exc)
            return None
        self._ok()
        return found

    async def set(self, repository: str | None, desc: BlobDescriptor) -> None:
        try:
            await self.inner.set(repository, desc)
        except CacheFailure as exc:
            self._failed(exc)
        else:
            self._ok()

    async def clear(self, repository: str | None, digest: Digest) -> None:
        try:
            await self.inner.clear(repository, digest)
        except CacheFailure as exc:
            self._failed(exc)
        else:
            self._ok()
