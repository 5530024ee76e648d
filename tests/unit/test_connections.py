"""The aiohttp internals :mod:`dockyard.connections` relies on, checked by name.

aiohttp has no public way to choose the connection class, so the module overrides
``AppRunner._make_server`` and reads ``RequestHandler._waiter`` (its docstring says why).
An aiohttp release that renames or reshapes either fails here, saying which, instead of
leaving a server that silently keeps no limits; pyproject pins the tested minor release.
The behaviour itself (caps, timeouts, 431, pipelining) is tested against real server
processes in ``tests/api/test_hostile.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
from collections.abc import Callable

from aiohttp import web

from dockyard.config import HTTPLimitsConfig
from dockyard.connections import GuardedAppRunner, _Handler, _Receiver, _Server

#: Upper bound on any wait below, so a broken hook fails instead of hanging.
DEADLINE = 10.0


def test_apprunner_still_has_the_private_hook() -> None:
    hook = getattr(web.AppRunner, "_make_server", None)
    assert hook is not None, "aiohttp removed AppRunner._make_server: see dockyard.connections"
    assert inspect.iscoroutinefunction(hook), "AppRunner._make_server is no longer a coroutine"
    assert list(inspect.signature(hook).parameters) == ["self"], inspect.signature(hook)


async def _until(condition: Callable[[], object], what: str) -> None:
    # Polled: the state is aiohttp's, with no event to wait on.
    for _ in range(int(DEADLINE / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"waited {DEADLINE}s for {what}")


def test_guarded_runner_makes_guarded_connections() -> None:
    """The runner's server and connections are dockyard's; idle and busy are told apart."""

    async def main() -> None:
        entered, release = asyncio.Event(), asyncio.Event()

        async def slow(request: web.Request) -> web.Response:
            entered.set()
            await release.wait()
            return web.Response(text="done")

        app = web.Application()
        app.router.add_get("/", slow)
        limits = HTTPLimitsConfig(max_header_bytes=32768)
        runner = GuardedAppRunner(app, limits, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            server = runner.server
            assert isinstance(server, _Server), f"AppRunner._make_server ignored: {server!r}"
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await _until(lambda: server.connections, "a connection")
            (connection,) = server.connections
            assert isinstance(connection, _Handler), type(connection)
            assert connection.transport is not None
            receiver = connection.transport.get_protocol()
            # The loop reads into the worker's buffer, then hands the handler bytes.
            assert isinstance(receiver, _Receiver), type(receiver)
            assert isinstance(receiver, asyncio.BufferedProtocol)
            assert receiver.handler is connection
            assert hasattr(connection, "_waiter"), "aiohttp removed RequestHandler._waiter"
            await _until(connection.waiting, "the new connection to wait for a request")
            # A header past aiohttp's 8 KiB default: the runner's settings reach it.
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
            await writer.drain()
            async with asyncio.timeout(DEADLINE):
                await entered.wait()
            assert not connection.waiting(), "a connection inside a request counts as idle"
            release.set()
            async with asyncio.timeout(DEADLINE):
                head = await reader.readuntil(b"\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            await _until(connection.waiting, "the connection to wait for its next request")
            writer.close()
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_body_of_known_length_is_fed_unsearched() -> None:
    """After a head with Content-Length, its body's bytes are not searched for the end of
    a head (``_request_count`` and ``_messages`` still tell the body's length), even
    when they look like one; the request pipelined after the body is still answered."""

    async def main() -> None:
        async def echo(request: web.Request) -> web.Response:
            return web.Response(text=str(len(await request.read())))

        app = web.Application()
        app.router.add_post("/", echo)
        app.router.add_get("/", echo)
        runner = GuardedAppRunner(app, HTTPLimitsConfig(), access_log=None,
                                  shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            server = runner.server
            assert isinstance(server, _Server)
            reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
            body = b"x\r\n\r\nGET / HTTP/1.1\r\n\r\n" * 1000
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
                         + body[:100])
            await writer.drain()
            await _until(lambda: server.connections, "a connection")
            (connection,) = server.connections
            assert isinstance(connection, _Handler)
            await _until(lambda: connection._body_left == len(body) - 100,
                         "the body's length to be known")
            writer.write(body[100:] + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            answers = []
            async with asyncio.timeout(DEADLINE):
                while len(answers) < 2:
                    head = await reader.readuntil(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 200"), head
                    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                    answers.append(await reader.readexactly(length))
            assert answers == [str(len(body)).encode(), b"0"]
            writer.close()
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_bodies_larger_than_the_read_buffer_arrive_whole() -> None:
    """Reads share one buffer per server: bodies spanning many reads, on two connections
    at once, reach their handlers byte for byte."""

    async def main() -> None:
        async def digest(request: web.Request) -> web.Response:
            return web.Response(text=hashlib.sha256(await request.read()).hexdigest())

        app = web.Application(client_max_size=16 << 20)
        app.router.add_post("/", digest)
        runner = GuardedAppRunner(app, HTTPLimitsConfig(), access_log=None,
                                  shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]

            async def post(body: bytes) -> bytes:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                             % len(body) + body)
                await writer.drain()
                async with asyncio.timeout(DEADLINE):
                    head = await reader.readuntil(b"\r\n\r\n")
                    answer = await reader.readexactly(64)
                writer.close()
                assert head.startswith(b"HTTP/1.1 200"), head
                return answer

            bodies = [os.urandom(3 << 20), os.urandom((5 << 20) + 7)]
            answers = await asyncio.gather(*(post(b) for b in bodies))
            assert answers == [hashlib.sha256(b).hexdigest().encode() for b in bodies]
        finally:
            await runner.cleanup()

    asyncio.run(main())
