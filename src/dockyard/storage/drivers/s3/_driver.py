"""The S3 driver: the StorageDriver contract on top of :class:`S3Bucket`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from dockyard.storage.drivers.base import FileInfo, InvalidOffset, PathNotFound, StorageError
from dockyard.storage.drivers.s3._bucket import (
    Part,
    S3Bucket,
    error_code,
    gather_both,
    timestamp,
)
from dockyard.storage.drivers.s3._params import S3Parameters
from dockyard.storage.drivers.s3._writer import S3Writer, open_writer

__all__ = ["READ_CHUNK", "S3Driver"]

log = logging.getLogger("dockyard.storage.s3")

REDIRECT_EXPIRY = 20 * 60
"""Seconds a pre-signed URL stays valid (as distribution's URLFor)."""
REDIRECT_REUSE = 5 * 60
"""Seconds a signed URL is handed out again, so that every client gets one valid for
at least 15 minutes: signing costs more CPU than the rest of a redirected GET."""
_SIGNED_URLS = 4096
READ_CHUNK = 1 << 20


class S3Driver(S3Bucket):
    """Bytes at keys of one bucket. ``redirect`` (default on) signs GET/HEAD URLs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (method, path) -> (URL, when signed), the most recently signed last.
        self._signed: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any], *, redirect: bool = True) -> S3Driver:
        return cls(S3Parameters.parse(params), redirect=redirect)

    async def writer(self, path: str, offset: int = 0) -> S3Writer:
        return await open_writer(self, path, offset)


    async def get_content(self, path: str) -> bytes:
        s3 = await self.s3()
        with self._errors(path):
            resp = await s3.get_object(Bucket=self.bucket, Key=self.key(path))
            async with resp["Body"] as body:
                data: bytes = await body.read()
        return data

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        s3 = await self.s3()
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(path)}
        if offset:
            args["Range"] = f"bytes={offset}-"
        try:
            with self._errors(path):
                resp = await s3.get_object(**args)
        except StorageError as exc:
            if error_code(exc.__cause__ or exc) != "InvalidRange":
                raise
            head = await self._head(path)
            if head is None:
                raise PathNotFound(path, self.name) from None
            if offset > head[0]:
                raise InvalidOffset(path, offset, self.name) from None
            return  # offset == size: nothing to read
        body = resp["Body"]
        try:
            while True:
                with self._errors(path):
                    chunk = await _read_some(body, READ_CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    async def stat(self, path: str) -> FileInfo:
        if path == "/":
            return FileInfo(path, 0, 0.0, True)
        head = await self._head(path)
        if head is not None:
            return FileInfo(path, head[0], head[1], False)
        # Not an object: a directory, or a file still being written (both asked at once).
        s3 = await self.s3()

        async def first_below() -> dict[str, Any]:
            with self._errors(path):
                resp: dict[str, Any] = await s3.list_objects_v2(
                    Bucket=self.bucket, Prefix=self._dir_prefix(path), MaxKeys=1
                )
            return resp

        resp, upload_ids = await gather_both(first_below(), self._key_uploads(path))
        contents = resp.get("Contents", [])
        if contents:
            return FileInfo(path, 0, timestamp(contents[0].get("LastModified")), True)
        if upload_ids:
            parts = await self._parts(path, upload_ids[-1])
            return FileInfo(path, sum(p.size for p in parts), time.time(), False)
        raise PathNotFound(path, self.name)

    async def list(self, path: str) -> list[str]:
        s3 = await self.s3()
        prefix = self._dir_prefix(path)
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket, "Prefix": prefix, "Delimiter": "/", "MaxKeys": self._list_max,
        }
        files: list[str] = []
        directories: list[str] = []
        while True:
            with self._errors(path):
                resp = await s3.list_objects_v2(**kwargs)
            files.extend(
                self._path(o["Key"]) for o in resp.get("Contents", [])
                if not o["Key"].endswith("/")
            )
            directories.extend(
                self._path(p["Prefix"].rstrip("/")) for p in resp.get("CommonPrefixes", [])
            )
            if not resp.get("IsTruncated"):
                break
            kwargs["ContinuationToken"] = resp["NextContinuationToken"]
        if path != "/" and not files and not directories:
            raise PathNotFound(path, self.name)
        return files + directories

    async def move(self, source: str, dest: str) -> None:
        head = await self._head(source)
        if head is None:
            raise PathNotFound(source, self.name)
        size = head[0]
        if size <= self.params.multipart_copy_threshold_size:
            s3 = await self.s3()
            with self._errors(source):
                await s3.copy_object(
                    Bucket=self.bucket,
                    Key=self.key(dest),
                    CopySource={"Bucket": self.bucket, "Key": self.key(source)},
                    **self._write_args(),
                )
        else:
            await self._multipart_copy(source, dest, size)
        await self._delete_object(source)

    async def _multipart_copy(self, source: str, dest: str, size: int) -> None:
        chunk = self.params.multipart_copy_chunk_size
        upload = await self._create_upload(dest)
        limit = self._copy_limit or asyncio.Semaphore(1)

        async def copy(number: int) -> Part:
            first = (number - 1) * chunk
            async with limit:
                return await self._copy_part(
                    source, dest, upload, number, first, min(first + chunk, size) - 1
                )

        try:
            count = (size + chunk - 1) // chunk
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(copy(n)) for n in range(1, count + 1)]
            await self._complete(dest, upload, [t.result() for t in tasks])
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await self._abort(dest, upload.upload_id)
            if isinstance(exc, BaseExceptionGroup):
                first_error = exc.exceptions[0]
                if isinstance(first_error, StorageError):
                    raise first_error from exc
            raise

    async def redirect_url(self, path: str, method: str) -> str | None:
        if not self.redirect or method not in ("GET", "HEAD"):
            return None
        signed = self._signed
        now = time.monotonic()
        found = signed.get((method, path))
        if found is not None and now - found[1] < REDIRECT_REUSE:
            return found[0]
        url = await self._sign(path, method)
        signed[(method, path)] = (url, now)
        signed.move_to_end((method, path))
        while len(signed) > _SIGNED_URLS:
            signed.popitem(last=False)
        return url

    async def _sign(self, path: str, method: str) -> str:
        s3 = await self.s3()
        with self._errors(path):
            url: str = await s3.generate_presigned_url(
                "get_object" if method == "GET" else "head_object",
                Params={"Bucket": self.bucket, "Key": self.key(path)},
                ExpiresIn=REDIRECT_EXPIRY,
            )
        return url

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        """One flat, paginated listing; directories are yielded before their contents.

        Siblings come in key order, in which ``a-b`` sorts before ``a/`` (the
        filesystem driver sorts ``a`` first).
        """
        s3 = await self.s3()
        prefix = self._dir_prefix(path)
        base = path.rstrip("/")
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket, "Prefix": prefix, "MaxKeys": self._list_max,
        }
        open_dirs: list[str] = []  # the directory components of the previous key
        found = False
        while True:
            with self._errors(path):
                resp = await s3.list_objects_v2(**kwargs)
            for obj in resp.get("Contents", []):
                if obj["Key"].endswith("/"):
                    continue  # a "directory marker" some tools create
                found = True
                parts = obj["Key"][len(prefix):].split("/")
                mtime = timestamp(obj.get("LastModified"))
                dirs = parts[:-1]
                common = 0
                while (
                    common < len(dirs) and common < len(open_dirs)
                    and dirs[common] == open_dirs[common]
                ):
                    common += 1
                for depth in range(common, len(dirs)):
                    yield FileInfo(f"{base}/{'/'.join(dirs[: depth + 1])}", 0, mtime, True)
                open_dirs = dirs
                yield FileInfo(f"{base}/{'/'.join(parts)}", int(obj["Size"]), mtime, False,
                               str(obj.get("ETag", "")).strip('"') or None)
            if not resp.get("IsTruncated"):
                break
            kwargs["ContinuationToken"] = resp["NextContinuationToken"]
        if not found and path != "/":
            raise PathNotFound(path, self.name)

    def local_path(self, path: str) -> str | None:
        return None

    # -- maintenance --------------------------------------------------------------------

    async def abort_stale_multipart_uploads(
        self, older_than: datetime, keep: Callable[[str], Awaitable[bool]] | None = None
    ) -> int:
        """Abort every multipart upload below the root initiated before ``older_than``.

        Upload purging deletes ``_uploads/<uuid>`` directories (which aborts their
        uploads too, see :meth:`delete`); this catches uploads whose directory is
        gone, such as those left by a crash or by another registry.
        """
        if older_than.tzinfo is None:
            older_than = older_than.replace(tzinfo=UTC)
        count = 0
        root = self._dir_prefix("/")
        async for upload in self._uploads(root, "/"):
            initiated = upload.get("Initiated")
            if isinstance(initiated, datetime) and initiated < older_than:
                if keep is not None and await keep(self._path(upload["Key"])):
                    continue
                await self._abort("/", upload["UploadId"], upload["Key"])
                log.info("aborted multipart upload of %s initiated %s",
                         self._path(upload["Key"]), initiated.isoformat())
                count += 1
        return count


async def _read_some(body: Any, size: int) -> bytes:
    """Up to ``size`` bytes, gathering small network reads into bigger chunks."""
    chunks: list[bytes] = []
    got = 0
    while got < size:
        chunk: bytes = await body.read(size - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
        if got >= 256 << 10:
            break
    return b"".join(chunks)
