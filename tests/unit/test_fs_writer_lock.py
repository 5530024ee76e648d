"""One writer at a time per file on the filesystem driver, and rollback under the lock.

Without it, a client that drops a chunk and resumes at once on a new connection can
have the old request's last write, or its clean-up, land on top of the new chunk.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from dockyard.storage.drivers.base import CheckedDriver, roll_back
from dockyard.storage.drivers.filesystem import FilesystemDriver

PATH = "/docker/registry/v2/repositories/a/_uploads/u/data"


def test_second_writer_waits_for_the_first_to_roll_back(tmp_path: Path) -> None:
    async def scenario() -> bytes:
        driver = CheckedDriver(FilesystemDriver(str(tmp_path)))
        first = await driver.writer(PATH, 0)
        await first.write(b"acknowledged")
        await first.close()
        dropped = await driver.writer(PATH, len(b"acknowledged"))
        await dropped.write(b"half a chunk")
        resumed = asyncio.ensure_future(driver.writer(PATH, len(b"acknowledged")))
        await asyncio.sleep(0.2)
        assert not resumed.done(), "a second writer must wait for the first"
        await roll_back(driver, dropped, PATH, len(b"acknowledged"))
        writer = await asyncio.wait_for(resumed, 5)
        await writer.write(b" next chunk")
        await writer.close()
        return await driver.get_content(PATH)

    assert asyncio.run(scenario()) == b"acknowledged next chunk"


def test_rollback_cuts_back_to_where_the_writer_started(tmp_path: Path) -> None:
    async def scenario() -> bytes:
        driver = CheckedDriver(FilesystemDriver(str(tmp_path)))
        await driver.put_content(PATH, b"0123456789")
        writer = await driver.writer(PATH, 4)
        await writer.write(b"xxxxxxxx" * 1000)
        await roll_back(driver, writer, PATH, 4)
        return await driver.get_content(PATH)

    assert asyncio.run(scenario()) == b"0123"
