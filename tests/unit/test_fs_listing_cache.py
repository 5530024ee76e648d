"""The filesystem driver's cache of big directory listings never serves a stale one."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from dockyard.storage.drivers.filesystem import FilesystemDriver

TAGS = "/docker/registry/v2/repositories/a/_manifests/tags"


def _make(tmp_path: Path, count: int) -> Path:
    directory = tmp_path / TAGS.lstrip("/")
    directory.mkdir(parents=True)
    for i in range(count):
        (directory / f"t{i:04d}").mkdir()
    return directory


def test_cached_listing_follows_changes(tmp_path: Path) -> None:
    directory = _make(tmp_path, 600)
    past = time.time() - 10
    os.utime(directory, (past, past))
    driver = FilesystemDriver(str(tmp_path))
    first = asyncio.run(driver.list(TAGS))
    assert len(first) == 600 and first == sorted(first)
    assert str(directory) in driver._listings  # cached: old mtime, big directory
    (directory / "new-tag").mkdir()
    second = asyncio.run(driver.list(TAGS))
    assert f"{TAGS}/new-tag" in second and len(second) == 601


def test_recently_changed_directory_is_not_cached(tmp_path: Path) -> None:
    directory = _make(tmp_path, 600)
    driver = FilesystemDriver(str(tmp_path))
    asyncio.run(driver.list(TAGS))
    assert str(directory) not in driver._listings
    # Within the same clock tick the mtime may not move; the listing must still see it.
    (directory / "same-tick").mkdir()
    os.utime(directory, ns=(directory.stat().st_atime_ns, directory.stat().st_mtime_ns))
    assert f"{TAGS}/same-tick" in asyncio.run(driver.list(TAGS))


def test_callers_cannot_change_the_cache(tmp_path: Path) -> None:
    directory = _make(tmp_path, 600)
    past = time.time() - 10
    os.utime(directory, (past, past))
    driver = FilesystemDriver(str(tmp_path))
    asyncio.run(driver.list(TAGS)).clear()
    assert len(asyncio.run(driver.list(TAGS))) == 600
