"""The GCS driver: the StorageDriver contract on top of :class:`GCSBucket`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from dockyard.storage.drivers.base import FileInfo, InvalidOffset, PathNotFound, StorageError
from dockyard.storage.drivers.gcs._bucket import (
    PARTS_SUFFIX,
    SESSION_CONTENT_TYPE,
    GCSBucket,
    mtime,
    size_of,
)
from dockyard.storage.drivers.gcs._params import GCSParameters
from dockyard.storage.drivers.gcs._signing import sign_url_v4
from dockyard.storage.drivers.gcs._writer import PartListWriter, open_writer
from dockyard.storage.drivers.objectstore import PrefixTree

__all__ = ["GCSDriver"]

PUBLIC_HOST = "https://storage.googleapis.com"


class GCSDriver(GCSBucket, PrefixTree):
    """Objects in one bucket; see the package docstring."""

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any], *, redirect: bool = True) -> GCSDriver:
        """``storage.gcs``; ``redirect`` is ``not storage.redirect.disable``."""
        return cls(GCSParameters(params), redirect=redirect)

    async def writer(self, path: str, offset: int = 0) -> PartListWriter:
        return await open_writer(self, path, offset)

    async def get_content(self, path: str) -> bytes:
        return b"".join([chunk async for chunk in self.reader(path)])


    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        key = self._key(path)
        meta = await self._metadata(path)
        size = size_of(meta)
        if offset > size:
            raise InvalidOffset(path, offset, self.name)
        if offset == size:
            return
        if meta.get("contentType") != SESSION_CONTENT_TYPE:
            async for chunk in self._stream(path, key, offset, None):
                yield chunk
            return
        start = 0
        for name, part_size in await self._parts(path, key):
            end = start + part_size
            if end > offset:
                async for chunk in self._stream(
                    path, self._part_key(key, name), max(offset - start, 0), None
                ):
                    yield chunk
            start = end

    async def stat(self, path: str) -> FileInfo:
        key = self._key(path)
        if key:
            try:
                meta = await self._metadata(path)
            except PathNotFound:
                pass
            else:
                return FileInfo(path, size_of(meta), mtime(meta), False)
        async for _ in self._list(path, self._prefix(path), "/"):
            return FileInfo(path, 0, 0.0, True)
        raise PathNotFound(path, self.name)

    async def _children(self, path: str) -> AsyncIterator[FileInfo]:
        prefix = self._prefix(path)
        async for item in self._list(path, prefix, "/"):
            name = item if isinstance(item, str) else item["name"]
            rest = name[len(prefix) :]
            if not rest.strip("/") or "~" in rest:
                continue  # a folder placeholder, or upload parts
            if isinstance(item, str):
                yield FileInfo(self._path(name), 0, 0.0, True)
            else:
                yield FileInfo(self._path(name), size_of(item), mtime(item), False)

    async def move(self, source: str, dest: str) -> None:
        bucket = self.params.bucket
        src, dst = self._key(source), self._key(dest)
        meta = await self._metadata(source)
        if meta.get("contentType") == SESSION_CONTENT_TYPE:
            # Not committed: finish it first (the upload layer always commits before).
            writer = await self.writer(source, size_of(meta))
            await writer.commit()
        result = await self._call(source, lambda s: s.copy(bucket, src, bucket, new_name=dst))
        if result.get("done") is False:
            raise StorageError(f"copy of {source} to {dest} did not finish", self.name)
        await self._delete_key(source, src)
        await self._delete_prefix(source, src + PARTS_SUFFIX)

    async def redirect_url(self, path: str, method: str) -> str | None:
        signing = self.params.signing_key
        if not self.redirect or method not in ("GET", "HEAD") or signing is None:
            return None
        email, key = signing
        return sign_url_v4(
            host_url=self.params.endpoint or PUBLIC_HOST,
            bucket=self.params.bucket,
            name=self._key(path),
            client_email=email,
            private_key=key,
            method=method,
        )

    def local_path(self, path: str) -> str | None:
        return None
