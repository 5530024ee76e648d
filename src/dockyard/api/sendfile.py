"""Zero-copy file responses on any event loop (uvloop has no ``loop.sendfile``).

``os.sendfile`` runs in a worker thread on a *duplicate* of the connection's
socket: if the peer goes away and the transport closes its descriptor, ours
still names the dead socket (EPIPE), never a new connection that reused the
number.
"""

from __future__ import annotations

import asyncio
import os
import select
from typing import BinaryIO

from aiohttp import web

__all__ = ["send_file", "write_unless_stalled"]

_CHUNK = 64 << 20


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
    f: BinaryIO,
    offset: int,
    count: int,
    stall: float,
) -> None:
    """Prepare ``response`` and send ``count`` bytes of ``f`` from ``offset``; give up
    when the client reads nothing for ``stall`` seconds."""
    await response.prepare(request)
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if transport is None or sock is None or transport.get_extra_info("sslcontext") is not None:
        await _copy(response, f, offset, count, stall)
    else:
        # Headers must be on the wire before bytes go around the transport.
        while transport.get_write_buffer_size():
            if transport.is_closing():
                raise ConnectionResetError("connection lost")
            await asyncio.sleep(0.001)
        fd = os.dup(sock.fileno())
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, _sendfile_all, fd, f.fileno(), offset, count, stall
            )
        finally:
            os.close(fd)
    await response.write_eof()


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
    response: web.StreamResponse, f: BinaryIO, offset: int, count: int, stall: float
) -> None:
    """The fallback for TLS: read in a thread, write through the transport."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, f.seek, offset)
    while count > 0:
        chunk = await loop.run_in_executor(None, f.read, min(count, 1 << 20))
        if not chunk:
            raise ConnectionResetError("file ended early")
        await write_unless_stalled(response, chunk, stall)
        count -= len(chunk)
