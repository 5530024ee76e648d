"""The bucket below the GCS driver: client, keys, requests, part lists and ``delete``.

Every request goes through :meth:`GCSBucket._call`, which retries rate limits, 5xx
and transport errors with exponential backoff and maps the rest to
:class:`PathNotFound` (404) or :class:`StorageError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import aiohttp
from gcloud.aio.auth import Token
from gcloud.aio.storage import Storage

from dockyard.storage.drivers.base import PathNotFound, StorageError
from dockyard.storage.drivers.gcs._params import GCSParameters

__all__ = [
    "BLOB_CONTENT_TYPE",
    "PARTS_SUFFIX",
    "SESSION_CONTENT_TYPE",
    "TIMEOUT",
    "GCSBucket",
    "mtime",
    "size_of",
]

T = TypeVar("T")

COMPOSE_LIMIT = 32
SESSION_CONTENT_TYPE = "application/x-dockyard-upload-parts"
BLOB_CONTENT_TYPE = "application/octet-stream"
SIZE_METADATA = "dockyard-upload-size"
PARTS_SUFFIX = "~parts/"
TIMEOUT = 300
_RETRIES = 6
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


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


class GCSBucket:
    """One bucket under a root directory; the driver and its writer are built on it."""

    name = "gcs"

    def __init__(self, params: GCSParameters, *, redirect: bool = True) -> None:
        self.params = params
        self.chunk_size = params.chunk_size
        self.redirect = redirect
        self._clients: _Clients | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limit: asyncio.Semaphore | None = None

    # -- plumbing ---------------------------------------------------------------------

    def _storage_client(self) -> Storage:
        """The client of the running event loop (built on first use in each loop)."""
        loop = asyncio.get_running_loop()
        if self._clients is None or self._loop is not loop:
            headers = {"User-Agent": self.params.user_agent} if self.params.user_agent else None
            session = aiohttp.ClientSession(
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=TIMEOUT),
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
                timeout=TIMEOUT,
            ),
        )

    async def _delete_key(self, path: str, key: str) -> bool:
        """Delete one object; False if it was not there."""
        bucket = self.params.bucket
        try:
            await self._call(path, lambda s: s.delete(bucket, key, timeout=TIMEOUT))
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
        bucket = self.params.bucket
        headers = {}
        if start or end is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        response = await self._call(
            path,
            lambda s: s.download_stream(bucket, key, headers=dict(headers), timeout=TIMEOUT),
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
        raw = await self._call(path, lambda s: s.download(bucket, key, timeout=TIMEOUT))
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
                        bucket, t, g, content_type=BLOB_CONTENT_TYPE, timeout=TIMEOUT
                    ),
                )
                grouped.append(target)
            sources = grouped
        await self._call(
            path,
            lambda s: s.compose(
                bucket, key, sources, content_type=BLOB_CONTENT_TYPE, timeout=TIMEOUT
            ),
        )

    async def put_content(self, path: str, data: bytes) -> None:
        await self._upload(path, self._key(path), data)

    async def delete(self, path: str) -> None:
        key = self._key(path)
        found = False
        if key:
            found = await self._delete_key(path, key)
            found = bool(await self._delete_prefix(path, key + PARTS_SUFFIX)) or found
        found = bool(await self._delete_prefix(path, self._prefix(path))) or found
        if not found:
            raise PathNotFound(path, self.name)


def size_of(meta: Mapping[str, Any]) -> int:
    if meta.get("contentType") == SESSION_CONTENT_TYPE:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            return int(meta["metadata"][SIZE_METADATA])
    return int(meta.get("size") or 0)


def mtime(meta: Mapping[str, Any]) -> float:
    raw = meta.get("updated") or meta.get("timeCreated")
    if not raw:
        return 0.0
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
