"""The Azure driver: the StorageDriver contract on top of :class:`AzureContainer`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobProperties
from azure.storage.blob.aio import BlobPrefix

from dockyard.storage.drivers.azure._container import AzureContainer
from dockyard.storage.drivers.azure._params import AzureParameters
from dockyard.storage.drivers.azure._writer import AppendWriter, BlockWriter, open_writer
from dockyard.storage.drivers.base import FileInfo, InvalidOffset, PathNotFound, StorageError
from dockyard.storage.drivers.objectstore import PrefixTree

__all__ = ["AzureDriver"]

READ_CHUNK = 1 << 20
REDIRECT_EXPIRY = timedelta(minutes=20)
COPY_SOURCE_EXPIRY = timedelta(hours=1)


class AzureDriver(AzureContainer, PrefixTree):
    """Blobs in one container; see the package docstring."""

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any], *, redirect: bool = True) -> AzureDriver:
        """``storage.azure``; ``redirect`` is ``not storage.redirect.disable``."""
        return cls(AzureParameters(params), redirect=redirect)

    async def writer(self, path: str, offset: int = 0) -> BlockWriter | AppendWriter:
        return await open_writer(self, path, offset)

    async def get_content(self, path: str) -> bytes:
        blob = await self._blob(path)
        for attempt in range(5):
            with self._errors(path):
                try:
                    downloader = await blob.download_blob()
                    return bytes(await downloader.readall())
                except HttpResponseError as exc:
                    # Replaced between two ranges of one read: read the new version.
                    if exc.status_code != 412 or attempt == 4:
                        raise
        raise AssertionError("unreachable")

    async def put_content(self, path: str, data: bytes) -> None:
        blob = await self._blob(path)
        with self._errors(path):
            try:
                await blob.upload_blob(data, overwrite=True)
            except HttpResponseError as exc:
                # An append blob from an old distribution cannot be overwritten by
                # Put Blob: replace it (as distribution does).
                if getattr(exc, "error_code", None) != "InvalidBlobType":
                    raise
                await blob.delete_blob()
                await blob.upload_blob(data, overwrite=True)

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        blob = await self._blob(path)
        with self._errors(path):
            try:
                downloader = await blob.download_blob(offset=offset or None)
            except HttpResponseError as exc:
                if exc.status_code != 416:
                    raise
                size = (await blob.get_blob_properties()).size
                if offset != size:
                    raise InvalidOffset(path, offset, self.name) from None
                return
        chunks = downloader.chunks()
        while True:
            with self._errors(path):
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    return
            view = memoryview(chunk)
            for start in range(0, len(view), READ_CHUNK):
                yield bytes(view[start : start + READ_CHUNK])


    async def stat(self, path: str) -> FileInfo:
        container = await self._container()
        name = self._name(path)
        if name:
            with self._errors(path):
                try:
                    props = await container.get_blob_client(name).get_blob_properties()
                except ResourceNotFoundError:
                    pass
                else:
                    return FileInfo(path, int(props.size), props.last_modified.timestamp(), False)
        with self._errors(path):
            async for _ in container.list_blobs(
                name_starts_with=self._prefix(path), results_per_page=1
            ):
                return FileInfo(path, 0, 0.0, True)
        raise PathNotFound(path, self.name)

    async def _children(self, path: str) -> AsyncIterator[FileInfo]:
        container = await self._container()
        with self._errors(path):
            async for item in container.walk_blobs(
                name_starts_with=self._prefix(path), delimiter="/"
            ):
                child = self._path(item.name)
                if isinstance(item, BlobPrefix):
                    yield FileInfo(child, 0, 0.0, True)
                elif isinstance(item, BlobProperties) and not item.name.endswith("/"):
                    mtime = item.last_modified.timestamp() if item.last_modified else 0.0
                    yield FileInfo(child, int(item.size or 0), mtime, False)

    async def move(self, source: str, dest: str) -> None:
        container = await self._container()
        src = container.get_blob_client(self._name(source))
        dst = container.get_blob_client(self._name(dest))
        url = f"{src.url}?{self._sas(src.blob_name, COPY_SOURCE_EXPIRY)}"
        with self._errors(source):
            result = await dst.start_copy_from_url(url)
        status = result.get("copy_status")
        delay = self.params.copy_poll_delay
        tries = 0
        while status == "pending":
            tries += 1
            if tries > self.params.copy_poll_max_retry:
                with contextlib.suppress(Exception):
                    await dst.abort_copy(str(result["copy_id"]))
                raise StorageError(f"copy of {source} to {dest} still pending; aborted", self.name)
            await asyncio.sleep(delay * tries)
            with self._errors(dest):
                props = await dst.get_blob_properties()
            status = props.copy.status
        if status != "success":
            raise StorageError(f"copy of {source} to {dest} ended {status!r}", self.name)
        with self._errors(source):
            await src.delete_blob()

    async def redirect_url(self, path: str, method: str) -> str | None:
        if not self.redirect or method not in ("GET", "HEAD"):
            return None
        blob = await self._blob(path)
        return f"{blob.url}?{self._sas(blob.blob_name, REDIRECT_EXPIRY)}"

    def local_path(self, path: str) -> str | None:
        return None
