"""Zero-copy file responses on any event loop (uvloop has no ``loop.sendfile``).

``os.sendfile`` runs on a *duplicate* of the connection's socket: if the peer goes
away and the transport closes its descriptor, ours still names the dead socket
(EPIPE), never a new connection that reused the number. While the pages to send are
in the page cache (:func:`dockyard.nowait.cached_pages`), the first 4 MiB go from the
event loop, the socket's writability awaited there: no thread hop, which cost a blob
GET more CPU than sending a small layer. The rest, and everything from the first chunk
that is not cached on, goes from a worker thread, where waiting for the disk stalls no
other request.
"""

from __future__ import annotations

import asyncio
import os
import select

from aiohttp import web

from dockyard.nowait import cached_pages

__all__ = ["send_file", "write_unless_stalled"]

_CHUNK = 64 << 20
# At most this much per sendfile from the event loop, each checked to be in the page
# cache first: a blob partly out of it goes out from the loop up to the first chunk
# that is not, the rest from a thread.
_CHUNK_CACHED = 1 << 20
# What the loop sends at most: a small blob without a thread hop, the start of a big one
# while a thread takes over (sendfile threads of one worker use both cores; the loop,
# one: with the loop sending every layer, 8 parallel image pulls were slower).
_LOOP_MAX = 4 << 20


async def write_unless_stalled(response: web.StreamResponse, data: bytes, stall: float) -> None:
    """``response.write(data)``; ConnectionAbortedError when the client reads nothing for
    ``stall`` seconds (``http.limits.bodytimeout``), so it cannot hold the handler forever."""
    try:
        async with asyncio.timeout(stall):
            await response.write(data)
    except TimeoutError:
        raise ConnectionAbortedError(f"client read nothing for {stall:g}s") from None


async def send_file(
    request: web.Request,
    response: web.StreamResponse,
    file_fd: int,
    offset: int,
    count: int,
    stall: float,
) -> None:
    """Prepare ``response`` and send ``count`` bytes of the file ``file_fd`` from
    ``offset``; give up when the client reads nothing for ``stall`` seconds."""
    await response.prepare(request)
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if transport is None or sock is None or transport.get_extra_info("sslcontext") is not None:
        await _copy(response, file_fd, offset, count, stall)
    else:
        # Headers must be on the wire before bytes go around the transport.
        while transport.get_write_buffer_size():
            if transport.is_closing():
                raise ConnectionResetError("connection lost")
            await asyncio.sleep(0.001)
        fd = os.dup(sock.fileno())
        try:
            sent = await _send_cached(fd, file_fd, offset, count, stall)
            if sent < count:
                await asyncio.get_running_loop().run_in_executor(
                    None, _sendfile_all, fd, file_fd, offset + sent, count - sent, stall
                )
        finally:
            os.close(fd)
    await response.write_eof()


async def _send_cached(sock_fd: int, file_fd: int, offset: int, count: int, stall: float) -> int:
    """``sendfile`` from the event loop of up to :data:`_LOOP_MAX` bytes while the pages
    to send are in the page cache (no wait for the disk, no thread hop); how many
    bytes went out."""
    sent = 0
    count = min(count, _LOOP_MAX)
    while sent < count:
        n = min(count - sent, _CHUNK_CACHED)
        if not cached_pages(file_fd, offset + sent, n):
            break
        try:
            done = os.sendfile(sock_fd, file_fd, offset + sent, n)
        except BlockingIOError:
            await _writable(sock_fd, stall)
            continue
        if done == 0:
            raise ConnectionResetError("file ended early or connection closed")
        sent += done
        if sent < count:
            # On loopback the socket takes chunk after chunk: let the other
            # connections of this worker have the loop between them.
            await asyncio.sleep(0)
    return sent


async def _writable(fd: int, stall: float) -> None:
    """Wait until the socket ``fd`` takes more; ConnectionAbortedError after ``stall``."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        async with asyncio.timeout(stall):
            await ready
    except TimeoutError:
        raise ConnectionAbortedError(f"client read nothing for {stall:g}s") from None
    finally:
        loop.remove_writer(fd)


def _sendfile_all(sock_fd: int, file_fd: int, offset: int, count: int, stall: float) -> None:
    poller = select.poll()
    poller.register(sock_fd, select.POLLOUT)
    while count > 0:
        try:
            sent = os.sendfile(sock_fd, file_fd, offset, min(count, _CHUNK))
        except BlockingIOError:
            if not poller.poll(int(stall * 1000)):
                raise ConnectionAbortedError(f"client read nothing for {stall:g}s") from None
            continue
        if sent == 0:
            raise ConnectionResetError("file ended early or connection closed")
        offset += sent
        count -= sent


async def _copy(
    response: web.StreamResponse, file_fd: int, offset: int, count: int, stall: float
) -> None:
    """The fallback for TLS: read in a thread, write through the transport."""
    loop = asyncio.get_running_loop()
    while count > 0:
        chunk = await loop.run_in_executor(None, os.pread, file_fd, min(count, 1 << 20), offset)
        if not chunk:
            raise ConnectionResetError("file ended early")
        await write_unless_stalled(response, chunk, stall)
        offset += len(chunk)
        count -= len(chunk)
