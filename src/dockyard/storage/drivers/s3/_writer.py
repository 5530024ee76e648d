"""The S3 writer: a file being written is one multipart upload, continued across requests.

:func:`open_writer` finds the file's state again (its multipart upload and parts, or
the committed object) and cuts it back when asked to continue below its size;
:class:`S3Writer` appends parts through the object stores' :class:`PartWriter`. The
package docstring describes the states and why a small last part forces a restart.
"""

from __future__ import annotations

from dockyard.storage.drivers.base import InvalidOffset, PathNotFound, StorageError
from dockyard.storage.drivers.objectstore import PartWriter
from dockyard.storage.drivers.s3._bucket import Part, S3Bucket, Upload, gather_both
from dockyard.storage.drivers.s3._params import MIN_CHUNK_SIZE

__all__ = ["S3Writer", "open_writer"]


async def open_writer(bucket: S3Bucket, path: str, offset: int) -> S3Writer:
    """The writer of ``path`` continuing at ``offset`` (``writer(path, offset)``)."""
    if offset == 0:
        # Start afresh: drop whatever was there, committed or in progress.
        upload_ids, _ = await gather_both(bucket._key_uploads(path), bucket._delete_object(path))
        for upload_id in upload_ids:
            await bucket._abort(path, upload_id)
        return S3Writer(bucket, path, size=0, upload=None, base=None, fresh=True)
    upload, base = await _state(bucket, path)
    size = upload.size if upload is not None and upload.parts else (base or 0)
    if upload is None and base is None:
        raise PathNotFound(path, bucket.name)
    if offset > size:
        raise InvalidOffset(path, offset, bucket.name)
    if offset < size:
        upload, base = await _truncate(bucket, path, upload, base, offset)
    return S3Writer(bucket, path, size=offset, upload=upload, base=base)


async def _state(bucket: S3Bucket, path: str) -> tuple[Upload | None, int | None]:
    """The in-progress MPU of ``path`` (if any) and, when that has no parts, the size
    of the committed object (None: no object)."""
    upload_ids = await bucket._key_uploads(path)
    upload = None
    if upload_ids:
        # Listed oldest first: the newest is the file; any others are leftovers.
        *stale, current = upload_ids
        for upload_id in stale:
            await bucket._abort(path, upload_id)
        upload = Upload(current, await bucket._parts(path, current))
        if upload.parts:
            return upload, None
    head = await bucket._head(path)
    if head is not None and upload is not None:
        # A restart interrupted before the new MPU got the object's bytes.
        await bucket._abort(path, upload.upload_id)
        upload = None
    return upload, None if head is None else head[0]


async def _truncate(
    bucket: S3Bucket, path: str, upload: Upload | None, base: int | None, offset: int
) -> tuple[Upload | None, int | None]:
    """Cut the file at ``offset`` (< its size); returns the new (upload, base)."""
    if upload is not None and upload.parts:
        keep: list[Part] = []
        total = 0
        for part in upload.parts:
            if total >= offset:
                break
            keep.append(part)
            total += part.size
        await bucket._complete(path, upload, keep)  # all but the last are >= 5 MiB
        if total == offset:
            return None, offset
        base = total
    assert base is not None
    if offset < MIN_CHUNK_SIZE:
        data = await bucket._read_range(path, 0, offset - 1)
        await bucket.put_content(path, data)
        return None, offset
    new = await bucket._create_upload(path)
    new.parts.append(await bucket._copy_part(path, path, new, 1, 0, offset - 1))
    await bucket._delete_object(path)
    return new, None


class S3Writer(PartWriter[S3Bucket]):
    """Appends ``chunksize`` parts to one file's multipart upload.

    State: ``upload`` (the MPU and its parts, or None until the first part),
    ``base`` (size of a committed object the file consists of, when there is no
    MPU with parts), and ``stale_object`` (the object must go once the new MPU
    holds its bytes). A fresh writer is ``dirty``: closed without data, it leaves
    an empty file.
    """

    def __init__(
        self,
        bucket: S3Bucket,
        path: str,
        *,
        size: int,
        upload: Upload | None,
        base: int | None,
        fresh: bool = False,
    ) -> None:
        super().__init__(bucket, path, size, bucket.params.chunk_size, dirty=fresh)
        self._upload = upload
        self._base = base
        self._prepared = False
        self._stale_object = False

    async def _prepare_append(self) -> None:
        """Make the file appendable: every existing part >= 5 MiB, or none."""
        self._prepared = True
        d, path = self._driver, self._path
        upload = self._upload
        if upload is not None and upload.parts and upload.parts[-1].size < MIN_CHUNK_SIZE:
            # A small last part cannot be followed: make the file an object again.
            await d._complete(path, upload, upload.parts)
            self._upload, self._base = None, upload.size
        elif upload is not None and not upload.parts:
            return  # an empty MPU: parts go straight into it
        if self._base is None:
            return
        base, self._base = self._base, None
        if base >= MIN_CHUNK_SIZE:
            new = await d._create_upload(path)
            new.parts.append(await d._copy_part(path, path, new, 1, 0, base - 1))
            self._upload = new
            await d._delete_object(path)
        else:
            # Small: its bytes start the first part (bounded by 5 MiB < chunksize).
            if base:
                self._buffer[:0] = await d._read_range(path, 0, base - 1)
            self._stale_object = True

    async def write(self, data: bytes) -> None:
        if data and not self._prepared and not self._closed:
            await self._prepare_append()
        await super().write(data)

    async def _put_part(self, data: bytes) -> None:
        d, path = self._driver, self._path
        if self._upload is None:
            self._upload = await d._create_upload(path)
        upload = self._upload
        number = (upload.parts[-1].number if upload.parts else 0) + 1
        s3 = await d.s3()
        with d._errors(path):
            resp = await s3.upload_part(
                Bucket=d.bucket, Key=d.key(path), UploadId=upload.upload_id,
                PartNumber=number, Body=data,
            )
        upload.parts.append(Part(number, str(resp["ETag"]), len(data)))
        if self._stale_object:
            self._stale_object = False
            await d._delete_object(path)

    async def _save(self) -> None:
        # The MPU's parts are the file already; only a fresh file closed without
        # any data needs an object to exist.
        if self._upload is None and self._size == 0:
            await self._driver.put_content(self._path, b"")

    async def commit(self) -> None:
        if self._closed:
            raise StorageError(f"commit of a closed writer ({self._path})", self._driver.name)
        self._closed = True
        d, path = self._driver, self._path
        try:
            await self._settle()
            if self._upload is None and self._base is None:
                # Everything is in the buffer (a fresh file, or a small one read back).
                await d.put_content(path, bytes(self._buffer))
                return
            await self._flush()
            upload = self._upload
            if upload is None:
                return  # the committed object is the file already
            if upload.parts:
                await d._complete(path, upload, upload.parts)
            else:
                await d._abort(path, upload.upload_id)
                await d.put_content(path, b"")
        finally:
            self._buffer.clear()
            await self._drop_pending()

    async def cancel(self) -> None:
        self._closed = True
        self._buffer.clear()
        await self._drop_pending()
        d, path = self._driver, self._path
        for upload_id in await d._key_uploads(path):
            await d._abort(path, upload_id)
        await d._delete_object(path)
