"""Connections spread over the workers that share one listening socket: least connections.

Every worker waits on the same listening socket and the kernel wakes them all for a new
connection; the first to run accepts every connection queued (uvloop accepts until the
queue is empty), so a burst of connections lands on one worker while the others idle
(eight clients pushing images at once: eight connections on one worker, measured).
Here a worker accepts one connection at a time and publishes how many it holds on a
:class:`LoadBoard` that the workers share (memory mapped before the fork). A worker
holding more than another leaves a new connection to the less loaded one for
:data:`DEFER` seconds, and takes it itself only if it is still queued then (the other
one is busy or gone): a connection waits at most that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import mmap
import socket
import ssl

from aiohttp import web

__all__ = ["DEFER", "BalancedSite", "LoadBoard"]

log = logging.getLogger("dockyard.http")

#: Seconds a busier worker leaves a new connection to a less loaded one.
DEFER = 0.002
#: Seconds accepting pauses when the process is out of descriptors (EMFILE, ENFILE).
_PAUSE_WHEN_FULL = 0.1


class LoadBoard:
    """Open connections per worker, in shared memory that forked workers inherit."""

    def __init__(self, count: int) -> None:
        self._memory = mmap.mmap(-1, 8 * count)  # anonymous and MAP_SHARED
        self._slots = memoryview(self._memory).cast("q")

    def publish(self, index: int, connections: int) -> None:
        """Worker ``index`` now holds ``connections`` (one aligned 8-byte store)."""
        self._slots[index] = connections

    def busier(self, index: int) -> bool:
        """Whether another worker holds fewer connections than worker ``index``."""
        slots = self._slots
        mine = slots[index]
        return any(load < mine for i, load in enumerate(slots) if i != index)


class BalancedSite(web.BaseSite):
    """An aiohttp site accepting on a shared socket one connection at a time, deferring
    to less loaded workers (see the module docstring)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        sock: socket.socket,
        board: LoadBoard,
        index: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._sock = sock
        self._board = board
        self._index = index
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deferred: asyncio.TimerHandle | None = None
        self._handshakes: set[asyncio.Task[None]] = set()
        scheme = "https" if ssl_context else "http"
        if sock.family == socket.AF_UNIX:
            self._name = f"{scheme}://unix:{sock.getsockname()}:"
        else:
            host, port = sock.getsockname()[:2]
            self._name = f"{scheme}://{host}:{port}"

    @property
    def name(self) -> str:
        return self._name

    async def start(self) -> None:
        await super().start()
        self._loop = asyncio.get_running_loop()
        self._sock.setblocking(False)
        self._board.publish(self._index, 0)
        self._listen()

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        for task in list(self._handshakes):
            task.cancel()
        self._runner._unreg_site(self)

    def _listen(self) -> None:
        assert self._loop is not None
        self._deferred = None
        self._loop.add_reader(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        assert self._loop is not None
        if self._board.busier(self._index):
            # Stop watching meanwhile: the socket stays readable while the
            # connection is queued, and would wake this loop again and again.
            self._loop.remove_reader(self._sock.fileno())
            self._deferred = self._loop.call_later(DEFER, self._accept_deferred)
            return
        self._accept()

    def _accept_deferred(self) -> None:
        self._listen()
        self._accept()

    def _accept(self) -> None:
        assert self._loop is not None
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it, or the client gave up
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                raise
            log.warning("cannot accept connections: %s", exc.strerror or exc)
            self._loop.remove_reader(self._sock.fileno())
            self._deferred = self._loop.call_later(_PAUSE_WHEN_FULL, self._listen)
            return
        conn.setblocking(False)
        server = self._runner.server
        assert server is not None
        task = self._loop.create_task(self._connect(server, conn))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _connect(self, server: web.Server, conn: socket.socket) -> None:
        assert self._loop is not None
        try:
            await self._loop.connect_accepted_socket(server, conn, ssl=self._ssl_context)
        except OSError as exc:  # ssl.SSLError and TimeoutError too
            # A client that fails its TLS handshake or hangs up: nobody to answer.
            log.debug("connection dropped before it was served: %s", exc)
            with contextlib.suppress(OSError):
                conn.close()
