"""A lock shared by the worker processes of one instance, for short critical sections.

It is a POSIX record lock (``lockf``) on an unlinked file the supervisor opens before
forking: record locks belong to a process, not to the descriptor the workers inherit,
so they exclude each other, and the kernel releases a lock whose holder dies (a worker
killed while holding it blocks nobody). Record locks do not exclude coroutines of one
process, so an :class:`asyncio.Lock` does that in front of it. Acquiring never blocks the
event loop: it tries without waiting and pauses between tries.
"""

from __future__ import annotations

import asyncio
import fcntl
import tempfile
from types import TracebackType

__all__ = ["WorkerLock"]

#: Seconds between tries while another worker holds the lock.
_RETRY = 0.01


class WorkerLock:
    """``async with lock:`` holds it against every other worker and coroutine."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - open for the process's life
        self._local: asyncio.Lock | None = None  # made in the worker's own event loop

    async def __aenter__(self) -> None:
        if self._local is None:
            self._local = asyncio.Lock()
        await self._local.acquire()
        try:
            while True:
                try:
                    fcntl.lockf(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except (BlockingIOError, PermissionError):  # EAGAIN or EACCES: held
                    await asyncio.sleep(_RETRY)
        except BaseException:
            self._local.release()
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fcntl.lockf(self._file.fileno(), fcntl.LOCK_UN)
        assert self._local is not None
        self._local.release()
