"""The Azure writers, and how a blob is found again to be continued.

:func:`open_writer` reads the committed block list and cuts it back when asked to
continue below the blob's size; :class:`BlockWriter` stages blocks through the object
stores' :class:`PartWriter` and commits the block list; :class:`AppendWriter` continues
an append blob that distribution began. The package docstring tells why.
"""

from __future__ import annotations

import base64
import contextlib
import uuid

from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobBlock, ContentSettings
from azure.storage.blob.aio import BlobClient

from dockyard.storage.drivers.azure._container import NOT_FOUND_CODES, AzureContainer
from dockyard.storage.drivers.base import InvalidOffset, PathNotFound, StorageError
from dockyard.storage.drivers.objectstore import PartWriter

__all__ = ["AppendWriter", "BlockWriter", "open_writer"]

APPEND_SIZE = 4 << 20  # the most one Append Block takes
MAX_BLOCKS = 50_000


async def open_writer(
    container: AzureContainer, path: str, offset: int
) -> BlockWriter | AppendWriter:
    """The writer of ``path`` continuing at ``offset`` (``writer(path, offset)``)."""
    blob = await container._blob(path)
    blocks: list[tuple[str, int]] = []
    changed = True  # writer(path, 0) replaces the blob even if nothing is written
    if offset:
        with container._errors(path):
            try:
                blocks, changed = await _blocks_until(container, blob, path, offset)
            except _IsAppendBlob as found:
                # An upload begun by distribution (which writes append blobs) and
                # continued here: append to it as distribution would.
                if found.size != offset:
                    raise StorageError(
                        f"{path} is an append blob of {found.size} bytes: it cannot be "
                        f"cut back to {offset}", container.name,
                    ) from None
                return AppendWriter(container, blob, path, offset)
    writer = BlockWriter(container, blob, path, blocks, offset, dirty=changed)
    if len(blocks) >= container.COALESCE_AFTER and blocks[-1][1] < container.block_size:
        await writer.reopen_last_block()
    return writer


async def _blocks_until(
    container: AzureContainer, blob: BlobClient, path: str, offset: int
) -> tuple[list[tuple[str, int]], bool]:
    """The blocks holding bytes [0, offset), and whether that differs from the blob.

    The common case, a blob of our blocks that ends at ``offset``, costs one
    Get Block List and changes nothing.
    """
    try:
        committed, _ = await blob.get_block_list("committed")
    except HttpResponseError as exc:
        if getattr(exc, "error_code", None) in NOT_FOUND_CODES or exc.status_code == 404:
            raise
        committed = []  # an append or page blob has no block list
    blocks = [(b.id, int(b.size)) for b in committed]
    total = sum(size for _, size in blocks)
    if not blocks or any(len(block_id) != _BLOCK_ID_LENGTH for block_id, _ in blocks):
        # Written by Put Blob (put_content), as an append blob or with foreign
        # block ids: restage its head as blocks of ours (rare; bounded memory).
        props = await blob.get_blob_properties()
        total = int(props.size)
        if total < offset:
            raise InvalidOffset(path, offset, container.name)
        if str(props.blob_type).lower().endswith("appendblob"):
            raise _IsAppendBlob(total)
        return await _restage(container, blob, 0, offset), True
    if total < offset:
        raise InvalidOffset(path, offset, container.name)
    if total == offset:
        return blocks, False
    kept: list[tuple[str, int]] = []
    start = 0
    for block_id, size in blocks:
        if start >= offset:
            break
        if start + size <= offset:
            kept.append((block_id, size))
        else:  # the block that straddles offset: keep its head
            kept.extend(await _restage(container, blob, start, offset))
            break
        start += size
    return kept, True


async def _restage(
    container: AzureContainer, blob: BlobClient, start: int, end: int
) -> list[tuple[str, int]]:
    """Stage bytes [start, end) of the committed blob as new blocks."""
    out = []
    pos = start
    while pos < end:
        length = min(container.block_size, end - pos)
        data = await (await blob.download_blob(offset=pos, length=length)).readall()
        block_id = _block_id()
        await blob.stage_block(block_id, data, length=len(data))
        out.append((block_id, len(data)))
        pos += len(data)
    return out


_BLOCK_ID_LENGTH = len(base64.b64encode(uuid.uuid4().hex.encode()).decode())


def _block_id() -> str:
    """A unique block id; every id dockyard writes has the same length, as Azure wants."""
    return base64.b64encode(uuid.uuid4().hex.encode()).decode()


class _IsAppendBlob(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class AppendWriter:
    """Continues an append blob (an upload distribution began): Append Block, 4 MiB each.

    Every append names the offset it expects (``appendpos``), so a retried append that
    had in fact succeeded is recognised instead of writing its bytes twice.
    """

    def __init__(self, driver: AzureContainer, blob: BlobClient, path: str, offset: int) -> None:
        self._driver = driver
        self._blob = blob
        self._path = path
        self._size = offset
        self._stored = offset
        self._buffer = bytearray()
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    async def _append(self, data: bytes) -> None:
        with self._driver._errors(self._path):
            try:
                await self._blob.append_block(
                    data, length=len(data), appendpos_condition=self._stored
                )
            except HttpResponseError as exc:
                if exc.status_code != 412:
                    raise
                size = int((await self._blob.get_blob_properties()).size)
                if size != self._stored + len(data):
                    raise
        self._stored += len(data)

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise StorageError(f"write to a closed writer ({self._path})", self._driver.name)
        self._buffer += data
        self._size += len(data)
        while len(self._buffer) >= APPEND_SIZE:
            piece = bytes(self._buffer[:APPEND_SIZE])
            del self._buffer[:APPEND_SIZE]
            await self._append(piece)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._buffer:
            piece = bytes(self._buffer)
            self._buffer.clear()
            await self._append(piece)

    async def commit(self) -> None:
        await self.close()

    async def cancel(self) -> None:
        self._closed = True
        with contextlib.suppress(PathNotFound):
            await self._driver.delete(self._path)


class BlockWriter(PartWriter[AzureContainer]):
    """Stages blocks as data arrives; ``close``/``commit`` commit the block list."""

    def __init__(
        self,
        driver: AzureContainer,
        blob: BlobClient,
        path: str,
        blocks: list[tuple[str, int]],
        offset: int,
        *,
        dirty: bool,
    ) -> None:
        super().__init__(driver, path, offset, driver.block_size, dirty=dirty)
        self._blob = blob
        self._blocks = blocks

    async def reopen_last_block(self) -> None:
        """Take the short last block back into the buffer (see COALESCE_AFTER)."""
        _, size = self._blocks[-1]
        with self._driver._errors(self._path):
            downloader = await self._blob.download_blob(offset=self._size - size, length=size)
            data = await downloader.readall()
        self._blocks.pop()
        self._buffer[:0] = data
        self._dirty = True

    async def _put_part(self, data: bytes) -> None:
        block_id = _block_id()
        with self._driver._errors(self._path):
            await self._blob.stage_block(block_id, data, length=len(data))
        self._blocks.append((block_id, len(data)))

    async def _save(self) -> None:
        if len(self._blocks) > MAX_BLOCKS:
            raise StorageError(
                f"{self._path}: more than {MAX_BLOCKS} blocks (upload in smaller chunks "
                "is not possible past this size)",
                self._driver.name,
            )
        with self._driver._errors(self._path):
            await self._blob.commit_block_list(
                [BlobBlock(block_id) for block_id, _ in self._blocks],
                content_settings=ContentSettings(content_type="application/octet-stream"),
            )

    async def commit(self) -> None:
        await self.close()
