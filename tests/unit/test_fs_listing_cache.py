"""The filesystem driver's cache of big directory listings never serves a stale one:
kept exact by inotify where it works, else validated by the directory's mtime."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from dockyard.storage.drivers import dirwatch
from dockyard.storage.drivers.base import PathNotFound
from dockyard.storage.drivers.filesystem import FilesystemDriver

TAGS = "/docker/registry/v2/repositories/a/_manifests/tags"


def _make(tmp_path: Path, count: int) -> Path:
    directory = tmp_path / TAGS.lstrip("/")
    directory.mkdir(parents=True)
    for i in range(count):
        (directory / f"t{i:04d}").mkdir()
    return directory


@pytest.fixture
def no_inotify(monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver as on a system without inotify: the mtime-validated cache."""
    monkeypatch.setattr(dirwatch, "_LIBC", None)


@pytest.mark.usefixtures("no_inotify")
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


@pytest.mark.usefixtures("no_inotify")
def test_recently_changed_directory_is_not_cached(tmp_path: Path) -> None:
    directory = _make(tmp_path, 600)
    driver = FilesystemDriver(str(tmp_path))
    asyncio.run(driver.list(TAGS))
    assert str(directory) not in driver._listings
    # Within the same clock tick the mtime may not move; the listing must still see it.
    (directory / "same-tick").mkdir()
    os.utime(directory, ns=(directory.stat().st_atime_ns, directory.stat().st_mtime_ns))
    assert f"{TAGS}/same-tick" in asyncio.run(driver.list(TAGS))


@pytest.mark.parametrize("inotify", [True, False])
def test_callers_cannot_change_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inotify: bool
) -> None:
    if not inotify:
        monkeypatch.setattr(dirwatch, "_LIBC", None)
    directory = _make(tmp_path, 600)
    past = time.time() - 10
    os.utime(directory, (past, past))
    driver = FilesystemDriver(str(tmp_path))
    asyncio.run(driver.list(TAGS)).clear()
    assert len(asyncio.run(driver.list(TAGS))) == 600


def _listed(driver: FilesystemDriver) -> list[str]:
    return [p.rsplit("/", 1)[1] for p in asyncio.run(driver.list(TAGS))]


def _watched(driver: FilesystemDriver) -> bool:
    return bool(driver._watched._listings)


needs_inotify = pytest.mark.skipif(dirwatch._LIBC is None, reason="no inotify")


@needs_inotify
def test_watched_listing_follows_this_process_at_once(tmp_path: Path) -> None:
    """Kept from the first listing on (no mtime age needed), and exact right after each
    change, within one clock tick: created, removed, renamed, temporary files left out."""
    directory = _make(tmp_path, 600)
    driver = FilesystemDriver(str(tmp_path))
    names = {f"t{i:04d}" for i in range(600)}
    assert _listed(driver) == sorted(names)
    assert _watched(driver)
    (directory / "new").mkdir()
    (directory / ".tmp-123").write_bytes(b"x")
    shutil.rmtree(directory / "t0007")
    (directory / "t0008").rename(directory / "zz-renamed")
    names = (names - {"t0007", "t0008"}) | {"new", "zz-renamed"}
    assert _listed(driver) == sorted(names)
    (directory / "new").rmdir()
    (directory / "new").mkdir()  # removed and made again: there
    assert _listed(driver) == sorted(names)
    assert _watched(driver)


@needs_inotify
def test_watched_listing_follows_another_process(tmp_path: Path) -> None:
    """Another process (another worker, docker-registry on the same root) changes the
    directory: seen as soon as its system call returned."""
    directory = _make(tmp_path, 600)
    driver = FilesystemDriver(str(tmp_path))
    assert len(_listed(driver)) == 600
    subprocess.run(["mkdir", str(directory / "from-elsewhere")], check=True)
    subprocess.run(["rm", "-r", str(directory / "t0000")], check=True)
    listed = _listed(driver)
    assert "from-elsewhere" in listed and "t0000" not in listed and len(listed) == 600


@needs_inotify
def test_watched_listing_of_a_replaced_directory(tmp_path: Path) -> None:
    """The directory deleted and made again, or another one moved to its path: the path
    names another directory, which is listed afresh."""
    directory = _make(tmp_path, 600)
    driver = FilesystemDriver(str(tmp_path))
    assert len(_listed(driver)) == 600
    shutil.rmtree(directory)
    directory.mkdir()
    for i in range(520):
        (directory / f"u{i:04d}").mkdir()
    assert _listed(driver) == [f"u{i:04d}" for i in range(520)]
    other = tmp_path / "other"
    other.mkdir()
    for i in range(530):
        (other / f"v{i:04d}").mkdir()
    directory.rename(tmp_path / "old")
    other.rename(directory)
    assert _listed(driver) == [f"v{i:04d}" for i in range(530)]
    shutil.rmtree(directory)
    with pytest.raises(PathNotFound):
        _listed(driver)


@needs_inotify
def test_small_directories_are_not_watched(tmp_path: Path) -> None:
    _make(tmp_path, 10)
    driver = FilesystemDriver(str(tmp_path))
    assert len(_listed(driver)) == 10
    assert not _watched(driver)


@needs_inotify
def test_a_forked_child_keeps_its_own_listings(tmp_path: Path) -> None:
    """Workers fork after the driver may have listed: each reads its own events."""
    directory = _make(tmp_path, 600)
    driver = FilesystemDriver(str(tmp_path))
    assert len(_listed(driver)) == 600
    pid = os.fork()
    if pid == 0:  # the child: sees the parent's later change, and its own
        code = 1
        try:
            time.sleep(0.2)
            (directory / "child").mkdir()
            listed = [p.rsplit("/", 1)[1] for p in driver._watched.names(
                str(directory), TAGS, lambda t: sorted(f"{TAGS}/{n}" for n in os.listdir(t))
            ) or []]
            code = 0 if {"parent", "child"} <= set(listed) and len(listed) == 602 else 2
        finally:
            os._exit(code)
    (directory / "parent").mkdir()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    listed = _listed(driver)
    assert {"parent", "child"} <= set(listed) and len(listed) == 602


@needs_inotify
def test_no_inotify_instance_until_a_big_directory(tmp_path: Path) -> None:
    """An instance is a per-user resource: a process that lists only small directories
    takes none."""
    _make(tmp_path, 10)
    driver = FilesystemDriver(str(tmp_path))
    assert len(_listed(driver)) == 10
    assert driver._watched._fd < 0
    (tmp_path / TAGS.lstrip("/") / "more").mkdir()
    for i in range(600):
        (tmp_path / TAGS.lstrip("/") / f"m{i:04d}").mkdir()
    assert len(_listed(driver)) == 611
    assert driver._watched._fd >= 0 and _watched(driver)
    driver._watched.close()
