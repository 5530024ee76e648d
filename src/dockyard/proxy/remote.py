"""The upstream registry, seen through the V2 API with aiohttp.

Every failure to get an answer (unreachable, 5xx, refused credentials) becomes
:class:`UpstreamUnavailable`, which the HTTP layer answers with 503 and
``Retry-After``; a 429 is :class:`UpstreamRateLimited`, one of them, answered 429
with the upstream's ``Retry-After``; a 404 becomes :class:`UpstreamNotFound` for the
caller to name.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import aiohttp

from dockyard.digest import Digest, InvalidDigest
from dockyard.errors import BackendUnavailable, TooManyRequests
from dockyard.manifest import (
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA2,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_SIGNED,
)
from dockyard.metadata import Page
from dockyard.proxy.auth import UpstreamAuth

__all__ = [
    "CHUNK",
    "MANIFEST_ACCEPT",
    "RemoteBlob",
    "RemoteManifest",
    "RemoteRegistry",
    "UpstreamNotFound",
    "UpstreamRateLimited",
    "UpstreamUnavailable",
]

MANIFEST_ACCEPT = ", ".join(
    (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_SCHEMA2, f"{SCHEMA1_SIGNED};q=0.5")
)
# A blob download's chunks. A fill keeps a few in flight (spool, hash, write), and each
# costs its consumers thread hops: 1 MiB chunks cost a cold fetch's worker about 10 MiB
# more at its peak than these, 256 KiB ones 20% more CPU (benchmarks/README.md, Peak RSS).
CHUNK = 512 << 10
_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=15, sock_connect=15, sock_read=120)


class UpstreamUnavailable(BackendUnavailable):
    """The upstream could not answer (unreachable, rate-limited, failing, refusing us)."""


class UpstreamRateLimited(TooManyRequests, UpstreamUnavailable):
    """The upstream answered 429: the client is told so (429), with its Retry-After."""


class UpstreamNotFound(Exception):
    """The upstream answered 404 for what was asked."""


@dataclass(frozen=True, slots=True)
class RemoteManifest:
    """A manifest as the upstream described it (``body`` empty after a HEAD)."""

    digest: Digest | None
    media_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class RemoteBlob:
    """A blob being downloaded: its announced size and its bytes."""

    size: int | None
    chunks: AsyncIterator[bytes]


class RemoteRegistry:
    """One upstream registry (``proxy.remoteurl``) and its credentials."""

    def __init__(self, url: str, username: str = "", password: str = "") -> None:
        self.url = url.rstrip("/")
        self.auth = UpstreamAuth(self.url, username, password)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the worker's event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT, auto_decompress=False)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    @contextlib.asynccontextmanager
    async def _request(
        self,
        method: str,
        path: str,
        scope: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A 200 answer to ``method path``, authenticated (retried once after a 401)."""
        session = self._client()
        url = f"{self.url}/v2/{path}"
        try:
            for attempt in (1, 2):
                sent = dict(headers or {})
                authorization = await self.auth.header(session, scope)
                if authorization is not None:
                    sent["Authorization"] = authorization
                response = await session.request(
                    method, url, headers=sent, params=params, allow_redirects=True
                )
                if response.status == 401 and attempt == 1:
                    response.release()
                    self.auth.forget(scope)
                    continue
                break
            try:
                if response.status == 404:
                    raise UpstreamNotFound(f"{method} {path}")
                if response.status == 429:
                    wait = response.headers.get("Retry-After", "")
                    raise UpstreamRateLimited(
                        f"upstream rate-limits {method} /v2/{path}",
                        wait if wait.isascii() and wait.isdigit() else "60",
                    )
                if response.status != 200:
                    raise UpstreamUnavailable(
                        f"upstream answered {response.status} to {method} /v2/{path}"
                    )
                yield response
            finally:
                response.release()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise UpstreamUnavailable(
                f"upstream {self.url} failed: {exc or type(exc).__name__}"
            ) from None

    async def manifest(self, name: str, reference: str, *, head: bool) -> RemoteManifest:
        """The manifest ``reference`` names (HEAD: digest and type only, no body)."""
        method = "HEAD" if head else "GET"
        async with self._request(
            method,
            f"{name}/manifests/{reference}",
            _pull(name),
            headers={"Accept": MANIFEST_ACCEPT},
        ) as response:
            digest = _header_digest(response.headers.get("Docker-Content-Digest"))
            media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
            body = b"" if head else await _read_limited(response)
        return RemoteManifest(digest, media_type, body)

    async def blob_size(self, name: str, digest: Digest) -> int:
        """The blob's size, from a ``HEAD`` (nothing downloaded)."""
        async with self._request("HEAD", f"{name}/blobs/{digest}", _pull(name)) as response:
            size = response.content_length
        if size is None:
            raise UpstreamUnavailable(f"the upstream names no size for blob {digest}")
        return size

    @contextlib.asynccontextmanager
    async def blob(self, name: str, digest: Digest) -> AsyncIterator[RemoteBlob]:
        """The blob's bytes, streamed (redirects to a CDN followed)."""
        async with self._request("GET", f"{name}/blobs/{digest}", _pull(name)) as response:
            yield RemoteBlob(response.content_length, _stream(response))

    async def tags(self, name: str, n: int | None, last: str) -> Page:
        query = {**({"n": str(n)} if n is not None else {}), **({"last": last} if last else {})}
        async with self._request("GET", f"{name}/tags/list", _pull(name), params=query) as r:
            body = await r.json(content_type=None)
            more = _has_next(r)
        tags = body.get("tags") if isinstance(body, dict) else None
        return Page([t for t in tags or [] if isinstance(t, str)], more)

    async def catalog(self, n: int, last: str) -> Page:
        query = {"n": str(n), **({"last": last} if last else {})}
        async with self._request("GET", "_catalog", "registry:catalog:*", params=query) as response:
            body = await response.json(content_type=None)
            more = _has_next(response)
        names = body.get("repositories") if isinstance(body, dict) else None
        return Page([r for r in names or [] if isinstance(r, str)], more)


def _pull(name: str) -> str:
    return f"repository:{name}:pull"


def _header_digest(value: str | None) -> Digest | None:
    if not value:
        return None
    try:
        return Digest.parse(value.strip())
    except InvalidDigest:
        return None


def _has_next(response: aiohttp.ClientResponse) -> bool:
    link = response.headers.get("Link", "")
    if 'rel="next"' not in link:
        return False
    target = link.split(">", 1)[0].lstrip("<")
    return bool(parse_qs(urlsplit(target).query).get("last"))


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 << 10):
        size += len(chunk)
        if size > MAX_MANIFEST_SIZE:
            raise UpstreamUnavailable(f"upstream manifest exceeds {MAX_MANIFEST_SIZE} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _stream(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The body in chunks of about :data:`CHUNK` (the socket hands over smaller pieces)."""
    pending: list[bytes] = []
    gathered = 0
    try:
        async for piece in response.content.iter_chunked(CHUNK):
            pending.append(piece)
            gathered += len(piece)
            if gathered >= CHUNK:
                yield b"".join(pending)
                pending.clear()
                gathered = 0
        if pending:
            yield b"".join(pending)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise UpstreamUnavailable(f"upstream blob download failed: {exc}") from None
