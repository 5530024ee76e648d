"""The lock the worker processes of an instance share (dockyard.workerlock)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from dockyard.workerlock import WorkerLock


def _held_in_child(lock: WorkerLock, seconds: float) -> tuple[int, int]:
    """Fork a process that takes ``lock``, says so on a pipe, then sleeps ``seconds``
    while holding it; its pid and the read end of the pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            async def hold() -> None:
                async with lock:
                    os.write(write_end, b"x")
                    await asyncio.sleep(seconds)

            asyncio.run(hold())
        finally:
            os._exit(0)
    os.close(write_end)
    assert os.read(read_end, 1) == b"x"  # the child holds the lock
    return pid, read_end


def _time_to_acquire(lock: WorkerLock) -> float:
    async def take() -> float:
        start = time.monotonic()
        async with lock:
            return time.monotonic() - start

    return asyncio.run(take())


def test_another_process_waits_for_the_holder() -> None:
    lock = WorkerLock()
    pid, pipe = _held_in_child(lock, 0.5)
    try:
        waited = _time_to_acquire(lock)
    finally:
        os.waitpid(pid, 0)
        os.close(pipe)
    assert waited >= 0.3  # the child held it about 0.5 s after it said so


def test_a_killed_holder_releases_the_lock() -> None:
    lock = WorkerLock()
    pid, pipe = _held_in_child(lock, 60.0)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(pipe)
    assert _time_to_acquire(lock) < 5.0  # not the 60 s the child would have held it


def test_coroutines_of_one_process_take_turns() -> None:
    lock = WorkerLock()
    inside: list[int] = []
    most = 0

    async def section() -> None:
        nonlocal most
        async with lock:
            inside.append(1)
            most = max(most, len(inside))
            await asyncio.sleep(0.01)
            inside.pop()

    async def run() -> None:
        await asyncio.gather(*(section() for _ in range(5)))

    asyncio.run(run())
    assert most == 1
