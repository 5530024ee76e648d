"""The GCS writer, and how an upload is found again to be continued.

:func:`open_writer` reads the part list (or adopts a complete object) and cuts it back
when asked to continue below the size; :class:`PartListWriter` uploads parts through
the object stores' :class:`PartWriter`, saves the part list on ``close`` and composes
the parts on ``commit``. The package docstring tells why.
"""

from __future__ import annotations

import contextlib
import uuid

from dockyard.storage.drivers.base import InvalidOffset, StorageError
from dockyard.storage.drivers.gcs._bucket import (
    PARTS_SUFFIX,
    SESSION_CONTENT_TYPE,
    GCSBucket,
    size_of,
)
from dockyard.storage.drivers.objectstore import PartWriter

__all__ = ["PartListWriter", "open_writer"]


async def open_writer(bucket: GCSBucket, path: str, offset: int) -> PartListWriter:
    """The writer of ``path`` continuing at ``offset`` (``writer(path, offset)``)."""
    key = bucket._key(path)
    parts: list[tuple[str, int]] = []
    changed = True  # writer(path, 0) replaces the object even if nothing is written
    if offset:
        meta = await bucket._metadata(path)
        size = size_of(meta)
        if size < offset:
            raise InvalidOffset(path, offset, bucket.name)
        if meta.get("contentType") == SESSION_CONTENT_TYPE:
            parts = await bucket._parts(path, key)
            changed = size != offset
            if changed:
                parts = await _cut(bucket, path, key, parts, offset)
        else:  # a complete object: its head becomes the first part (server-side copy)
            parts = await _adopt(bucket, path, key, size, offset)
    return PartListWriter(bucket, path, key, parts, offset, dirty=changed)


async def _cut(
    bucket: GCSBucket, path: str, key: str, parts: list[tuple[str, int]], offset: int
) -> list[tuple[str, int]]:
    kept: list[tuple[str, int]] = []
    start = 0
    for name, size in parts:
        if start >= offset:
            break
        if start + size <= offset:
            kept.append((name, size))
        else:  # the part that straddles offset: keep its head
            kept += await _copy_range(bucket, path, bucket._part_key(key, name), offset - start)
            break
        start += size
    return kept


async def _adopt(
    bucket: GCSBucket, path: str, key: str, size: int, offset: int
) -> list[tuple[str, int]]:
    """A complete object continued at ``offset``: its head becomes the first part(s)."""
    if offset < size:
        return await _copy_range(bucket, path, key, offset)
    bucket_name = bucket.params.bucket
    name = uuid.uuid4().hex
    part = bucket._part_key(key, name)
    await bucket._call(path, lambda s: s.copy(bucket_name, key, bucket_name, new_name=part))
    return [(name, size)]


async def _copy_range(
    bucket: GCSBucket, path: str, source: str, length: int
) -> list[tuple[str, int]]:
    """The first ``length`` bytes of ``source`` as new parts of at most ``chunk_size``."""
    parts: list[tuple[str, int]] = []
    buffer = bytearray()
    key = bucket._key(path)
    if length <= 0:
        return parts

    async def put(data: bytes) -> None:
        name = uuid.uuid4().hex
        await bucket._upload(path, bucket._part_key(key, name), data)
        parts.append((name, len(data)))

    async for chunk in bucket._stream(path, source, 0, length):
        buffer += chunk
        while len(buffer) >= bucket.chunk_size:
            await put(bytes(buffer[: bucket.chunk_size]))
            del buffer[: bucket.chunk_size]
    if buffer:
        await put(bytes(buffer))
    return parts


class PartListWriter(PartWriter[GCSBucket]):
    """Uploads parts as data arrives; ``close`` saves the part list, ``commit`` composes."""

    def __init__(
        self,
        driver: GCSBucket,
        path: str,
        key: str,
        parts: list[tuple[str, int]],
        offset: int,
        *,
        dirty: bool,
    ) -> None:
        super().__init__(driver, path, offset, driver.chunk_size, dirty=dirty)
        self._key = key
        self._parts = parts

    async def _put_part(self, data: bytes) -> None:
        name = uuid.uuid4().hex
        await self._driver._upload(self._path, self._driver._part_key(self._key, name), data)
        self._parts.append((name, len(data)))

    async def _save(self) -> None:
        await self._driver._save_parts(self._path, self._key, self._parts)

    async def commit(self) -> None:
        if self._closed:
            raise StorageError(f"commit of a closed writer ({self._path})", self._driver.name)
        self._closed = True
        driver = self._driver
        try:
            await self._flush()
            if self._parts:
                sources = [driver._part_key(self._key, name) for name, _ in self._parts]
                await driver._compose(self._path, self._key, sources)
            else:
                await driver._upload(self._path, self._key, b"")
        finally:
            await self._drop_pending()
        with contextlib.suppress(StorageError):
            await driver._delete_prefix(self._path, self._key + PARTS_SUFFIX)
