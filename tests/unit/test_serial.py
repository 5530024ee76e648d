"""SerialLane: calls run one at a time, in the order submitted, whatever the waiters do."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from dockyard.serial import SerialLane


def test_calls_run_in_order_one_at_a_time() -> None:
    seen: list[int] = []
    running = threading.Semaphore(1)

    def record(i: int) -> None:
        assert running.acquire(blocking=False), "two calls ran at once"
        time.sleep(0.001)
        seen.append(i)
        running.release()

    async def main() -> None:
        lane = SerialLane()
        await asyncio.gather(*(lane.submit(record, i) for i in range(50)))

    asyncio.run(main())
    assert seen == list(range(50))


def test_a_failed_call_fails_its_future_and_the_next_calls_still_run() -> None:
    seen: list[int] = []

    def fail() -> None:
        raise OSError("disk full")

    async def main() -> None:
        lane = SerialLane()
        first = lane.submit(fail)
        second = lane.submit(seen.append, 2)
        with pytest.raises(OSError, match="disk full"):
            await first
        await second

    asyncio.run(main())
    assert seen == [2]


def test_a_call_whose_waiter_was_cancelled_runs_all_the_same() -> None:
    seen: list[int] = []
    gate = threading.Event()

    async def main() -> None:
        lane = SerialLane()
        blocker = lane.submit(gate.wait)
        cancelled = lane.submit(seen.append, 1)
        last = lane.submit(seen.append, 2)
        cancelled.cancel()
        gate.set()
        await blocker
        await last

    asyncio.run(main())
    assert seen == [1, 2]
