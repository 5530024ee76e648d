"""Upload purging on the storage drivers: which uploads go, which stay, dry runs."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dockyard.maintenance.purge import (
    PurgeSummary,
    format_size,
    purge_uploads,
    run_upload_purger,
)
from dockyard.storage import paths
from dockyard.storage.drivers.base import CheckedDriver, PathNotFound, StorageError
from dockyard.storage.drivers.filesystem import FilesystemDriver
from dockyard.storage.drivers.inmemory import InMemoryDriver

T = TypeVar("T")
WEEK = 7 * 86400.0
NOW = datetime.now(UTC).replace(microsecond=0)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def rfc3339(when: datetime) -> bytes:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ").encode()


async def make_upload(
    driver: CheckedDriver,
    repo: str,
    upload_id: str,
    started: datetime | None,
    data: bytes = b"x" * 100,
    *,
    startedat: bytes | None = None,
) -> str:
    """An upload directory as dockyard and distribution write it."""
    if startedat is None and started is not None:
        startedat = rfc3339(started)
    if startedat is not None:
        await driver.put_content(paths.upload_startedat_path(repo, upload_id), startedat)
    await driver.put_content(paths.upload_data_path(repo, upload_id), data)
    await driver.put_content(paths.upload_hashstate_path(repo, upload_id, "sha256", 100), b"s")
    return paths.upload_path(repo, upload_id)


async def exists(driver: CheckedDriver, path: str) -> bool:
    try:
        await driver.stat(path)
    except PathNotFound:
        return False
    return True


@pytest.fixture
def memory() -> CheckedDriver:
    return CheckedDriver(InMemoryDriver())


def test_old_uploads_go_and_fresh_ones_stay(memory: CheckedDriver) -> None:
    async def scenario() -> tuple[PurgeSummary, list[str]]:
        old = await make_upload(memory, "library/alpine", "old-1", NOW - timedelta(days=8))
        older = await make_upload(memory, "a/b/c/deep", "old-2", NOW - timedelta(days=30),
                                  data=b"y" * 1000)
        fresh = await make_upload(memory, "library/alpine", "fresh", NOW - timedelta(hours=1))
        edge = await make_upload(memory, "edge", "edge", NOW - timedelta(days=7, seconds=-5))
        # Blobs and links are not uploads: never touched.
        await memory.put_content("/docker/registry/v2/blobs/sha256/ab/abcd/data", b"blob")
        await memory.put_content(
            "/docker/registry/v2/repositories/library/alpine/_layers/sha256/abcd/link", b"l"
        )
        messages: list[str] = []
        summary = await purge_uploads(memory, older_than=WEEK, now=NOW, progress=messages.append)
        assert not await exists(memory, old)
        assert not await exists(memory, older)
        assert await exists(memory, fresh)
        assert await exists(memory, edge)
        assert await exists(memory, "/docker/registry/v2/blobs/sha256/ab/abcd/data")
        assert await exists(
            memory, "/docker/registry/v2/repositories/library/alpine/_layers/sha256/abcd/link"
        )
        return summary, messages

    summary, messages = run(scenario())
    assert (summary.scanned, summary.deleted, summary.errors) == (4, 2, 0)
    # data + startedat (20 bytes) + one hash state (1 byte), per deleted upload
    assert summary.bytes_freed == (100 + 20 + 1) + (1000 + 20 + 1)
    assert summary.repositories == 3
    assert not summary.dry_run
    deleted = [m for m in messages if m.startswith("deleted ")]
    assert len(deleted) == 2
    assert any("old-2" in m and "30d" in m for m in deleted)
    assert "deleted 2" in str(summary) and "scanned 4 uploads" in str(summary)


def test_dry_run_deletes_nothing(memory: CheckedDriver) -> None:
    async def scenario() -> tuple[PurgeSummary, PurgeSummary, list[str]]:
        old = await make_upload(memory, "repo", "old", NOW - timedelta(days=8))
        await make_upload(memory, "repo", "fresh", NOW)
        messages: list[str] = []
        dry = await purge_uploads(
            memory, older_than=WEEK, now=NOW, dry_run=True, progress=messages.append
        )
        assert await exists(memory, old)
        real = await purge_uploads(memory, older_than=WEEK, now=NOW)
        assert not await exists(memory, old)
        return dry, real, messages

    dry, real, messages = run(scenario())
    assert dry.dry_run and (dry.scanned, dry.deleted, dry.bytes_freed) == (2, 1, 121)
    assert "would delete 1" in str(dry) and "dry run" in str(dry)
    assert [m.split()[:2] for m in messages] == [["would", "delete"]]
    assert (real.scanned, real.deleted, real.bytes_freed) == (2, 1, 121)


@pytest.mark.parametrize(
    "startedat", [None, b"", b"not a time", b"\xff\xfe", b"2024-13-45T99:00:00Z", b"1700000000"]
)
def test_missing_or_unreadable_startedat_falls_back_to_last_activity(
    memory: CheckedDriver, startedat: bytes | None
) -> None:
    """Without a usable startedat, the upload is as old as its newest file (or its directory)."""

    async def scenario() -> None:
        path = await make_upload(memory, "repo", "nostart", None, startedat=startedat)
        # Just written: young, whatever the (missing) startedat says.
        summary = await purge_uploads(memory, older_than=WEEK, now=NOW)
        assert (summary.scanned, summary.deleted) == (1, 0)
        assert await exists(memory, path)
        # Seen from eight days later, nothing in it changed for more than a week.
        later = datetime.now(UTC) + timedelta(days=8)
        messages: list[str] = []
        summary = await purge_uploads(
            memory, older_than=WEEK, now=later, progress=messages.append
        )
        assert (summary.scanned, summary.deleted) == (1, 1)
        assert not await exists(memory, path)
        assert "last modified" in messages[0]

    run(scenario())


def test_startedat_formats(memory: CheckedDriver) -> None:
    """RFC 3339 as Go writes it: Z or an offset, with or without fractional seconds."""
    old = NOW - timedelta(days=10)
    young = NOW - timedelta(days=1)
    forms = {
        "z": rfc3339(old),
        "frac": old.strftime("%Y-%m-%dT%H:%M:%S.123456789Z").encode(),
        "offset": old.astimezone(
            timezone(timedelta(hours=2))
        ).isoformat().encode(),
        "newline": rfc3339(old) + b"\n",
        "young-offset": young.astimezone(
            timezone(timedelta(hours=-5))
        ).isoformat().encode(),
    }

    async def scenario() -> PurgeSummary:
        for name, raw in forms.items():
            await make_upload(memory, "repo", name, None, startedat=raw)
        summary = await purge_uploads(memory, older_than=WEEK, now=NOW)
        assert await exists(memory, paths.upload_path("repo", "young-offset"))
        for name in ("z", "frac", "offset", "newline"):
            assert not await exists(memory, paths.upload_path("repo", name)), name
        return summary

    summary = run(scenario())
    assert (summary.scanned, summary.deleted) == (5, 4)


def test_empty_storage_and_stray_files(memory: CheckedDriver) -> None:
    async def scenario() -> tuple[PurgeSummary, PurgeSummary]:
        empty = await purge_uploads(memory, older_than=WEEK, now=NOW)
        # A stray file directly under _uploads is not an upload: left alone, not counted.
        stray = f"{paths.uploads_root('repo')}/stray"
        await memory.put_content(stray, b"?")
        await make_upload(memory, "repo", "old", NOW - timedelta(days=9))
        summary = await purge_uploads(memory, older_than=WEEK, now=NOW)
        assert await exists(memory, stray)
        return empty, summary

    empty, summary = run(scenario())
    assert (empty.scanned, empty.deleted, empty.errors, empty.repositories) == (0, 0, 0, 0)
    assert (summary.scanned, summary.deleted) == (1, 1)


def test_manifests_and_layers_are_not_walked(memory: CheckedDriver) -> None:
    """Only repository directories are listed: never below _layers or _manifests."""
    listed: list[str] = []

    class Spy(InMemoryDriver):
        async def list(self, path: str) -> list[str]:
            listed.append(path)
            return await super().list(path)

        def walk(self, path: str):  # type: ignore[no-untyped-def]
            listed.append(f"walk:{path}")
            return super().walk(path)

    driver = CheckedDriver(Spy())

    async def scenario() -> None:
        for i in range(5):
            await driver.put_content(paths.repository_path("r") + f"/_layers/sha256/{i}/link", b"")
            await driver.put_content(
                paths.repository_path("r") + f"/_manifests/revisions/sha256/{i}/link", b""
            )
        await make_upload(driver, "r", "u1", NOW)
        await purge_uploads(driver, older_than=WEEK, now=NOW)

    run(scenario())
    assert not any("_layers" in p or "_manifests" in p for p in listed), listed
    assert not any(p.startswith("walk:") for p in listed)  # fresh upload: not even walked


def test_errors_are_counted_not_raised(memory: CheckedDriver) -> None:
    class Failing(InMemoryDriver):
        async def delete(self, path: str) -> None:
            if path.endswith("/bad"):
                raise StorageError("disk on fire", self.name)
            await super().delete(path)

    driver = CheckedDriver(Failing())

    async def scenario() -> tuple[PurgeSummary, list[str]]:
        await make_upload(driver, "repo", "bad", NOW - timedelta(days=8))
        good = await make_upload(driver, "repo", "good", NOW - timedelta(days=8))
        messages: list[str] = []
        summary = await purge_uploads(driver, older_than=WEEK, now=NOW, progress=messages.append)
        assert not await exists(driver, good)
        return summary, messages

    summary, messages = run(scenario())
    assert (summary.scanned, summary.deleted, summary.errors) == (2, 1, 1)
    assert any(m.startswith("error:") and "disk on fire" in m for m in messages)


def test_filesystem_driver_and_directory_mtime(tmp_path: Path) -> None:
    """On disk: startedat decides; without it, the mtimes of the directory and its files."""
    driver = CheckedDriver(FilesystemDriver(str(tmp_path)))

    async def scenario() -> PurgeSummary:
        old = await make_upload(driver, "repo", "old", NOW - timedelta(days=8))
        fresh = await make_upload(driver, "repo", "fresh", NOW)
        stale = await make_upload(driver, "repo", "stale", None)
        active = await make_upload(driver, "repo", "active", None)
        long_ago = time.time() - 10 * 86400
        for path in (stale, active):
            for directory, dirs, files in os.walk(tmp_path / path.lstrip("/")):
                for name in [*dirs, *files]:
                    os.utime(os.path.join(directory, name), (long_ago, long_ago))
                os.utime(directory, (long_ago, long_ago))
        # "active" got a chunk just now: its data file is new, its directory is not.
        os.utime(tmp_path / paths.upload_data_path("repo", "active").lstrip("/"))
        summary = await purge_uploads(driver, older_than=WEEK)
        assert not await exists(driver, old)
        assert not await exists(driver, stale)
        assert await exists(driver, fresh)
        assert await exists(driver, active)
        return summary

    summary = run(scenario())
    assert (summary.scanned, summary.deleted, summary.errors) == (4, 2, 0)


def test_periodic_purger_runs_and_survives_errors(memory: CheckedDriver,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    class Flaky(InMemoryDriver):
        async def list(self, path: str) -> list[str]:
            nonlocal calls
            if path == paths.REPOSITORIES_ROOT:
                calls += 1
                if calls == 1:
                    raise RuntimeError("boom")  # not a StorageError: the loop must survive it
            return await super().list(path)

    driver = CheckedDriver(Flaky())

    async def scenario() -> None:
        await make_upload(driver, "repo", "old", NOW - timedelta(days=8))
        task = asyncio.create_task(
            run_upload_purger(driver, age=WEEK, interval=0.05, first_delay=0.01)
        )
        for _ in range(200):
            await asyncio.sleep(0.01)
            if calls >= 3:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not await exists(driver, paths.upload_path("repo", "old"))

    caplog.set_level("INFO", logger="dockyard.purge")
    run(scenario())
    assert calls >= 3
    text = caplog.text
    assert "upload purging failed" in text
    assert "deleted 1" in text
    assert "first run in 0s" in text


def test_interval_zero_runs_once(memory: CheckedDriver) -> None:
    async def scenario() -> None:
        await make_upload(memory, "repo", "old", NOW - timedelta(days=8))
        await asyncio.wait_for(
            run_upload_purger(memory, age=WEEK, interval=0, first_delay=0), timeout=5
        )
        assert not await exists(memory, paths.upload_path("repo", "old"))

    run(scenario())


def test_format_size() -> None:
    assert format_size(0) == "0 B"
    assert format_size(1023) == "1023 B"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(3 << 30) == "3.0 GiB"


class _MultipartMemoryDriver(InMemoryDriver):
    """In-memory storage plus S3-like multipart state the layout does not show."""

    def __init__(self) -> None:
        super().__init__()
        self.cutoffs: list[datetime] = []

    async def abort_stale_multipart_uploads(
        self, older_than: datetime, keep: Callable[[str], Awaitable[bool]] | None = None
    ) -> int:
        self.cutoffs.append(older_than)
        return 3


def test_stale_backend_writes_are_aborted_with_the_same_cutoff() -> None:
    inner = _MultipartMemoryDriver()
    summary = run(purge_uploads(CheckedDriver(inner), older_than=WEEK, now=NOW))
    assert inner.cutoffs == [NOW - timedelta(seconds=WEEK)]
    assert summary.aborted_writes == 3
    assert "aborted 3 stale backend writes" in str(summary)


def test_dry_run_aborts_no_backend_writes() -> None:
    inner = _MultipartMemoryDriver()
    summary = run(purge_uploads(CheckedDriver(inner), older_than=WEEK, now=NOW, dry_run=True))
    assert inner.cutoffs == []
    assert summary.aborted_writes == 0
