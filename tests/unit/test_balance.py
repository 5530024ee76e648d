"""Connections spread over workers sharing one listening socket (:mod:`dockyard.balance`).

Two sites in one event loop stand for two workers: each watches its own descriptor of
the same listening socket, as forked workers do, and they share a :class:`LoadBoard`.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import Callable

from aiohttp import web

from dockyard.balance import BalancedSite, LoadBoard
from dockyard.config import HTTPLimitsConfig
from dockyard.connections import GuardedAppRunner

DEADLINE = 10.0


async def _until(condition: Callable[[], object], what: str) -> None:
    # Polled: the counts are aiohttp's and the board's, with no event to wait on.
    for _ in range(int(DEADLINE / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"waited {DEADLINE}s for {what}")


def _counts(runners: list[GuardedAppRunner]) -> list[int]:
    return [len(r.server.connections) if r.server else 0 for r in runners]


def test_board_tells_the_busier_worker() -> None:
    board = LoadBoard(3)
    assert not board.busier(0)
    board.publish(0, 2)
    board.publish(1, 2)
    board.publish(2, 1)
    assert board.busier(0) and board.busier(1) and not board.busier(2)


def test_connections_go_to_the_least_loaded_worker() -> None:
    """Connections opened one after the other alternate between the two workers, where
    a shared socket alone gives them all to whichever worker wakes first."""

    async def main() -> None:
        async def hello(request: web.Request) -> web.Response:
            return web.Response(text="hello")

        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        board = LoadBoard(2)
        runners = []
        writers = []
        try:
            for index, sock in enumerate((listener, listener.dup())):
                app = web.Application()
                app.router.add_get("/", hello)
                runner = GuardedAppRunner(
                    app, HTTPLimitsConfig(), access_log=None, shutdown_timeout=1.0,
                    on_count=functools.partial(board.publish, index),
                )
                await runner.setup()
                runners.append(runner)
                await BalancedSite(runner, sock, board, index).start()
            for opened in range(1, 5):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writers.append(writer)
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                async with asyncio.timeout(DEADLINE):
                    assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
                await _until(lambda: sum(_counts(runners)) == len(writers),
                             f"{opened} connections")
            assert _counts(runners) == [2, 2], _counts(runners)
            for writer in writers:
                writer.close()
            await _until(lambda: not board.busier(0) and not board.busier(1),
                         "the board to see the connections closed")
        finally:
            for runner in runners:
                await runner.cleanup()
            listener.close()

    asyncio.run(main())
