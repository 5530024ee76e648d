"""The bucket below the S3 driver: client, keys, single requests and their errors.

Every request runs inside ``with self._errors(path):``, which maps botocore and
aiohttp failures to :class:`PathNotFound` (NoSuchKey, 404) or :class:`StorageError`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import aiobotocore.session
import aiohttp
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from dockyard.storage.drivers.base import PathNotFound, StorageError
from dockyard.storage.drivers.s3._params import S3Parameters

__all__ = ["LIST_MAX", "Part", "S3Bucket", "Upload", "error_code", "gather_both", "timestamp"]

A = TypeVar("A")
B = TypeVar("B")

LIST_MAX = 1000
"""Keys per ListObjectsV2 page and per DeleteObjects batch."""
CONTENT_TYPE = "application/octet-stream"
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchUpload"})


class _Errors:
    """``with self._errors(path):`` maps botocore/aiohttp failures to driver errors."""

    def __init__(self, driver: str, path: str) -> None:
        self.driver = driver
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or isinstance(exc, StorageError | asyncio.CancelledError):
            return
        mapped = map_error(exc, self.path, self.driver)
        if mapped is not None:
            raise mapped from exc


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def map_error(exc: BaseException, path: str, driver: str = "s3") -> StorageError | None:
    """The driver error for a lower-layer exception (None: not ours to map)."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _NOT_FOUND_CODES or (status == 404 and code != "NoSuchBucket"):
            return PathNotFound(path, driver)
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        return StorageError(f"{code or status}: {message} ({path})", driver)
    if isinstance(exc, BotoCoreError | OSError | asyncio.TimeoutError):
        return StorageError(f"{type(exc).__name__}: {exc} ({path})", driver)
    if isinstance(exc, aiohttp.ClientError):
        return StorageError(f"{type(exc).__name__}: {exc} ({path})", driver)
    return None


@dataclass(slots=True)
class Part:
    """One part of a multipart upload."""


    number: int
    etag: str
    size: int


@dataclass(slots=True)
class Upload:
    """An in-progress multipart upload and the parts it holds so far."""


    upload_id: str
    parts: list[Part]

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)


class S3Bucket:
    """One bucket under a root directory: its client, keys, single requests and ``delete``.

    The driver and its writer are built on it.
    """

    name = "s3"

    def __init__(
        self, params: S3Parameters, *, redirect: bool = True, list_max: int = LIST_MAX
    ) -> None:
        self.params = params
        self.redirect = redirect
        self.bucket = params.bucket
        self._base = params.root_directory.strip("/")
        self._list_max = list_max
        self._session = aiobotocore.session.get_session()
        self._client: Any = None
        self._client_cm: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._client_lock: asyncio.Lock | None = None
        self._copy_limit: asyncio.Semaphore | None = None


    def _config(self) -> BotoConfig:
        p = self.params
        s3: dict[str, Any] = {"addressing_style": "path" if p.force_path_style else "auto"}
        if p.use_dual_stack:
            s3["use_dualstack_endpoint"] = True
        if p.accelerate:
            s3["use_accelerate_endpoint"] = True
        return BotoConfig(
            signature_version="s3v4",
            s3=s3,
            user_agent_extra=p.user_agent or None,
            connect_timeout=10,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=max(64, min(p.multipart_copy_max_concurrency, 256)),
            # S3-compatible servers rarely know the newer default checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )

    async def s3(self) -> Any:
        """The aiobotocore client of the running event loop (made on first use)."""
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client_loop is loop:
            return self._client
        if self._client_lock is None or self._client_loop is not loop:
            self._client_lock = asyncio.Lock()
            self._client_loop = loop
            self._client = None
            self._copy_limit = asyncio.Semaphore(self.params.multipart_copy_max_concurrency)
        async with self._client_lock:
            if self._client is None:
                p = self.params
                kwargs: dict[str, Any] = {
                    "region_name": p.region or "us-east-1",
                    "endpoint_url": p.endpoint_url,
                    "use_ssl": p.secure,
                    "verify": not p.skip_verify,
                    "config": self._config(),
                }
                if p.access_key and p.secret_key:
                    kwargs["aws_access_key_id"] = p.access_key
                    kwargs["aws_secret_access_key"] = p.secret_key
                    if p.session_token:
                        kwargs["aws_session_token"] = p.session_token
                with self._errors("/"):
                    cm = self._session.create_client("s3", **kwargs)
                    client = await cm.__aenter__()
                self._client_cm, self._client = cm, client
        return self._client

    async def aclose(self) -> None:
        """Close the client's connections (it is made again if used later)."""
        cm, self._client_cm, self._client = self._client_cm, None, None
        if cm is not None:
            with contextlib.suppress(Exception):
                await cm.__aexit__(None, None, None)

    # -- keys -----------------------------------------------------------------------

    def key(self, path: str) -> str:
        """The object key of ``path`` (no leading slash, as distribution)."""
        return f"{self._base}{path}" if self._base else path.lstrip("/")

    def _dir_prefix(self, path: str) -> str:
        if path == "/":
            return f"{self._base}/" if self._base else ""
        return self.key(path) + "/"

    def _path(self, key: str) -> str:
        return key[len(self._base):] if self._base else "/" + key

    def _errors(self, path: str) -> _Errors:
        return _Errors(self.name, path)

    def _write_args(self) -> dict[str, Any]:
        """ContentType, ACL, encryption and storage class, as distribution sets them."""
        p = self.params
        args: dict[str, Any] = {"ContentType": CONTENT_TYPE}
        if p.object_acl:
            args["ACL"] = p.object_acl
        if p.encrypt:
            args["ServerSideEncryption"] = "aws:kms" if p.key_id else "AES256"
            if p.key_id:
                args["SSEKMSKeyId"] = p.key_id
        if p.storage_class != "NONE":
            args["StorageClass"] = p.storage_class
        return args

    # -- small operations -----------------------------------------------------------

    async def _head(self, path: str) -> tuple[int, float] | None:
        """Size and mtime of the object at ``path``, or None."""
        if path == "/":
            return None
        s3 = await self.s3()
        try:
            with self._errors(path):
                resp = await s3.head_object(Bucket=self.bucket, Key=self.key(path))
        except PathNotFound:
            return None
        return int(resp["ContentLength"]), timestamp(resp.get("LastModified"))

    async def _delete_object(self, path: str) -> None:
        s3 = await self.s3()
        with self._errors(path):
            await s3.delete_object(Bucket=self.bucket, Key=self.key(path))

    async def _uploads(self, prefix: str, path: str) -> AsyncIterator[dict[str, Any]]:
        """In-progress multipart uploads whose keys start with ``prefix``, oldest first
        for each key."""
        s3 = await self.s3()
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        while True:
            with self._errors(path):
                resp = await s3.list_multipart_uploads(**kwargs)
            for upload in resp.get("Uploads", []):
                yield upload
            if not resp.get("IsTruncated"):
                return
            kwargs["KeyMarker"] = resp.get("NextKeyMarker", "")
            kwargs["UploadIdMarker"] = resp.get("NextUploadIdMarker", "")

    async def _key_uploads(self, path: str) -> list[str]:
        """Upload ids of the in-progress MPUs on exactly the key of ``path``."""
        key = self.key(path)
        return [u["UploadId"] async for u in self._uploads(key, path) if u["Key"] == key]

    async def _parts(self, path: str, upload_id: str) -> list[Part]:
        s3 = await self.s3()
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket, "Key": self.key(path), "UploadId": upload_id,
        }
        parts: list[Part] = []
        while True:
            with self._errors(path):
                resp = await s3.list_parts(**kwargs)
            parts.extend(
                Part(int(p["PartNumber"]), str(p["ETag"]), int(p["Size"]))
                for p in resp.get("Parts", [])
            )
            if not resp.get("IsTruncated"):
                break
            kwargs["PartNumberMarker"] = resp["NextPartNumberMarker"]
        parts.sort(key=lambda p: p.number)
        return parts

    async def _abort(self, path: str, upload_id: str, key: str | None = None) -> None:
        s3 = await self.s3()
        with contextlib.suppress(PathNotFound), self._errors(path):
            await s3.abort_multipart_upload(
                Bucket=self.bucket, Key=key or self.key(path), UploadId=upload_id
            )

    async def _create_upload(self, path: str) -> Upload:
        s3 = await self.s3()
        with self._errors(path):
            resp = await s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key(path), **self._write_args()
            )
        return Upload(str(resp["UploadId"]), [])

    async def _complete(self, path: str, upload: Upload, parts: list[Part]) -> None:
        s3 = await self.s3()
        with self._errors(path):
            await s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key(path),
                UploadId=upload.upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]
                },
            )

    async def _copy_part(
        self, source: str, dest: str, upload: Upload, number: int, first: int, last: int
    ) -> Part:
        """Copy bytes ``first..last`` of the object ``source`` as part ``number``."""
        s3 = await self.s3()
        with self._errors(source):
            resp = await s3.upload_part_copy(
                Bucket=self.bucket,
                Key=self.key(dest),
                UploadId=upload.upload_id,
                PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": self.key(source)},
                CopySourceRange=f"bytes={first}-{last}",
            )
        return Part(number, str(resp["CopyPartResult"]["ETag"]), last - first + 1)

    async def _read_range(self, path: str, first: int, last: int) -> bytes:
        s3 = await self.s3()
        with self._errors(path):
            resp = await s3.get_object(
                Bucket=self.bucket, Key=self.key(path), Range=f"bytes={first}-{last}"
            )
            async with resp["Body"] as body:
                data: bytes = await body.read()
        if len(data) != last - first + 1:
            raise StorageError(f"short read of {path}: {len(data)} bytes", self.name)
        return data



    async def put_content(self, path: str, data: bytes) -> None:
        s3 = await self.s3()
        with self._errors(path):
            await s3.put_object(
                Bucket=self.bucket, Key=self.key(path), Body=data, **self._write_args()
            )

    async def delete(self, path: str) -> None:
        head = await self._head(path)
        if head is not None:
            await self._delete_object(path)
            return
        # A directory: its objects, and the files still being written below it.
        found, uploads = await gather_both(self._delete_tree(path), self._uploads_below(path))
        for key, upload_id in uploads:
            await self._abort(path, upload_id, key)
        if not found and not uploads:
            raise PathNotFound(path, self.name)

    async def _delete_tree(self, path: str) -> bool:
        """Delete every object below ``path``, a page at a time; False if there were none."""
        s3 = await self.s3()
        found = False
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket, "Prefix": self._dir_prefix(path), "MaxKeys": self._list_max,
        }
        while True:
            with self._errors(path):
                resp = await s3.list_objects_v2(**kwargs)
            keys = [o["Key"] for o in resp.get("Contents", [])]
            if keys:
                found = True
                await self._delete_keys(path, keys)
            if not resp.get("IsTruncated"):
                return found
            kwargs["ContinuationToken"] = resp["NextContinuationToken"]

    async def _uploads_below(self, path: str) -> builtins.list[tuple[str, str]]:
        """(key, upload id) of the in-progress MPUs on ``path`` or below it."""
        key, prefix = self.key(path), self._dir_prefix(path)
        return [
            (u["Key"], u["UploadId"]) async for u in self._uploads(key, path)
            if u["Key"] == key or u["Key"].startswith(prefix)
        ]

    async def _delete_keys(self, path: str, keys: builtins.list[str]) -> None:
        s3 = await self.s3()
        for start in range(0, len(keys), self._list_max):
            batch = keys[start : start + self._list_max]
            with self._errors(path):
                resp = await s3.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            errors = resp.get("Errors", [])
            if errors:
                first = errors[0]
                raise StorageError(
                    f"{len(errors)} keys not deleted, e.g. {first.get('Key')}: "
                    f"{first.get('Code')} {first.get('Message')}",
                    self.name,
                )


async def gather_both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Both results, run concurrently; the first failure is raised after both finished."""
    results = await asyncio.gather(first, second, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results[0], results[1]  # type: ignore[return-value]


def timestamp(value: Any) -> float:
    """The seconds of a response's datetime (now if it has none)."""
    return value.timestamp() if isinstance(value, datetime) else time.time()
