"""Upload claims: at most one running writer per offset; finished and lost claims judged apart."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from dockyard.storage.drivers.base import CheckedDriver
from dockyard.storage.drivers.inmemory import InMemoryDriver
from dockyard.storage.uploadclaims import _HOST, LEASE, ChunkClaim, OffsetBusy

CLAIMS = "/docker/registry/v2/repositories/r/_uploads/u/claims/1024"


def stamp(**fields: object) -> bytes:
    return json.dumps({"time": time.time(), "host": _HOST, "pid": os.getpid(), **fields}).encode()


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_a_running_claim_refuses_the_second_and_finishing_frees_the_offset() -> None:
    async def run() -> None:
        driver = CheckedDriver(InMemoryDriver())
        first = ChunkClaim(driver, CLAIMS)
        assert await first.acquire() is False
        with pytest.raises(OffsetBusy):
            await ChunkClaim(driver, CLAIMS).acquire()
        assert await driver.list(CLAIMS) == [first.path]  # the refused one withdrew
        await first.finish()
        second = ChunkClaim(driver, CLAIMS)
        assert await second.acquire() is False
        await second.finish()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("left", "lost"),
    [
        pytest.param(lambda: stamp(), False, id="this-process-finished"),
        pytest.param(lambda: stamp(pid=dead_pid()), True, id="process-gone"),
        pytest.param(lambda: stamp(host="elsewhere/1", time=time.time() - LEASE - 1), True,
                     id="lease-out"),
        pytest.param(lambda: b"not json", True, id="unreadable"),
    ],
)
def test_a_claim_left_behind_never_blocks(left: Callable[[], bytes], lost: bool) -> None:
    """Left by a finished request of ours: ignored; by a lost one: ignored, but taints."""
    async def run() -> None:
        driver = CheckedDriver(InMemoryDriver())
        await driver.put_content(f"{CLAIMS}/leftover", left())
        claim = ChunkClaim(driver, CLAIMS)
        assert await claim.acquire() is lost
        await claim.finish()

    asyncio.run(run())


def test_a_fresh_claim_from_another_host_blocks() -> None:
    async def run() -> None:
        driver = CheckedDriver(InMemoryDriver())
        await driver.put_content(f"{CLAIMS}/other", stamp(host="elsewhere/1", pid=1))
        with pytest.raises(OffsetBusy):
            await ChunkClaim(driver, CLAIMS).acquire()

    asyncio.run(run())


def test_an_upload_removed_while_claiming_is_no_storage_fault() -> None:
    """The final PUT (or a cancel) removes the upload between this claim's stamp and its
    look at the others: no claim is left to judge, and the caller finds the upload gone
    (on S3 the listing of the removed prefix raised PathNotFound: a 503)."""

    class RemovedMeanwhile(InMemoryDriver):
        async def list(self, path: str) -> list[str]:
            await self.delete("/docker/registry/v2/repositories/r/_uploads/u")
            return await super().list(path)

    async def run() -> None:
        claim = ChunkClaim(CheckedDriver(RemovedMeanwhile()), CLAIMS)
        assert await claim.acquire() is False
        await claim.finish()

    asyncio.run(run())
