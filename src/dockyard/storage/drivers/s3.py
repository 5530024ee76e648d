"""S3 driver (``storage.s3``): any S3-compatible object store, through aiobotocore.

Keys
    The same as distribution's s3-aws driver: path ``/a/b`` is key
    ``<rootdirectory>/a/b`` without a leading slash (``a/b`` when there is no
    root directory), so a bucket written by ``docker-registry`` is served
    unchanged and the other way round. Directories are key prefixes.

Writers: one multipart upload per file, kept across requests and instances
    A file being written is an in-progress multipart upload (MPU) on its key;
    its size is the sum of its parts. Parts are ``chunksize`` bytes, buffered in
    memory (never more than one part), except the last one uploaded by
    ``close``, which may be small. ``writer(path, offset)`` finds the MPU again
    (ListMultipartUploads + ListParts) and goes on; ``commit`` completes it.

    S3 wants every part but the last to be at least 5 MiB, so appending after a
    small last part starts over, as distribution does: complete the MPU (the
    object now holds the file), start a new one, and make the object its first
    part, server-side with UploadPartCopy when it is at least 5 MiB, else read
    back (under 5 MiB) into the part buffer; the object is deleted once the new
    MPU holds its bytes. ``writer(path, offset)`` below the current size cuts the
    excess: the MPU is completed with the parts up to the one holding byte
    ``offset - 1`` (done, at a part boundary); a longer object is then cut by
    UploadPartCopy of ``bytes=0-(offset-1)`` into a new MPU (>= 5 MiB), or by
    reading those bytes back into a PutObject (< 5 MiB).

    A closed, uncommitted file has a size (``stat``) and can be continued, but
    cannot be read: S3 serves no bytes of an in-progress MPU (``FileWriter``
    promises reads only after ``commit``).

    What a path holds, as ``writer`` sees it: the MPU's parts when it has any;
    otherwise the object; otherwise (an MPU without parts) nothing yet. Between
    the steps above a crash can leave both an object and an MPU; the MPU wins.

Requests to the object store (concurrent ones count once in latency)
    ``stat`` of a file: 1 (HeadObject); otherwise HeadObject, then ListObjectsV2 and
    ListMultipartUploads at once (3, +1 ListParts for a file being written).
    ``get_content``/``put_content``: 1. ``move``: HeadObject, CopyObject, DeleteObject
    up to ``multipartcopythresholdsize``, else one UploadPartCopy per
    ``multipartcopychunksize`` (at most ``multipartcopymaxconcurrency`` at once) between
    Create and CompleteMultipartUpload. ``writer(path, 0)``: ListMultipartUploads and
    DeleteObject at once; ``writer(path, size)``: ListMultipartUploads + ListParts
    (+ HeadObject for a committed file). ``write``: one UploadPart per ``chunksize``;
    ``close``: one for the rest; ``commit``: CompleteMultipartUpload, or a single
    PutObject for a file that one writer wrote in under ``chunksize``. Redirect URLs are
    signed locally (no request). Measured through the registry (moto's log): a blob
    HEAD costs 2 (the repository's link, HeadObject), a redirected blob GET 2.

Errors
    NoSuchKey/404 become :class:`PathNotFound`; everything else (connection
    failures, timeouts, 5xx, throttling, access denied) :class:`StorageError`,
    which the HTTP layer answers with 503 and ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

import aiohttp

from dockyard.storage.drivers.base import FileInfo, InvalidOffset, PathNotFound, StorageError
from dockyard.storage.drivers.factory import DriverConfigError

try:
    import aiobotocore.session
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise DriverConfigError(
        "storage.s3: the s3 driver needs aiobotocore; install dockyard[s3]"
    ) from exc

__all__ = ["MIN_CHUNK_SIZE", "S3Driver", "S3Parameters"]

A = TypeVar("A")
B = TypeVar("B")

log = logging.getLogger("dockyard.storage.s3")

MiB = 1 << 20
MIN_CHUNK_SIZE = 5 * MiB
"""S3's smallest part (all but the last)."""
MAX_CHUNK_SIZE = 5 * 1024 * MiB
"""S3's largest part, and the largest single CopyObject."""
DEFAULT_CHUNK_SIZE = 10 * MiB
DEFAULT_COPY_CHUNK_SIZE = 32 * MiB
DEFAULT_COPY_MAX_CONCURRENCY = 100
DEFAULT_COPY_THRESHOLD_SIZE = 32 * MiB
LIST_MAX = 1000
"""Keys per ListObjectsV2 page and per DeleteObjects batch."""
REDIRECT_EXPIRY = 20 * 60
"""Seconds a pre-signed URL stays valid (as distribution's URLFor)."""
READ_CHUNK = 1 * MiB
CONTENT_TYPE = "application/octet-stream"
STORAGE_CLASSES = frozenset({
    "NONE", "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",
    "INTELLIGENT_TIERING", "OUTPOSTS", "GLACIER_IR", "EXPRESS_ONEZONE",
})
OBJECT_ACLS = frozenset({
    "private", "public-read", "public-read-write", "authenticated-read",
    "aws-exec-read", "bucket-owner-read", "bucket-owner-full-control",
})
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchUpload"})
_REGION = re.compile(r"[a-z0-9-]{1,64}")


# ---------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True, kw_only=True)
class S3Parameters:
    """``storage.s3`` as distribution reads it (keys lower-cased)."""

    bucket: str
    region: str = ""
    region_endpoint: str = ""
    force_path_style: bool = False
    access_key: str = ""
    secret_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)
    secure: bool = True
    skip_verify: bool = False
    encrypt: bool = False
    key_id: str = ""
    chunk_size: int = DEFAULT_CHUNK_SIZE
    multipart_copy_chunk_size: int = DEFAULT_COPY_CHUNK_SIZE
    multipart_copy_max_concurrency: int = DEFAULT_COPY_MAX_CONCURRENCY
    multipart_copy_threshold_size: int = DEFAULT_COPY_THRESHOLD_SIZE
    root_directory: str = ""
    storage_class: str = "STANDARD"
    object_acl: str = ""
    user_agent: str = ""
    use_dual_stack: bool = False
    accelerate: bool = False

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> S3Parameters:
        """Validate ``storage.s3``; every problem names its key."""
        p = _Params(params)
        endpoint = p.string("regionendpoint")
        region = p.string("region")
        if not region and not endpoint:
            raise p.fail("region", "missing (required unless regionendpoint is set)")
        if region and not _REGION.fullmatch(region):
            raise p.fail("region", f"invalid region {region!r}")
        bucket = p.string("bucket")
        if not bucket:
            raise p.fail("bucket", "missing")
        if not p.boolean("v4auth", True):
            raise p.fail("v4auth", "signature version 2 is not supported; remove the key")
        storage_class = p.string("storageclass", "STANDARD").upper()
        if storage_class not in STORAGE_CLASSES:
            raise p.fail(
                "storageclass", f"expected one of {', '.join(sorted(STORAGE_CLASSES))}"
            )
        acl = p.string("objectacl")
        if acl and acl not in OBJECT_ACLS:
            raise p.fail("objectacl", f"expected one of {', '.join(sorted(OBJECT_ACLS))}")
        p.string("loglevel")  # accepted as distribution does; botocore logs via `log`
        result = cls(
            bucket=bucket,
            region=region,
            region_endpoint=endpoint,
            # distribution 2.8 always uses path-style requests with regionendpoint.
            force_path_style=p.boolean("forcepathstyle", bool(endpoint)),
            access_key=p.string("accesskey"),
            secret_key=p.string("secretkey"),
            session_token=p.string("sessiontoken"),
            secure=p.boolean("secure", True),
            skip_verify=p.boolean("skipverify", False),
            encrypt=p.boolean("encrypt", False),
            key_id=p.string("keyid"),
            chunk_size=p.integer("chunksize", DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE),
            multipart_copy_chunk_size=p.integer(
                "multipartcopychunksize", DEFAULT_COPY_CHUNK_SIZE, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE
            ),
            multipart_copy_max_concurrency=p.integer(
                "multipartcopymaxconcurrency", DEFAULT_COPY_MAX_CONCURRENCY, 1, 10_000
            ),
            multipart_copy_threshold_size=p.integer(
                "multipartcopythresholdsize", DEFAULT_COPY_THRESHOLD_SIZE, 0, MAX_CHUNK_SIZE
            ),
            root_directory=p.string("rootdirectory"),
            storage_class=storage_class,
            object_acl=acl,
            user_agent=p.string("useragent"),
            use_dual_stack=p.boolean("usedualstack", False),
            accelerate=p.boolean("accelerate", False),
        )
        p.check_unknown()
        return result

    @property
    def endpoint_url(self) -> str | None:
        endpoint = self.region_endpoint
        if not endpoint:
            return None
        if "://" not in endpoint:
            endpoint = f"{'https' if self.secure else 'http'}://{endpoint}"
        return endpoint


class _Params:
    """Typed reads of a free-form parameter mapping, remembering the keys read."""

    KNOWN = frozenset({
        "accesskey", "secretkey", "sessiontoken", "region", "regionendpoint",
        "forcepathstyle", "bucket", "rootdirectory", "secure", "skipverify", "v4auth",
        "encrypt", "keyid", "chunksize", "multipartcopychunksize",
        "multipartcopymaxconcurrency", "multipartcopythresholdsize", "storageclass",
        "objectacl", "useragent", "usedualstack", "accelerate", "loglevel",
    })

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = {str(k).lower(): v for k, v in params.items()}

    @staticmethod
    def fail(key: str, message: str) -> DriverConfigError:
        return DriverConfigError(f"storage.s3.{key}: {message}")

    def check_unknown(self) -> None:
        unknown = sorted(set(self.params) - self.KNOWN)
        if unknown:
            raise self.fail(unknown[0], "unknown parameter of the s3 storage driver")

    def string(self, key: str, default: str = "") -> str:
        value = self.params.get(key)
        if value is None:
            return default
        if isinstance(value, Mapping | list | tuple):
            raise self.fail(key, f"expected a string, got {type(value).__name__}")
        return str(value).strip()

    def boolean(self, key: str, default: bool) -> bool:
        value = self.params.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in {"1", "t", "true"}:
                return True
            if lowered in {"0", "f", "false"}:
                return False
        raise self.fail(key, f"expected a boolean, got {value!r}")

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.params.get(key)
        if value is None:
            number = default
        elif isinstance(value, bool):
            raise self.fail(key, f"expected an integer, got {value!r}")
        elif isinstance(value, int):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                raise self.fail(key, f"expected an integer, got {value!r}") from None
        if not low <= number <= high:
            raise self.fail(key, f"{number} is out of range: between {low} and {high}")
        return number


# ---------------------------------------------------------------------------
# Errors


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


# ---------------------------------------------------------------------------
# The driver


@dataclass(slots=True)
class _Part:
    number: int
    etag: str
    size: int


@dataclass(slots=True)
class _Upload:
    upload_id: str
    parts: list[_Part]

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)


class S3Driver:
    """Bytes at keys of one bucket. ``redirect`` (default on) signs GET/HEAD URLs."""

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

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any], *, redirect: bool = True) -> S3Driver:
        return cls(S3Parameters.parse(params), redirect=redirect)

    # -- client ---------------------------------------------------------------------

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
        return int(resp["ContentLength"]), _timestamp(resp.get("LastModified"))

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

    async def _parts(self, path: str, upload_id: str) -> list[_Part]:
        s3 = await self.s3()
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket, "Key": self.key(path), "UploadId": upload_id,
        }
        parts: list[_Part] = []
        while True:
            with self._errors(path):
                resp = await s3.list_parts(**kwargs)
            parts.extend(
                _Part(int(p["PartNumber"]), str(p["ETag"]), int(p["Size"]))
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

    async def _create_upload(self, path: str) -> _Upload:
        s3 = await self.s3()
        with self._errors(path):
            resp = await s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key(path), **self._write_args()
            )
        return _Upload(str(resp["UploadId"]), [])

    async def _complete(self, path: str, upload: _Upload, parts: list[_Part]) -> None:
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
        self, source: str, dest: str, upload: _Upload, number: int, first: int, last: int
    ) -> _Part:
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
        return _Part(number, str(resp["CopyPartResult"]["ETag"]), last - first + 1)

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

    # -- StorageDriver ----------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        s3 = await self.s3()
        with self._errors(path):
            resp = await s3.get_object(Bucket=self.bucket, Key=self.key(path))
            async with resp["Body"] as body:
                data: bytes = await body.read()
        return data

    async def put_content(self, path: str, data: bytes) -> None:
        s3 = await self.s3()
        with self._errors(path):
            await s3.put_object(
                Bucket=self.bucket, Key=self.key(path), Body=data, **self._write_args()
            )

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

    async def writer(self, path: str, offset: int = 0) -> S3Writer:
        if offset == 0:
            # Start afresh: drop whatever was there, committed or in progress.
            upload_ids, _ = await _gather(self._key_uploads(path), self._delete_object(path))
            for upload_id in upload_ids:
                await self._abort(path, upload_id)
            return S3Writer(self, path, size=0, upload=None, base=None, fresh=True)
        upload, base = await self._state(path)
        size = upload.size if upload is not None and upload.parts else (base or 0)
        if upload is None and base is None:
            raise PathNotFound(path, self.name)
        if offset > size:
            raise InvalidOffset(path, offset, self.name)
        if offset < size:
            upload, base = await self._truncate(path, upload, base, offset)
        return S3Writer(self, path, size=offset, upload=upload, base=base)

    async def _state(self, path: str) -> tuple[_Upload | None, int | None]:
        """The in-progress MPU of ``path`` (if any) and, when that has no parts, the size
        of the committed object (None: no object)."""
        upload_ids = await self._key_uploads(path)
        upload = None
        if upload_ids:
            # Listed oldest first: the newest is the file; any others are leftovers.
            *stale, current = upload_ids
            for upload_id in stale:
                await self._abort(path, upload_id)
            upload = _Upload(current, await self._parts(path, current))
            if upload.parts:
                return upload, None
        head = await self._head(path)
        if head is not None and upload is not None:
            # A restart interrupted before the new MPU got the object's bytes.
            await self._abort(path, upload.upload_id)
            upload = None
        return upload, None if head is None else head[0]

    async def _truncate(
        self, path: str, upload: _Upload | None, base: int | None, offset: int
    ) -> tuple[_Upload | None, int | None]:
        """Cut the file at ``offset`` (< its size); returns the new (upload, base)."""
        if upload is not None and upload.parts:
            keep: list[_Part] = []
            total = 0
            for part in upload.parts:
                if total >= offset:
                    break
                keep.append(part)
                total += part.size
            await self._complete(path, upload, keep)  # all but the last are >= 5 MiB
            if total == offset:
                return None, offset
            base = total
        assert base is not None
        if offset < MIN_CHUNK_SIZE:
            data = await self._read_range(path, 0, offset - 1)
            await self.put_content(path, data)
            return None, offset
        new = await self._create_upload(path)
        new.parts.append(await self._copy_part(path, path, new, 1, 0, offset - 1))
        await self._delete_object(path)
        return new, None

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

        resp, upload_ids = await _gather(first_below(), self._key_uploads(path))
        contents = resp.get("Contents", [])
        if contents:
            return FileInfo(path, 0, _timestamp(contents[0].get("LastModified")), True)
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

        async def copy(number: int) -> _Part:
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

    async def delete(self, path: str) -> None:
        head = await self._head(path)
        if head is not None:
            await self._delete_object(path)
            return
        # A directory: its objects, and the files still being written below it.
        found, uploads = await _gather(self._delete_tree(path), self._uploads_below(path))
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

    async def redirect_url(self, path: str, method: str) -> str | None:
        if not self.redirect or method not in ("GET", "HEAD"):
            return None
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
                mtime = _timestamp(obj.get("LastModified"))
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
                yield FileInfo(f"{base}/{'/'.join(parts)}", int(obj["Size"]), mtime, False)
            if not resp.get("IsTruncated"):
                break
            kwargs["ContinuationToken"] = resp["NextContinuationToken"]
        if not found and path != "/":
            raise PathNotFound(path, self.name)

    def local_path(self, path: str) -> str | None:
        return None

    # -- maintenance --------------------------------------------------------------------

    async def abort_stale_multipart_uploads(self, older_than: datetime) -> int:
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
                await self._abort("/", upload["UploadId"], upload["Key"])
                log.info("aborted multipart upload of %s initiated %s",
                         self._path(upload["Key"]), initiated.isoformat())
                count += 1
        return count


async def _gather(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Both results, run concurrently; the first failure is raised after both finished."""
    results = await asyncio.gather(first, second, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results[0], results[1]  # type: ignore[return-value]


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


def _timestamp(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else time.time()


# ---------------------------------------------------------------------------
# The writer


class S3Writer:
    """Appends to one file's multipart upload; see the module docstring.

    State: ``upload`` (the MPU and its parts, or None until the first part),
    ``base`` (size of a committed object the file consists of, when there is no
    MPU with parts), the part buffer, and ``stale_object`` (the object must go
    once the new MPU holds its bytes).
    """

    def __init__(
        self,
        driver: S3Driver,
        path: str,
        *,
        size: int,
        upload: _Upload | None,
        base: int | None,
        fresh: bool = False,
    ) -> None:
        self._driver = driver
        self._path = path
        self._size = size
        self._upload = upload
        self._base = base
        self._fresh = fresh
        self._buffer = bytearray()
        self._prepared = False
        self._stale_object = False
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"writer of {self._path} is closed", self._driver.name)

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
                self._buffer += await d._read_range(path, 0, base - 1)
            self._stale_object = True

    async def write(self, data: bytes) -> None:
        self._check_open()
        if not data:
            return
        if not self._prepared:
            await self._prepare_append()
        chunk_size = self._driver.params.chunk_size
        view = memoryview(data)
        while view:
            room = chunk_size - len(self._buffer)
            self._buffer += view[:room]
            self._size += min(room, len(view))
            view = view[room:]
            if len(self._buffer) >= chunk_size:
                await self._upload_part()

    async def _upload_part(self) -> None:
        d, path = self._driver, self._path
        if self._upload is None:
            self._upload = await d._create_upload(path)
        upload = self._upload
        number = (upload.parts[-1].number if upload.parts else 0) + 1
        s3 = await d.s3()
        with d._errors(path):
            resp = await s3.upload_part(
                Bucket=d.bucket, Key=d.key(path), UploadId=upload.upload_id,
                PartNumber=number, Body=self._buffer,
            )
        upload.parts.append(_Part(number, str(resp["ETag"]), len(self._buffer)))
        self._buffer = bytearray()
        if self._stale_object:
            self._stale_object = False
            await d._delete_object(path)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._buffer:
                await self._upload_part()
            elif self._fresh and self._upload is None and self._size == 0:
                await self._driver.put_content(self._path, b"")  # an empty file exists
        finally:
            self._buffer = bytearray()

    async def commit(self) -> None:
        self._check_open()
        self._closed = True
        d, path = self._driver, self._path
        try:
            if self._upload is None and self._base is None:
                # Everything is in the buffer (a fresh file, or a small one read back).
                await d.put_content(path, bytes(self._buffer))
                return
            if self._buffer:
                await self._upload_part()
            upload = self._upload
            if upload is None:
                return  # the committed object is the file already
            if upload.parts:
                await d._complete(path, upload, upload.parts)
            else:
                await d._abort(path, upload.upload_id)
                await d.put_content(path, b"")
        finally:
            self._buffer = bytearray()

    async def cancel(self) -> None:
        self._closed = True
        self._buffer = bytearray()
        d, path = self._driver, self._path
        for upload_id in await d._key_uploads(path):
            await d._abort(path, upload_id)
        await d._delete_object(path)
