"""Calls that must run in order, off the event loop, without a round trip per call."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["SerialLane"]


class SerialLane:
    """Runs submitted calls one at a time, in the order submitted, in a worker thread.

    The thread that finishes a call goes straight on to the next one queued, instead of
    waiting for the event loop to hand it over (a wake-up of the loop, the GIL, and a
    wake-up of a pool thread per call): a stream hashed or written in batches keeps its
    thread busy while the loop receives the next batch. The caller bounds how many
    calls it queues (and so the memory they hold).
    """

    def __init__(self, executor: concurrent.futures.Executor | None = None) -> None:
        self._executor = executor
        self._queue: deque[tuple[Callable[..., None], tuple[Any, ...],
                                 concurrent.futures.Future[None]]] = deque()
        self._lock = threading.Lock()
        self._busy = False

    def submit(self, fn: Callable[..., None], *args: Any) -> asyncio.Future[None]:
        """Queue ``fn(*args)``; the future (on the running loop) is done once it ran."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._lock:
            self._queue.append((fn, args, done))
            start, self._busy = not self._busy, True
        if start:
            asyncio.get_running_loop().run_in_executor(self._executor, self._drain)
        return asyncio.wrap_future(done)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._busy = False
                    return
                fn, args, done = self._queue.popleft()
            # A call whose waiter was cancelled runs all the same: later ones build on it.
            waited = done.set_running_or_notify_cancel()
            try:
                fn(*args)
            except BaseException as exc:
                if waited:
                    done.set_exception(exc)
            else:
                if waited:
                    done.set_result(None)
