"""The driver factory, the path checks of :class:`CheckedDriver`, and what only the
filesystem driver does. The contract every driver keeps is in test_driver_contract.py.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.unit.test_driver_contract import run, walk_all, write_file

from dockyard import nowait
from dockyard.storage import paths
from dockyard.storage.drivers.base import (
    CheckedDriver,
    FileInfo,
    InvalidPath,
    PathNotFound,
    StorageError,
)
from dockyard.storage.drivers.factory import DriverConfigError, create_driver
from dockyard.storage.drivers.filesystem import FilesystemDriver
from dockyard.storage.drivers.inmemory import InMemoryDriver


def test_factory_builds_checked_drivers(tmp_path: Path) -> None:
    fs = create_driver("filesystem", {"rootdirectory": str(tmp_path)})
    assert isinstance(fs, CheckedDriver) and isinstance(fs.inner, FilesystemDriver)
    mem = create_driver("inmemory", {})
    assert isinstance(mem, CheckedDriver) and isinstance(mem.inner, InMemoryDriver)


@pytest.mark.parametrize(
    ("name", "library"),
    [("s3", "aiobotocore"), ("azure", "azure.storage.blob"), ("gcs", "gcloud.aio.storage")],
)
def test_missing_extra_names_the_key_and_the_extra(
    name: str, library: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the extra were not installed: the client library cannot be imported, and
    # the driver package is imported afresh (as in a server that never loaded it).
    monkeypatch.setitem(sys.modules, library, None)
    package = f"dockyard.storage.drivers.{name}"
    for module in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        monkeypatch.delitem(sys.modules, module)
    with pytest.raises(DriverConfigError) as caught:
        create_driver(name, {})
    assert str(caught.value).startswith(f"storage.{name}: the {name} driver needs ")
    assert f"pip install 'dockyard[{name}]'" in str(caught.value)


# -- CheckedDriver -----------------------------------------------------------------------

BAD_PATHS = [
    "",
    "relative",
    "relative/path",
    "/",
    "//",
    "//a",
    "/a//b",
    "/a/",
    "/a/b/",
    "/..",
    "/../etc/passwd",
    "/a/../b",
    "/a/..",
    "/.",
    "/a/./b",
    "/a/.",
    "/a b",
    "/a\x00b",
    "/a\nb",
    "/a\\b",
    "/caf\u00e9",
    "/a%2e%2e/b",
    "/a:b",
    "/a=b",  # not in distribution's PathRegexp either
    "/a/b?c",
    "/~/x",
    " /a",
    "/a ",
]


class Recorder:
    """An inner driver that must never be reached."""

    name = "recorder"

    def __getattr__(self, attr: str) -> Any:
        def reached(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"inner driver reached: {attr}{args}")

        return reached


@pytest.mark.parametrize("path", BAD_PATHS)
def test_checked_driver_rejects(path: str) -> None:
    checked = CheckedDriver(Recorder())  # type: ignore[arg-type]

    async def scenario() -> None:
        calls: list[Callable[[], Any]] = [
            lambda: checked.get_content(path),
            lambda: checked.put_content(path, b"x"),
            lambda: checked.reader(path),
            lambda: checked.writer(path),
            lambda: checked.stat(path),
            lambda: checked.list(path),
            lambda: checked.move(path, "/ok"),
            lambda: checked.move("/ok", path),
            lambda: checked.delete(path),
            lambda: checked.redirect_url(path, "GET"),
            lambda: checked.walk(path),
            lambda: checked.local_path(path),
        ]
        for call in calls:
            with pytest.raises(InvalidPath):
                result = call()
                if asyncio.iscoroutine(result):
                    await result

    run(scenario())


def test_checked_driver_accepts_layout_paths(tmp_path: Path) -> None:
    checked = CheckedDriver(FilesystemDriver(str(tmp_path)))
    good = [
        "/docker/registry/v2/repositories/a/b-c/d.e/f__g/_uploads/u-1_2/hashstates/sha256/0",
        "/docker/registry/v2/blobs/sha256/ab/" + "ab" * 32 + "/data",
        "/x",
        "/.hidden",
        "/a/...",
    ]

    async def scenario() -> None:
        for path in good:
            await checked.put_content(path, b"ok")
            assert await checked.get_content(path) == b"ok"

    run(scenario())
    # Everything stayed below the root.
    assert all(str(p).startswith(str(tmp_path)) for p in tmp_path.rglob("*"))


# -- filesystem specifics ----------------------------------------------------------------


def test_filesystem_layout_on_disk(tmp_path: Path) -> None:
    """Paths map one to one onto files below the root: what distribution reads."""
    driver = CheckedDriver(FilesystemDriver(str(tmp_path)))

    async def scenario() -> None:
        await driver.put_content("/docker/registry/v2/repositories/r/_layers/sha256/ab/link",
                                 b"sha256:ab")
        await write_file(driver, "/docker/registry/v2/repositories/r/_uploads/u/data", b"123")

    run(scenario())
    assert (tmp_path / "docker/registry/v2/repositories/r/_layers/sha256/ab/link"
            ).read_bytes() == b"sha256:ab"
    assert (tmp_path / "docker/registry/v2/repositories/r/_uploads/u/data").read_bytes() == b"123"
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_filesystem_hides_temp_files(tmp_path: Path) -> None:
    driver = CheckedDriver(FilesystemDriver(str(tmp_path)))
    (tmp_path / "d").mkdir()
    (tmp_path / "d/real").write_bytes(b"1")
    (tmp_path / "d/.tmp-0123abcd").write_bytes(b"half a link")  # a crash mid put_content
    for other in (".a", ".tmp", ".tmpx", "-x", "_z"):  # near .tmp- in the sort order
        (tmp_path / "d" / other).write_bytes(b"1")

    async def scenario() -> tuple[list[str], list[FileInfo], list[list[str] | None]]:
        return (await driver.list("/d"), await walk_all(driver, "/d"),
                await driver.list_many(["/d"]))

    listed, walked, many = run(scenario())
    kept = ["/d/-x", "/d/.a", "/d/.tmp", "/d/.tmpx", "/d/_z", "/d/real"]
    assert listed == kept
    assert many == [kept]
    assert [i.path for i in walked] == kept



def test_filesystem_get_many_reads_cached_links_without_a_thread_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Links the kernel has cached come straight from the event loop (a manifest PUT's
    layer links); a missing file or one too long for the first read takes the thread
    hop and is read whole there."""
    driver = FilesystemDriver(str(tmp_path))
    (tmp_path / "l").mkdir()
    (tmp_path / "l/a").write_bytes(b"sha256:" + b"a" * 64)
    (tmp_path / "l/b").write_bytes(b"sha256:" + b"b" * 64)
    long = os.urandom(10_000)
    (tmp_path / "l/long").write_bytes(long)
    if nowait.read_cached(str(tmp_path / "l/a"), 0, 100) is None:
        pytest.skip("openat2 with RESOLVE_CACHED is missing or refused")
    hops: list[str] = []
    real_run = driver._run

    async def run_counted(path: str, fn: Callable[..., Any], *args: Any) -> Any:
        hops.append(path)
        return await real_run(path, fn, *args)

    monkeypatch.setattr(driver, "_run", run_counted)

    async def scenario() -> tuple[list[bytes | None], list[bytes | None]]:
        cached = await driver.get_many(["/l/a", "/l/b"])
        mixed = await driver.get_many(["/l/a", "/l/missing", "/l/long", "/l"])
        return cached, mixed

    cached, mixed = run(scenario())
    assert cached == [b"sha256:" + b"a" * 64, b"sha256:" + b"b" * 64]
    assert mixed == [b"sha256:" + b"a" * 64, None, long, None]
    assert hops == ["/l/missing"]  # one hop for the three the caches could not answer


def test_filesystem_put_many_leaves_no_temporary_file_when_one_fails(tmp_path: Path) -> None:
    """A batch that fails midway (a file where a directory must go) renamed nothing
    after the failure and left no temporary file behind."""
    driver = CheckedDriver(FilesystemDriver(str(tmp_path)))

    async def scenario() -> None:
        await driver.put_content("/b/file", b"x")
        with pytest.raises(StorageError):
            await driver.put_many([("/b/first", b"1"), ("/b/file/below", b"2")])

    run(scenario())
    assert not (tmp_path / "b/first").exists()
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["file"]


def test_filesystem_put_many_makes_each_directory_once_and_keeps_equal_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new tag's directories are each made by one successful mkdir and its files
    created without a failed open first (each system call is a GIL hand-off in the
    thread); a file that already holds its content is left as it is, one with other
    content replaced."""
    driver = CheckedDriver(FilesystemDriver(str(tmp_path)))
    (tmp_path / "tags").mkdir()
    made: list[str] = []
    failed_opens: list[str] = []
    real_mkdir, real_open = os.mkdir, os.open

    def mkdir(path: str, mode: int = 0o777) -> None:
        real_mkdir(path, mode)
        made.append(os.path.relpath(path, tmp_path))

    def open_(path: str, flags: int, mode: int = 0o777) -> int:
        try:
            return real_open(path, flags, mode)
        except OSError:
            failed_opens.append(path)
            raise

    monkeypatch.setattr("dockyard.storage.drivers.smallfiles.os.mkdir", mkdir)
    monkeypatch.setattr("dockyard.storage.drivers.smallfiles.os.open", open_)
    batch = [("/tags/t/index/sha256/ab/link", b"sha256:ab"), ("/tags/t/current/link", b"sha256:ab")]
    run(driver.put_many(batch))
    assert made == ["tags/t", "tags/t/index", "tags/t/index/sha256", "tags/t/index/sha256/ab",
                    "tags/t/current"]
    assert failed_opens == []
    current = tmp_path / "tags/t/current/link"
    kept = current.stat().st_ino
    run(driver.put_many(batch))
    assert current.stat().st_ino == kept
    run(driver.put_many([("/tags/t/current/link", b"sha256:cd")]))
    assert current.read_bytes() == b"sha256:cd"
    assert current.stat().st_ino != kept
    assert sorted(p.name for p in (tmp_path / "tags/t/current").iterdir()) == ["link"]


def test_filesystem_temporary_name_drawn_again_on_a_clash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporary names come from the process's random generator, which two processes
    may share after a fork: a name already taken is never written into, another is
    drawn; a missing directory is made first."""
    driver = CheckedDriver(FilesystemDriver(str(tmp_path)))
    draws = iter([0xAB, 0xAB, 0xCD])
    monkeypatch.setattr(
        "dockyard.storage.drivers.smallfiles.random.getrandbits", lambda _bits: next(draws)
    )
    clash = tmp_path / "new/dir" / f".tmp-{0xAB:032x}"

    async def scenario() -> None:
        await driver.put_many([("/new/dir/first", b"1")])  # draws 0xAB: the name is free
        clash.write_bytes(b"another process's temporary file")
        await driver.put_content("/new/dir/second", b"2")  # 0xAB taken: draws 0xCD

    run(scenario())
    assert (tmp_path / "new/dir/first").read_bytes() == b"1"
    assert (tmp_path / "new/dir/second").read_bytes() == b"2"
    assert clash.read_bytes() == b"another process's temporary file"
    assert sorted(p.name for p in (tmp_path / "new/dir").iterdir()) == [
        clash.name, "first", "second"]


def test_filesystem_delete_of_a_tree_survives_entries_removed_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finished upload's directory is removed after the response while the request
    withdraws its claim inside it: the claim's file may be gone by the time the removal
    reaches it. The tree still goes, whole, and that is no "not found" (which left the
    directory behind, unreported, until upload purging).
    """
    driver = CheckedDriver(FilesystemDriver(str(tmp_path)))
    claim = f"{paths.upload_claims_path('a/b', 'u1', 1000)}/c0ffee"
    for path in (claim, paths.upload_startedat_path("a/b", "u1"),
                 paths.upload_hashstate_path("a/b", "u1", "sha256", 1000)):
        run(driver.put_content(path, b"x"))
    real_unlink = os.unlink
    raced: list[str] = []

    def unlink(name: Any, *args: Any, **kwargs: Any) -> None:
        if os.fspath(name).endswith("c0ffee") and not raced:
            real_unlink(name, *args, **kwargs)  # the claim's request got there first
            raced.append(os.fspath(name))
        real_unlink(name, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    run(driver.delete(paths.upload_path("a/b", "u1")))
    assert raced, "the removal never reached the claim"
    assert not (tmp_path / paths.upload_path("a/b", "u1").lstrip("/")).exists()
    with pytest.raises(PathNotFound):  # the tree itself missing is still "not found"
        run(driver.delete(paths.upload_path("a/b", "u1")))
