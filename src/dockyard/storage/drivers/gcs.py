"""Google Cloud Storage driver (``storage.gcs``), on ``gcloud-aio-storage`` (asyncio).

Parameters (distribution's keys)
    ``bucket`` (required); ``keyfile`` (a service account JSON key file) or
    ``credentials`` (the same key as a mapping), else Google's application default
    credentials; ``rootdirectory`` (a prefix inside the bucket); ``chunksize``
    (bytes per uploaded part, a multiple of 256 KiB, default 16 MiB);
    ``maxconcurrency`` (requests in flight per process, default 50); ``useragent``.
    dockyard addition: ``endpoint`` (e.g. ``http://127.0.0.1:4443``) talks to a GCS
    emulator without authentication; the ``STORAGE_EMULATOR_HOST`` environment
    variable, which Google's clients and distribution honour, does the same.

Layout
    Path ``/a/b`` is object ``<rootdirectory>/a/b``, as distribution names it, so
    both can share a bucket. Directories are prefixes.

Uploads across requests and instances
    GCS objects are immutable, so upload data is kept as *parts* -- ordinary
    objects ``<key>~parts/<uuid>`` (``~`` never occurs in a registry path, so they
    cannot collide with one and ``list``/``walk`` hide them) -- and the object at
    ``<key>`` itself is a small *part list*: content type
    ``application/x-dockyard-upload-parts``, a JSON body naming the parts in order
    with their sizes, and the total size in its ``dockyard-upload-size`` metadata.

    ``write`` uploads a part whenever ``chunksize`` bytes have gathered (one part in
    flight while the next fills). ``close`` (end of every PATCH) uploads what is
    left as a last part and replaces the part list in one single-request upload,
    which GCS makes atomic: any instance then sees the new size in ``stat`` (from
    the metadata, no body read), can ``reader`` the bytes (streamed part by part)
    and can continue with ``writer(path, size)``, which reads the part list (one
    small GET) and appends parts. Parts a crashed request uploaded but never listed
    are ignored and removed with the upload. ``writer(path, offset)`` below the size
    keeps the parts wholly before ``offset`` and re-uploads the head of the one
    part that straddles it (at most ``chunksize`` bytes read back): the next
    ``close`` lists exactly ``offset`` bytes. ``commit`` composes the parts into
    ``<key>`` server-side (Compose, 32 sources per call, in a tree when there are
    more), which atomically replaces the part list with the complete object, then
    deletes the parts; ``move`` is a server-side rewrite plus delete.

    Why not resumable upload sessions (distribution's way): bytes accepted by a
    session cannot be taken back, so a chunk that fails half-way could not be cut
    off at the acknowledged offset; and a session's data cannot be read before it
    is finalized.

    GCS allows about one update per second of one object name: the part list of
    an upload changes once per PATCH, so rate-limit answers (429) and 5xx are
    retried with exponential backoff.

Redirects
    Unless ``storage.redirect.disable`` is set, and given a service account key
    (``keyfile``/``credentials``), GET and HEAD are redirected to a V4 signed URL
    valid for 20 minutes, as distribution does; without a key, blobs are served
    through the registry.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import hashlib
import io
import json
import os
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

from dockyard.storage.drivers.base import FileInfo, InvalidOffset, PathNotFound, StorageError
from dockyard.storage.drivers.objectstore import PartWriter, PrefixTree, check_parameters

if TYPE_CHECKING:  # the client is imported only when the driver is built
    import aiohttp
    from gcloud.aio.storage import Storage

__all__ = ["GCSDriver", "GCSParameters", "sign_url_v4"]

T = TypeVar("T")

MIN_CHUNK_SIZE = 256 << 10
DEFAULT_CHUNK_SIZE = 16 << 20
DEFAULT_MAX_CONCURRENCY = 50
COMPOSE_LIMIT = 32
REDIRECT_EXPIRY = 20 * 60
SESSION_CONTENT_TYPE = "application/x-dockyard-upload-parts"
BLOB_CONTENT_TYPE = "application/octet-stream"
SIZE_METADATA = "dockyard-upload-size"
PARTS_SUFFIX = "~parts/"
PUBLIC_HOST = "https://storage.googleapis.com"
_RETRIES = 6
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_TIMEOUT = 300
_KNOWN = frozenset(
    {
        "bucket",
        "keyfile",
        "credentials",
        "rootdirectory",
        "chunksize",
        "maxconcurrency",
        "useragent",
        "endpoint",
    }
)


def _config_error(message: str) -> Exception:
    from dockyard.storage.drivers.factory import DriverConfigError

    return DriverConfigError(f"storage.gcs: {message}")


def _integer(params: Mapping[str, Any], key: str, default: int) -> int:
    raw = params.get(key)
    if raw in (None, ""):
        return default
    try:
        return int(str(raw))
    except ValueError:
        raise _config_error(f"{key} must be an integer, got {raw!r}") from None


class GCSParameters:
    """``storage.gcs`` validated; raises ``DriverConfigError`` naming the bad key."""

    def __init__(self, params: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        check_parameters(params, _KNOWN, _config_error)
        self.bucket = str(params.get("bucket") or "")
        if not self.bucket:
            raise _config_error("bucket is required")
        root = str(params.get("rootdirectory") or "").strip("/")
        self.root_prefix = f"{root}/" if root else ""
        self.chunk_size = _integer(params, "chunksize", DEFAULT_CHUNK_SIZE)
        if self.chunk_size < MIN_CHUNK_SIZE or self.chunk_size % MIN_CHUNK_SIZE:
            raise _config_error(
                f"chunksize {self.chunk_size} must be a positive multiple of {MIN_CHUNK_SIZE}"
            )
        self.max_concurrency = _integer(params, "maxconcurrency", DEFAULT_MAX_CONCURRENCY)
        if self.max_concurrency < 1:
            raise _config_error("maxconcurrency must be at least 1")
        self.user_agent = str(params.get("useragent") or "")
        self.service_data: dict[str, Any] | None = None
        keyfile = params.get("keyfile")
        credentials = params.get("credentials")
        if keyfile and credentials:
            raise _config_error("give keyfile or credentials, not both")
        if keyfile:
            try:
                with open(str(keyfile), encoding="utf-8") as f:
                    self.service_data = json.load(f)
            except (OSError, ValueError) as exc:
                raise _config_error(f"keyfile {keyfile}: {exc}") from None
        elif credentials is not None:
            if not isinstance(credentials, Mapping):
                raise _config_error("credentials: expected the service account key as a mapping")
            self.service_data = {str(k): v for k, v in credentials.items()}
        if self.service_data is not None and not isinstance(self.service_data, dict):
            raise _config_error("the service account key must be a JSON object")
        endpoint = str(params.get("endpoint") or environ.get("STORAGE_EMULATOR_HOST") or "")
        if endpoint and "://" not in endpoint:
            endpoint = f"http://{endpoint}"
        if endpoint and (
            urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).netloc
        ):
            raise _config_error(f"endpoint {endpoint!r} is not an http(s) URL")
        self.endpoint = endpoint.rstrip("/")

    @property
    def signing_key(self) -> tuple[str, str] | None:
        """(client_email, private_key PEM) when URLs can be signed locally."""
        data = self.service_data or {}
        email, key = data.get("client_email"), data.get("private_key")
        if isinstance(email, str) and isinstance(key, str) and email and key:
            return email, key
        return None


def sign_url_v4(
    *,
    host_url: str,
    bucket: str,
    name: str,
    client_email: str,
    private_key: str,
    method: str = "GET",
    expires: int = REDIRECT_EXPIRY,
    now: datetime | None = None,
) -> str:
    """A V4 signed URL (``GOOG4-RSA-SHA256``) for one object, signed with the key locally."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    now = now or datetime.now(UTC)
    timestamp = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{now.strftime('%Y%m%d')}/auto/storage/goog4_request"
    host = urlsplit(host_url).netloc
    canonical_uri = f"/{bucket}/{quote(name, safe='/~')}"
    query = {
        "X-Goog-Algorithm": "GOOG4-RSA-SHA256",
        "X-Goog-Credential": f"{client_email}/{scope}",
        "X-Goog-Date": timestamp,
        "X-Goog-Expires": str(expires),
        "X-Goog-SignedHeaders": "host",
    }
    canonical_query = "&".join(
        f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(query.items())
    )
    canonical_request = "\n".join(
        [method, canonical_uri, canonical_query, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"]
    )
    to_sign = "\n".join(
        [
            "GOOG4-RSA-SHA256",
            timestamp,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = serialization.load_pem_private_key(private_key.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the service account key is not an RSA key")
    signature = key.sign(to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
    return (
        f"{host_url.rstrip('/')}{canonical_uri}?{canonical_query}"
        f"&X-Goog-Signature={binascii.hexlify(signature).decode()}"
    )


class _NoToken:
    """Stands in for gcloud-aio's Token against an emulator, which wants no authorization."""

    async def get(self) -> str | None:
        return None

    async def close(self) -> None:
        return None


class _Clients:
    """The aiohttp session and storage client of one event loop."""

    def __init__(self, session: aiohttp.ClientSession, storage: Storage) -> None:
        self.session = session
        self.storage = storage


class GCSDriver(PrefixTree):
    """Objects in one bucket; see the module docstring."""

    name = "gcs"

    def __init__(self, params: GCSParameters, *, redirect: bool = True) -> None:
        try:
            import gcloud.aio.storage  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise _config_error(
                "the gcs driver needs the gcs extra: pip install 'dockyard[gcs]'"
            ) from exc
        self.params = params
        self.chunk_size = params.chunk_size
        self.redirect = redirect
        self._clients: _Clients | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limit: asyncio.Semaphore | None = None

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any], *, redirect: bool = True) -> GCSDriver:
        """``storage.gcs``; ``redirect`` is ``not storage.redirect.disable``."""
        return cls(GCSParameters(params), redirect=redirect)

    # -- plumbing ---------------------------------------------------------------------

    def _storage_client(self) -> Storage:
        """The client of the running event loop (built on first use in each loop)."""
        loop = asyncio.get_running_loop()
        if self._clients is None or self._loop is not loop:
            import aiohttp
            from gcloud.aio.auth import Token
            from gcloud.aio.storage import Storage

            headers = {"User-Agent": self.params.user_agent} if self.params.user_agent else None
            session = aiohttp.ClientSession(
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=_TIMEOUT),
            )
            token: Any = _NoToken()  # an emulator: no credentials are looked for, ever
            if not self.params.endpoint:
                service = (
                    io.StringIO(json.dumps(self.params.service_data))
                    if self.params.service_data is not None
                    else None
                )
                token = Token(
                    service_file=service,
                    session=session,  # type: ignore[arg-type]
                    scopes=["https://www.googleapis.com/auth/devstorage.full_control"],
                )
            storage = Storage(
                session=session,  # type: ignore[arg-type]
                token=token,
                api_root=self.params.endpoint or None,
            )
            self._clients = _Clients(session, storage)
            self._loop = loop
            self._limit = asyncio.Semaphore(self.params.max_concurrency)
        return self._clients.storage

    async def aclose(self) -> None:
        if self._clients is not None:
            clients, self._clients = self._clients, None
            await clients.session.close()

    def _key(self, path: str) -> str:
        return (self.params.root_prefix + path.lstrip("/")).rstrip("/")

    def _prefix(self, path: str) -> str:
        key = self._key(path)
        return f"{key}/" if key else ""

    def _path(self, key: str) -> str:
        return "/" + key[len(self.params.root_prefix) :].rstrip("/")

    async def _call(self, path: str, op: Callable[[Storage], Awaitable[T]]) -> T:
        """One request with retries on 408/429/5xx and transport errors; errors mapped."""
        import aiohttp

        storage = self._storage_client()
        assert self._limit is not None
        delay = 0.2
        for attempt in range(_RETRIES):
            try:
                async with self._limit:
                    return await op(storage)
            except aiohttp.ClientResponseError as exc:
                if exc.status == 404:
                    raise PathNotFound(path, self.name) from exc
                if exc.status not in _RETRY_STATUS or attempt == _RETRIES - 1:
                    raise StorageError(
                        f"HTTP {exc.status} {exc.message} ({path})", self.name
                    ) from exc
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if attempt == _RETRIES - 1:
                    raise StorageError(f"{type(exc).__name__}: {exc} ({path})", self.name) from exc
            await asyncio.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 8.0)
        raise AssertionError("unreachable")

    async def _metadata(self, path: str, key: str | None = None) -> dict[str, Any]:
        bucket = self.params.bucket
        name = key or self._key(path)
        return await self._call(path, lambda s: s.download_metadata(bucket, name))

    async def _upload(
        self,
        path: str,
        key: str,
        data: bytes,
        content_type: str = BLOB_CONTENT_TYPE,
        metadata: dict[str, str] | None = None,
    ) -> None:
        bucket = self.params.bucket
        extra = {"metadata": metadata} if metadata else None
        await self._call(
            path,
            lambda s: s.upload(
                bucket,
                key,
                data,
                content_type=content_type,
                metadata=extra,
                force_resumable_upload=False,
                timeout=_TIMEOUT,
            ),
        )

    async def _delete_key(self, path: str, key: str) -> bool:
        """Delete one object; False if it was not there."""
        bucket = self.params.bucket
        try:
            await self._call(path, lambda s: s.delete(bucket, key, timeout=_TIMEOUT))
        except PathNotFound:
            return False
        return True

    async def _list(self, path: str, prefix: str, delimiter: str | None) -> AsyncIterator[Any]:
        """Objects (dicts) and, with a delimiter, prefixes (str) below ``prefix``."""
        bucket = self.params.bucket
        token = ""
        while True:
            params = {"prefix": prefix, "maxResults": "1000"}
            if delimiter:
                params["delimiter"] = delimiter
            if token:
                params["pageToken"] = token
            page = await self._call(
                path, lambda s, p=params: s.list_objects(bucket, params=p)  # type: ignore[misc]
            )
            for item in page.get("items", []) or []:
                yield item
            for sub in page.get("prefixes", []) or []:
                yield sub
            token = page.get("nextPageToken") or ""
            if not token:
                return

    async def _delete_prefix(self, path: str, prefix: str) -> int:
        keys = [item["name"] async for item in self._list(path, prefix, None)
                if isinstance(item, dict)]
        results = await asyncio.gather(*(self._delete_key(path, k) for k in keys))
        return sum(results)

    async def _stream(self, path: str, key: str, start: int, end: int | None) -> AsyncIterator[
        bytes
    ]:
        """Bytes [start, end) of one plain object (end None: to its end)."""
        import aiohttp

        bucket = self.params.bucket
        headers = {}
        if start or end is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        response = await self._call(
            path,
            lambda s: s.download_stream(bucket, key, headers=dict(headers), timeout=_TIMEOUT),
        )
        try:
            async with response as raw:
                while chunk := await raw.content.read(1 << 20):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise StorageError(f"{type(exc).__name__}: {exc} ({path})", self.name) from exc

    # -- part lists -------------------------------------------------------------------

    async def _parts(self, path: str, key: str) -> list[tuple[str, int]]:
        bucket = self.params.bucket
        raw = await self._call(path, lambda s: s.download(bucket, key, timeout=_TIMEOUT))
        try:
            doc = json.loads(raw)
            return [(str(p["name"]), int(p["size"])) for p in doc["parts"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"corrupt upload part list at {path}", self.name) from exc

    def _part_key(self, key: str, name: str) -> str:
        return f"{key}{PARTS_SUFFIX}{name}"

    async def _save_parts(self, path: str, key: str, parts: list[tuple[str, int]]) -> None:
        body = json.dumps(
            {"parts": [{"name": n, "size": s} for n, s in parts]}, separators=(",", ":")
        ).encode()
        size = sum(s for _, s in parts)
        await self._upload(path, key, body, SESSION_CONTENT_TYPE, {SIZE_METADATA: str(size)})

    async def _compose(self, path: str, key: str, sources: list[str]) -> None:
        """``key`` := concatenation of ``sources``, 32 at a time, as a tree if needed."""
        bucket = self.params.bucket
        while len(sources) > COMPOSE_LIMIT:
            grouped = []
            for i in range(0, len(sources), COMPOSE_LIMIT):
                group = sources[i : i + COMPOSE_LIMIT]
                if len(group) == 1:
                    grouped.append(group[0])
                    continue
                target = self._part_key(key, f"compose-{uuid.uuid4().hex}")
                await self._call(
                    path,
                    lambda s, t=target, g=group: s.compose(  # type: ignore[misc]
                        bucket, t, g, content_type=BLOB_CONTENT_TYPE, timeout=_TIMEOUT
                    ),
                )
                grouped.append(target)
            sources = grouped
        await self._call(
            path,
            lambda s: s.compose(
                bucket, key, sources, content_type=BLOB_CONTENT_TYPE, timeout=_TIMEOUT
            ),
        )

    # -- the contract -----------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        return b"".join([chunk async for chunk in self.reader(path)])

    async def put_content(self, path: str, data: bytes) -> None:
        await self._upload(path, self._key(path), data)

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        key = self._key(path)
        meta = await self._metadata(path)
        size = _size(meta)
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

    async def writer(self, path: str, offset: int = 0) -> _PartWriter:
        key = self._key(path)
        parts: list[tuple[str, int]] = []
        changed = True  # writer(path, 0) replaces the object even if nothing is written
        if offset:
            meta = await self._metadata(path)
            size = _size(meta)
            if size < offset:
                raise InvalidOffset(path, offset, self.name)
            if meta.get("contentType") == SESSION_CONTENT_TYPE:
                parts = await self._parts(path, key)
                changed = size != offset
                if changed:
                    parts = await self._cut(path, key, parts, offset)
            else:  # a complete object: its head becomes the first part (server-side copy)
                parts = await self._adopt(path, key, size, offset)
        return _PartWriter(self, path, key, parts, offset, dirty=changed)

    async def _cut(
        self, path: str, key: str, parts: list[tuple[str, int]], offset: int
    ) -> list[tuple[str, int]]:
        kept: list[tuple[str, int]] = []
        start = 0
        for name, size in parts:
            if start >= offset:
                break
            if start + size <= offset:
                kept.append((name, size))
            else:  # the part that straddles offset: keep its head
                kept += await self._copy_range(path, self._part_key(key, name), offset - start)
                break
            start += size
        return kept

    async def _adopt(self, path: str, key: str, size: int, offset: int) -> list[tuple[str, int]]:
        """A complete object continued at ``offset``: its head becomes the first part(s)."""
        if offset < size:
            return await self._copy_range(path, key, offset)
        bucket = self.params.bucket
        name = uuid.uuid4().hex
        part = self._part_key(key, name)
        await self._call(path, lambda s: s.copy(bucket, key, bucket, new_name=part))
        return [(name, size)]

    async def _copy_range(self, path: str, source: str, length: int) -> list[tuple[str, int]]:
        """The first ``length`` bytes of ``source`` as new parts of at most ``chunk_size``."""
        parts: list[tuple[str, int]] = []
        buffer = bytearray()
        key = self._key(path)
        if length <= 0:
            return parts

        async def put(data: bytes) -> None:
            name = uuid.uuid4().hex
            await self._upload(path, self._part_key(key, name), data)
            parts.append((name, len(data)))

        async for chunk in self._stream(path, source, 0, length):
            buffer += chunk
            while len(buffer) >= self.chunk_size:
                await put(bytes(buffer[: self.chunk_size]))
                del buffer[: self.chunk_size]
        if buffer:
            await put(bytes(buffer))
        return parts

    async def stat(self, path: str) -> FileInfo:
        key = self._key(path)
        if key:
            try:
                meta = await self._metadata(path)
            except PathNotFound:
                pass
            else:
                return FileInfo(path, _size(meta), _mtime(meta), False)
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
                yield FileInfo(self._path(name), _size(item), _mtime(item), False)

    async def move(self, source: str, dest: str) -> None:
        bucket = self.params.bucket
        src, dst = self._key(source), self._key(dest)
        meta = await self._metadata(source)
        if meta.get("contentType") == SESSION_CONTENT_TYPE:
            # Not committed: finish it first (the upload layer always commits before).
            writer = await self.writer(source, _size(meta))
            await writer.commit()
        result = await self._call(source, lambda s: s.copy(bucket, src, bucket, new_name=dst))
        if result.get("done") is False:
            raise StorageError(f"copy of {source} to {dest} did not finish", self.name)
        await self._delete_key(source, src)
        await self._delete_prefix(source, src + PARTS_SUFFIX)

    async def delete(self, path: str) -> None:
        key = self._key(path)
        found = False
        if key:
            found = await self._delete_key(path, key)
            found = bool(await self._delete_prefix(path, key + PARTS_SUFFIX)) or found
        found = bool(await self._delete_prefix(path, self._prefix(path))) or found
        if not found:
            raise PathNotFound(path, self.name)

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


def _size(meta: Mapping[str, Any]) -> int:
    if meta.get("contentType") == SESSION_CONTENT_TYPE:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            return int(meta["metadata"][SIZE_METADATA])
    return int(meta.get("size") or 0)


def _mtime(meta: Mapping[str, Any]) -> float:
    raw = meta.get("updated") or meta.get("timeCreated")
    if not raw:
        return 0.0
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


class _PartWriter(PartWriter["GCSDriver"]):
    """Uploads parts as data arrives; ``close`` saves the part list, ``commit`` composes."""

    def __init__(
        self,
        driver: GCSDriver,
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
