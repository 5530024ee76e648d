"""``/v2/<name>/blobs/<digest>``: fetch, stat and delete blobs."""

from __future__ import annotations

import asyncio
import logging
import os
import re

from aiohttp import web

from dockyard.api.context import context
from dockyard.api.errors import ErrorCode, RegistryError
from dockyard.api.params import etag_matches, parse_count, parse_digest, repository
from dockyard.api.sendfile import send_file, write_unless_stalled
from dockyard.clientaddr import CLIENT_IP, remote_ip
from dockyard.errors import BlobUnknown, RegistryFault, StorageError
from dockyard.nowait import open_cached, read_cached
from dockyard.registry.namespace import BlobContent

__all__ = ["delete_blob", "get_blob"]

log = logging.getLogger("dockyard.api")

CACHE_CONTROL = "max-age=31536000"
SMALL_BODY = 64 << 10
"""Bodies up to this size are read whole and written by the event loop, not sendfile'd."""
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single satisfiable range ``(offset, count)``; None to send everything.

    Like Go's ``http.ServeContent``: malformed or unsatisfiable ranges are 416;
    several ranges are answered with the whole blob (a server may ignore Range).
    """
    if header is None:
        return None
    if "," in header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise _unsatisfiable(size)
    # Numbers past MAX_COUNT are refused as Go's strconv.ParseInt refuses them: 416.
    first, last = parse_count(match.group(1)), parse_count(match.group(2))
    if match.group(1) == "":
        count = min(last, size) if last is not None else 0
        if count == 0:
            raise _unsatisfiable(size)
        return size - count, count
    if first is None or (match.group(2) and last is None):
        raise _unsatisfiable(size)
    end = min(last, size - 1) if last is not None else size - 1
    if first >= size or end < first:
        raise _unsatisfiable(size)
    return first, end - first + 1


def _unsatisfiable(size: int) -> RegistryError:
    return RegistryError(
        ErrorCode.RANGE_INVALID,
        f"range not satisfiable for a blob of {size} bytes",
        headers={"Content-Range": f"bytes */{size}"},
    )


async def get_blob(request: web.Request) -> web.StreamResponse:
    """GET and HEAD: the blob's bytes (or a redirect to the backend), ranges honoured."""
    repo = repository(request)
    digest = parse_digest(request.match_info["digest"])
    # A HEAD needs the descriptor only (a pull-through cache asks its upstream's HEAD).
    content = await repo.open_blob(digest) if request.method == "GET" else None
    descriptor = content.descriptor if content else await repo.stat_blob(digest)
    size = descriptor.size
    etag = f'"{digest}"'
    headers = {
        "Docker-Content-Digest": str(digest),
        "ETag": etag,
        "Cache-Control": CACHE_CONTROL,
        "Content-Type": descriptor.media_type,
        "Accept-Ranges": "bytes",
    }
    if etag_matches(request, digest):
        return web.Response(status=304, headers=headers)
    if content is not None:
        # Storage middleware may redirect by the client's address (cloudfront ipfilteredby).
        client = CLIENT_IP.set(remote_ip(request.headers, request.remote))
        try:
            url = await content.redirect_url(request.method)
        finally:
            CLIENT_IP.reset(client)
        if url is not None:
            raise web.HTTPTemporaryRedirect(url, headers={"Docker-Content-Digest": str(digest)})
    byte_range = _byte_range(request.headers.get("Range"), size)
    offset, count = byte_range if byte_range else (0, size)
    response = web.StreamResponse(status=206 if byte_range else 200, headers=headers)
    response.content_length = count
    if byte_range:
        response.headers["Content-Range"] = f"bytes {offset}-{offset + count - 1}/{size}"
    if content is None or count == 0:
        await response.prepare(request)
        await response.write_eof()
        return response
    await _send(request, response, content, offset, count)
    return response


async def _send(
    request: web.Request,
    response: web.StreamResponse,
    content: BlobContent,
    offset: int,
    count: int,
) -> None:
    stall = context(request).body_timeout
    path = content.local_path()
    if path is not None and count <= SMALL_BODY:
        # Read whole and written by the loop: a config blob or a signature reaches the
        # client sooner than by sendfile; from the caches without a thread hop.
        data = read_cached(path, offset, count)
        if data is None or len(data) != count:
            try:
                data = await asyncio.to_thread(_read_small, path, offset, count)
            except FileNotFoundError:
                raise BlobUnknown(str(content.descriptor.digest)) from None
        await response.prepare(request)
        await write_unless_stalled(response, data, stall)
        await response.write_eof()
        return
    if path is not None:
        fd = open_cached(path)
        if fd is None:
            try:
                fd = await asyncio.to_thread(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise BlobUnknown(str(content.descriptor.digest)) from None
        try:
            await send_file(request, response, fd, offset, count, stall)
        finally:
            os.close(fd)
        return
    # The first chunk is fetched before the headers go out, so a backend that
    # fails right away still gets the client a 503 rather than a broken stream.
    chunks = aiter(content.reader(offset))
    first = await anext(chunks, b"")
    await response.prepare(request)
    remaining = count
    chunk = first
    while chunk and remaining > 0:
        piece = chunk[:remaining]
        await write_unless_stalled(response, piece, stall)
        remaining -= len(piece)
        try:
            chunk = await anext(chunks, b"") if remaining > 0 else b""
        except (RegistryFault, StorageError) as exc:
            # The headers are gone: the only honest answer left is a broken-off body.
            log.warning("%s %s broken off after the headers: %s", request.method, request.path, exc)
            raise ConnectionAbortedError(str(exc)) from None
    if remaining:
        raise ConnectionAbortedError(f"blob {content.descriptor.digest} ended {remaining} early")
    await response.write_eof()


def _read_small(path: str, offset: int, count: int) -> bytes:
    """``count`` bytes of the file at ``path`` from ``offset`` (a short file, which only a
    damaged store has, breaks the connection off as a short sendfile does)."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(count)
    if len(data) != count:
        raise ConnectionAbortedError(f"{path} ended {count - len(data)} bytes early")
    return data


async def delete_blob(request: web.Request) -> web.Response:
    repo = repository(request)
    digest = parse_digest(request.match_info["digest"])
    await repo.delete_blob(digest)
    return web.Response(status=202, headers={"Content-Length": "0"})
