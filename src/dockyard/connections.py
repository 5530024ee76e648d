"""HTTP connections that hostile or slow clients cannot exhaust (``http.limits``).

aiohttp parses requests and keeps connections; this module sets its knobs and adds
what it lacks:

* header size: a request line or header field up to ``maxheaderbytes`` (real bearer
  tokens carry certificate chains past aiohttp's 8 KiB); beyond it, or past
  :data:`MAX_HEADERS` fields, 431 instead of aiohttp's 400;
* header timeout: aiohttp's keep-alive timer, armed when a connection opens and after
  each response, closes a connection still without a complete request head; so a
  client sending its headers a byte a second, or never, is cut off after
  ``headertimeout`` (the body's stall timeout is :data:`dockyard.api.params`'s);
* connection cap: past ``maxconnections`` the oldest connection waiting for a request
  is closed to make room; when every connection is busy the new one gets 503;
* malformed framing (bad ``Content-Length``, junk after a body, oversized headers) is
  the client's fault: a short plain-text 4xx and one debug line, never a traceback;
  so is a client hanging up mid-response;
* requests pipelined before junk in the same packet are answered before its 400
  (aiohttp alone drops them with the packet);
* what a connection's requests share (scheme, peer) is in a context variable
  (:data:`dockyard.clientaddr.CONNECTION`), set once for them all;
* the event loop reads into a 1 MiB buffer of the worker's (:class:`_Receiver`), not
  uvloop's 256 KiB one: an upload's body comes in fewer, larger pieces.

aiohttp offers no public way to choose the connection class, so a few private names
are used, here only, and ``tests/unit/test_connections.py`` fails by name when an
aiohttp release changes them (pyproject pins the tested minor release):
``AppRunner._make_server`` (overridden to make the server ours),
``RequestHandler._waiter`` (read to tell an idle connection, as aiohttp's keep-alive
timer does), and ``RequestHandler._request_count`` and ``_messages`` (read to learn the
length of the body that follows a request head, so that the body is not searched for
the next head). Everything else is public: :class:`aiohttp.web.Server` and
:class:`aiohttp.web.RequestHandler`, their ``connection_made``, ``start``,
``data_received``, ``handle_error`` and ``force_close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http import RawRequestMessage
from aiohttp.http_exceptions import (
    BadHttpMessage,
    ContentLengthError,
    HttpProcessingError,
    LineTooLong,
)
from aiohttp.streams import StreamReader
from aiohttp.web import BaseRequest, RequestHandler
from aiohttp.web_protocol import _ErrInfo

from dockyard.clientaddr import CONNECTION
from dockyard.config import HTTPLimitsConfig

__all__ = ["MAX_HEADERS", "GuardedAppRunner"]

log = logging.getLogger("dockyard.http")

#: Header fields a request may carry (aiohttp's default; Go allows as many as fit).
MAX_HEADERS = 128

_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: 28\r\n\r\n"
    b"too many connections, retry\n"
)
#: SO_LINGER on, zero seconds: close() resets the connection instead of draining it.
_RESET = struct.pack("ii", 1, 0)
#: How often the connection-cap warning may repeat, in seconds.
_WARN_EVERY = 60.0
#: The most one read takes off a socket (uvloop's own buffer holds 256 KiB).
_READ_SIZE = 1 << 20


class _Handler(RequestHandler):
    """One connection: aiohttp's, plus the cap and quiet framing errors."""

    def __init__(self, manager: _Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        # Bytes of the body of the request last parsed that have not arrived yet.
        self._body_left = 0
        self._body: StreamReader | None = None  # the body of the request last parsed

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if not self._guard.admit(self):
            transport.write(_REFUSED)
            self.force_close()

    async def start(self) -> None:
        # Each request's task copies this task's context: what the requests of the
        # connection share is set once here (scheme and peer: per request, each was a
        # Python call when notifications ask for them).
        CONNECTION.set(("https" if self.ssl_context else "http", self.peername))
        await super().start()

    def data_received(self, data: bytes) -> None:
        # aiohttp parses a whole packet in one go and, when any part of it is malformed,
        # drops the requests parsed before the fault with it: a valid request pipelined
        # with junk got only the 400. Fed up to the end of each request head in turn
        # (as if the packet had been split there, which TCP may do anyway), the requests
        # before the fault are queued, hence answered, before it is met.
        # The bytes of a body whose length is known are fed as they come, never searched
        # for a head's end: that search ran at about the speed of sha256, on every byte
        # of every upload.
        start, size = 0, len(data)
        while True:
            if self._body_left:
                take = min(self._body_left, size - start)
                self._body_left -= take
                if start + take == size:
                    break
                super().data_received(data[start : start + take])
                start += take
                continue
            end = data.find(b"\r\n\r\n", start) + 4
            if end == 3 or end >= size:  # no head ends here, or nothing follows it
                break
            self._feed(data[start:end])
            start = end
        self._feed(data[start:])

    def _feed(self, data: bytes) -> None:
        """Parse ``data``; when it completed a request head, note how much of that
        request's body is still to come (0 when unknown: chunked, compressed, or a
        parser holding requests back), so that those bytes are not searched."""
        parsed = self._request_count
        super().data_received(data)
        if self._request_count == parsed or not self._messages:
            return
        message, payload = self._messages[-1]
        if isinstance(message, _ErrInfo):
            self._end_body(message.exc)
            return
        self._body = payload if isinstance(payload, StreamReader) else None
        if not isinstance(message, RawRequestMessage) or message.chunked or message.compression:
            return
        length = message.headers.get("Content-Length", "")
        if length.isdigit() and isinstance(payload, StreamReader):
            self._body_left = max(int(length) - payload.total_bytes, 0)

    def _end_body(self, error: BaseException) -> None:
        """The body of the request last parsed cannot go on (a framing error, or the
        client closed its side): its handler's next read raises ``error`` (a 400), and
        aiohttp's reading of an unread rest, after the handler answered, ends. aiohttp
        tells the body neither: the handler waited for the rest until
        ``http.limits.bodytimeout``, and the reading of a body nobody read lasted 10 s."""
        body, self._body = self._body, None
        if body is not None and not body.is_eof():
            body.set_exception(error)
            body.feed_eof()  # reads raise the error first; the discarding stops

    def eof_received(self) -> bool:  # type: ignore[override]
        """The client closed its side of the connection. Idle, the connection closes,
        as aiohttp's does. Otherwise it stays open for the answers to what came (Go's
        server does the same; aiohttp's closed at once, and they were never sent), then
        closes; a body cut short ends in an error its handler answers (400)."""
        body = self._body
        if (body is None or body.is_eof()) and not self._messages and self.waiting():
            return False
        self._end_body(ContentLengthError(
            "the client closed the connection before the end of the body"))
        if not self._messages:
            self.close()  # aiohttp closes it once the request in hand is answered
        # (Requests queued behind it are answered too; the connection then closes when
        # its keep-alive ends, as an idle one: aiohttp would drop them after a close().)
        return True

    def waiting(self) -> bool:
        """Between requests or still reading a request head: nothing is lost by closing.

        The same test aiohttp's keep-alive timer makes before closing a connection.
        """
        waiter = self._waiter
        return waiter is not None and not waiter.done()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, ConnectionError):
            # The client hung up or stopped reading mid-response: aiohttp would log a
            # traceback; there is nobody to answer.
            log.debug("%s %s: client went away: %s", request.method, request.path, exc)
            if self.transport is not None:
                # A reset, not close(): that would wait for unsent data (in the kernel
                # too) that a stalled client never reads.
                sock = self.transport.get_extra_info("socket")
                with contextlib.suppress(OSError, AttributeError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                self.transport.abort()
            raise ConnectionResetError("client went away")
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        # aiohttp logs these with a traceback and echoes the offending bytes back.
        if isinstance(exc, LineTooLong) or (
            isinstance(exc, BadHttpMessage) and "Too many headers" in exc.message
        ):
            status, reason = 431, "request header fields too large"
        else:
            status, reason = 400, "malformed HTTP request"
        log.debug("%s from %s: %s", reason, request.remote, str(exc.message)[:200])
        response = web.Response(status=status, text=f"{status} {reason}\n")
        response.force_close()
        return response


class _Receiver(asyncio.BufferedProtocol):
    """What the event loop sees of a connection: reads land in the worker's one buffer
    (``shared``) and go to ``handler`` as ``bytes``.

    aiohttp's handler is an :class:`asyncio.Protocol`, which uvloop feeds from a buffer
    of 256 KiB; reading into a larger one of ours costs the same one copy and hands an
    upload's body on in fewer, larger pieces when the socket holds more (each piece is
    a pass through the parser, the body stream and the hash and write calls).
    """

    __slots__ = ("_shared", "handler")

    def __init__(self, handler: _Handler, shared: memoryview) -> None:
        self.handler = handler
        self._shared = shared

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.handler.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._shared

    def buffer_updated(self, nbytes: int) -> None:
        # Copied out before the loop reads again: every connection reads into the buffer.
        self.handler.data_received(self._shared[:nbytes].tobytes())

    def eof_received(self) -> bool:
        return self.handler.eof_received()


class _Server(web.Server):
    """aiohttp's connection factory: :class:`_Handler` connections under a cap, each read
    through a :class:`_Receiver`."""

    def __init__(
        self,
        handler: Any,
        *,
        request_factory: Any,
        handler_cancellation: bool,
        max_connections: int,
        handler_kwargs: dict[str, Any],
        on_count: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(
            handler, request_factory=request_factory, handler_cancellation=handler_cancellation
        )
        self._event_loop = asyncio.get_running_loop()
        self._handler_kwargs = handler_kwargs
        self._max_connections = max_connections
        self._warned = 0.0
        self._on_count = on_count
        self._open = 0
        self._read_buffer = memoryview(bytearray(_READ_SIZE))

    def __call__(self) -> _Receiver:  # type: ignore[override]
        return _Receiver(
            _Handler(self, loop=self._event_loop, **self._handler_kwargs), self._read_buffer
        )

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._count(1)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        # Counted now, though aiohttp forgets the connection only once its handler ends.
        if handler in self._connections:
            self._count(-1)
        super().connection_lost(handler, exc)

    def _count(self, change: int) -> None:
        self._open += change
        if self._on_count is not None:
            self._on_count(self._open)

    def admit(self, handler: _Handler) -> bool:
        """Room for ``handler`` (already counted): evict the oldest waiting connection
        when over the cap; False when every other connection is busy."""
        connections = self.connections
        if len(connections) <= self._max_connections:
            return True
        idle = next(
            (c for c in connections if c is not handler and isinstance(c, _Handler)
             and c.waiting()),
            None,
        )
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY:
            self._warned = now
            log.warning(
                "%d connections (http.limits.maxconnections): %s", self._max_connections,
                "closing the oldest idle ones" if idle else "refusing new ones with 503",
            )
        if idle is None:
            return False
        idle.force_close()
        return True


class GuardedAppRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose connections keep ``http.limits``.

    ``access_log`` None logs no requests; signals are left to the caller; ``on_count``
    is told the number of open connections whenever it changes.
    """

    def __init__(
        self,
        app: web.Application,
        limits: HTTPLimitsConfig,
        *,
        access_log: logging.Logger | None,
        shutdown_timeout: float,
        access_log_class: type[AbstractAccessLogger] | None = None,
        on_count: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(app, handle_signals=False, shutdown_timeout=shutdown_timeout)
        self._max_connections = limits.max_connections
        self._on_count = on_count
        # What each connection is made with (aiohttp's defaults for everything else).
        self._handler_kwargs: dict[str, Any] = {
            "keepalive_timeout": limits.header_timeout,
            "max_line_size": limits.max_header_bytes,
            "max_field_size": limits.max_header_bytes,
            "max_headers": MAX_HEADERS,
            "access_log": access_log,
        }
        if access_log_class is not None:
            self._handler_kwargs["access_log_class"] = access_log_class

    async def _make_server(self) -> web.Server:
        # aiohttp's own server for the application (started and frozen), remade to make
        # our connections: the one private hook (see the module docstring).
        plain = await super()._make_server()
        return _Server(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            max_connections=self._max_connections,
            handler_kwargs=self._handler_kwargs,
            on_count=self._on_count,
        )
