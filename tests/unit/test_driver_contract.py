"""The storage driver contract, run here on the filesystem and in-memory drivers.

Each test gets a fresh driver wrapped in :class:`CheckedDriver`, as the registry
uses them. The object store drivers' test modules run the same tests on their own
``driver`` fixture through :func:`contract`. The factory, :class:`CheckedDriver` and
what only the filesystem does are tested in test_drivers.py.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Collection, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dockyard.storage.drivers import filesystem as filesystem_module
from dockyard.storage.drivers.base import (
    CheckedDriver,
    FileInfo,
    InvalidOffset,
    InvalidPath,
    PathNotFound,
    StorageDriver,
    StorageError,
)
from dockyard.storage.drivers.filesystem import FilesystemDriver
from dockyard.storage.drivers.inmemory import InMemoryDriver

T = TypeVar("T")
MiB = 1 << 20
DRIVERS = ["filesystem", "inmemory"]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> CheckedDriver:
    if request.param == "filesystem":
        return CheckedDriver(FilesystemDriver(str(tmp_path / "root")))
    return CheckedDriver(InMemoryDriver())


async def read_all(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def write_file(driver: CheckedDriver, path: str, *pieces: bytes, offset: int = 0) -> int:
    writer = await driver.writer(path, offset)
    for piece in pieces:
        await writer.write(piece)
    await writer.commit()
    size = writer.size
    await writer.close()
    return size


async def walk_all(driver: CheckedDriver, path: str) -> list[FileInfo]:
    return [info async for info in driver.walk(path)]


def test_drivers_satisfy_the_protocol(driver: CheckedDriver) -> None:
    assert isinstance(driver.inner, StorageDriver)
    assert driver.name == driver.inner.name in DRIVERS



# -- whole files -------------------------------------------------------------------------


def test_put_and_get(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        await driver.put_content("/a/b/c", b"hello")
        assert await driver.get_content("/a/b/c") == b"hello"
        await driver.put_content("/a/empty", b"")
        assert await driver.get_content("/a/empty") == b""
        big = os.urandom(3 * MiB + 17)
        await driver.put_content("/big", big)
        assert await driver.get_content("/big") == big

    run(scenario())


def test_put_overwrites_whole_file(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        await driver.put_content("/f", b"a much longer first version")
        await driver.put_content("/f", b"short")
        assert await driver.get_content("/f") == b"short"
        assert (await driver.stat("/f")).size == 5

    run(scenario())


def test_put_is_atomic_for_concurrent_readers(driver: CheckedDriver) -> None:
    """Readers racing with writers see one whole version, never a torn or empty file."""
    versions = [bytes([i]) * (256 * 1024 + i * 4096) for i in range(8)]

    async def scenario() -> None:
        await driver.put_content("/race/link", versions[0])
        seen: set[bytes] = set()

        async def writer() -> None:
            for _ in range(5):
                for v in versions:
                    await driver.put_content("/race/link", v)

        async def reader() -> None:
            for _ in range(200):
                data = await driver.get_content("/race/link")
                assert data in versions, (len(data), data[:1])
                seen.add(data[:1])
                await asyncio.sleep(0)

        await asyncio.gather(writer(), writer(), reader(), reader())
        assert await driver.get_content("/race/link") in versions
        assert await driver.list("/race") == ["/race/link"]  # no temp files visible

    run(scenario())


def test_failed_put_keeps_the_old_content(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A write that fails half-way (disk full) leaves the old file and no temp file."""
    driver = CheckedDriver(FilesystemDriver(str(tmp_path / "root")))

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    async def scenario() -> None:
        await driver.put_content("/dir/link", b"old")
        monkeypatch.setattr(filesystem_module.os, "fsync", no_space)
        with pytest.raises(StorageError, match="No space left"):
            await driver.put_content("/dir/link", b"new content")
        monkeypatch.undo()
        assert await driver.get_content("/dir/link") == b"old"

    run(scenario())
    assert sorted(os.listdir(tmp_path / "root/dir")) == ["link"]  # the temp file is gone


def test_get_missing(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        with pytest.raises(PathNotFound):
            await driver.get_content("/nothing/here")
        await driver.put_content("/file", b"x")
        with pytest.raises(PathNotFound):
            await driver.get_content("/file/below")  # below a file
        await driver.put_content("/dir/child", b"x")
        with pytest.raises(StorageError):
            await driver.get_content("/dir")  # a directory has no content

    run(scenario())


def test_a_file_never_replaces_a_directory(driver: CheckedDriver) -> None:
    """Writing a file where a directory is, or below a file, fails and destroys nothing."""

    async def scenario() -> None:
        await driver.put_content("/dir/child", b"child")
        await driver.put_content("/file", b"file")
        await driver.put_content("/src", b"src")
        attempts: list[Callable[[], Coroutine[Any, Any, Any]]] = [
            lambda: driver.put_content("/dir", b"x"),
            lambda: driver.writer("/dir"),
            lambda: driver.move("/src", "/dir"),
            lambda: driver.put_content("/file/below", b"x"),
            lambda: driver.writer("/file/below"),
            lambda: driver.move("/src", "/file/below"),
        ]
        for i, attempt in enumerate(attempts):
            with pytest.raises(StorageError):
                await attempt()
            assert await driver.get_content("/dir/child") == b"child", i
            assert await driver.get_content("/file") == b"file", i
            assert await driver.get_content("/src") == b"src", i
            assert (await driver.stat("/dir")).is_dir, i
            with pytest.raises(PathNotFound):
                await driver.stat("/file/below")

    run(scenario())


# -- streams -----------------------------------------------------------------------------


def test_reader_from_offset(driver: CheckedDriver) -> None:
    data = os.urandom(2 * MiB + 12345)

    async def scenario() -> None:
        await driver.put_content("/blob", data)
        for offset in (0, 1, MiB - 1, MiB, MiB + 1, len(data) - 1, len(data)):
            assert await read_all(driver.reader("/blob", offset)) == data[offset:], offset
        chunks = [c async for c in driver.reader("/blob")]
        assert all(0 < len(c) <= MiB for c in chunks)  # streamed, not one big read
        assert len(chunks) >= 3

    run(scenario())


def test_reader_invalid_offset_and_missing(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        await driver.put_content("/small", b"0123456789")
        with pytest.raises(InvalidOffset):
            await read_all(driver.reader("/small", 11))
        with pytest.raises(InvalidOffset):
            await read_all(driver.reader("/small", -1))
        with pytest.raises(PathNotFound):
            await read_all(driver.reader("/missing"))
        with pytest.raises(PathNotFound):
            await read_all(driver.reader("/missing", 5))

    run(scenario())


def test_writer_appends_in_pieces(driver: CheckedDriver) -> None:
    pieces = [os.urandom(n) for n in (1, 100, MiB, 3 * MiB + 7, 0, 5)]

    async def scenario() -> None:
        size = await write_file(driver, "/up/data", *pieces)
        assert size == sum(map(len, pieces))
        assert await driver.get_content("/up/data") == b"".join(pieces)
        assert (await driver.stat("/up/data")).size == size

    run(scenario())


def test_writer_offset_zero_starts_afresh(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        await driver.put_content("/f", b"old old old")
        assert await write_file(driver, "/f", b"new") == 3
        assert await driver.get_content("/f") == b"new"

    run(scenario())


def test_writer_from_offset_truncates_the_rest(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        await driver.put_content("/f", b"0123456789")
        assert await write_file(driver, "/f", b"ab", offset=4) == 6
        assert await driver.get_content("/f") == b"0123ab"
        # At the very end: a plain append.
        assert await write_file(driver, "/f", b"XY", offset=6) == 8
        assert await driver.get_content("/f") == b"0123abXY"
        # Nothing written after the offset: just cut there.
        assert await write_file(driver, "/f", offset=3) == 3
        assert await driver.get_content("/f") == b"012"

    run(scenario())


def test_writer_invalid_offset_and_missing(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        await driver.put_content("/f", b"0123")
        with pytest.raises(InvalidOffset):
            await driver.writer("/f", 5)
        with pytest.raises(InvalidOffset):
            await driver.writer("/f", -1)
        assert await driver.get_content("/f") == b"0123"  # untouched by the refusals
        with pytest.raises(PathNotFound):
            await driver.writer("/missing", 1)

    run(scenario())


def test_writer_size_close_and_cancel(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        writer = await driver.writer("/up/data")
        assert writer.size == 0
        await writer.write(b"abc")
        await writer.write(b"de")
        assert writer.size == 5
        await writer.close()  # no commit: what was written stays, resumable
        await writer.close()  # idempotent
        assert await driver.get_content("/up/data") == b"abcde"
        writer = await driver.writer("/up/data", 5)
        assert writer.size == 5
        await writer.write(b"f")
        await writer.cancel()
        with pytest.raises(PathNotFound):
            await driver.stat("/up/data")

    run(scenario())


def test_continue_a_file_written_whole(driver: CheckedDriver) -> None:
    """A file made by put_content (for an object store, one object: no blocks or parts
    yet) can be continued and cut back; it is larger than a part in the azure and gcs
    tests (256 KiB)."""
    data = os.urandom(256 * 1024 + 99)

    async def scenario() -> None:
        await driver.put_content("/f", data)
        assert await write_file(driver, "/f", b"tail", offset=len(data)) == len(data) + 4
        assert await driver.get_content("/f") == data + b"tail"
        await driver.put_content("/g", data)
        assert await write_file(driver, "/g", b"!", offset=10) == 11
        assert await driver.get_content("/g") == data[:10] + b"!"
        with pytest.raises(InvalidOffset):
            await driver.writer("/g", 12)

    run(scenario())


# -- metadata and tree operations --------------------------------------------------------


def test_stat(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        before = time.time() - 5
        await driver.put_content("/d/e/file", b"12345")
        info = await driver.stat("/d/e/file")
        assert (info.path, info.size, info.is_dir) == ("/d/e/file", 5, False)
        assert before <= info.mod_time <= time.time() + 5
        for directory in ("/d", "/d/e"):
            info = await driver.stat(directory)
            assert (info.path, info.is_dir) == (directory, True)
        for missing in ("/x", "/d/x", "/d/e/file/x"):
            with pytest.raises(PathNotFound):
                await driver.stat(missing)

    run(scenario())


def test_mod_time_follows_writes(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        await driver.put_content("/f", b"a")
        first = (await driver.stat("/f")).mod_time
        await asyncio.sleep(0.02)
        await write_file(driver, "/f", b"b", offset=1)
        assert (await driver.stat("/f")).mod_time > first

    run(scenario())


def test_list(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        for path in ("/r/a/1", "/r/a/2", "/r/b", "/r/c/d/e"):
            await driver.put_content(path, b"x")
        assert sorted(await driver.list("/r")) == ["/r/a", "/r/b", "/r/c"]
        assert sorted(await driver.list("/r/a")) == ["/r/a/1", "/r/a/2"]
        assert await driver.list("/r/c/d") == ["/r/c/d/e"]
        with pytest.raises(PathNotFound):
            await driver.list("/missing")
        with pytest.raises(PathNotFound):
            await driver.list("/r/b")  # a file is not a directory

    run(scenario())


def test_list_many(driver: CheckedDriver) -> None:
    """Many directories at once: each answer as ``list`` gives it, None where it raises
    PathNotFound, in the order asked (one thread hop, or concurrent round trips)."""
    async def scenario() -> None:
        for path in ("/m/a/1", "/m/a/2", "/m/b", "/m/c/d/e"):
            await driver.put_content(path, b"x")
        answers = await driver.list_many(["/m/c", "/missing", "/m/a", "/m/b", "/m"])
        assert [sorted(a) if a is not None else None for a in answers] == [
            ["/m/c/d"], None, ["/m/a/1", "/m/a/2"], None, ["/m/a", "/m/b", "/m/c"],
        ]
        assert await driver.list_many([]) == []
        with pytest.raises(InvalidPath):
            await driver.list_many(["/m/a", "/../etc"])

    run(scenario())


def test_get_many(driver: CheckedDriver) -> None:
    """Many small files at once, None for a missing one (or a directory), in order."""
    async def scenario() -> None:
        await driver.put_content("/g/a", b"A")
        await driver.put_content("/g/d/b", b"")
        assert await driver.get_many(["/g/d/b", "/g/missing", "/g/a", "/g/d"]) == [
            b"", None, b"A", None,
        ]
        assert await driver.get_many([]) == []
        with pytest.raises(InvalidPath):
            await driver.get_many(["/g/a", "/g/../a"])

    run(scenario())


def test_put_many(driver: CheckedDriver) -> None:
    """Several whole files in order; content already there stays; paths are checked."""
    async def scenario() -> None:
        await driver.put_content("/p/same", b"kept")
        await driver.put_content("/p/old", b"old content")
        await driver.put_many([
            ("/p/new/deep/a", b"A"), ("/p/same", b"kept"), ("/p/old", b"new"), ("/p/e", b""),
        ])
        for path, data in (("/p/new/deep/a", b"A"), ("/p/same", b"kept"), ("/p/old", b"new"),
                           ("/p/e", b"")):
            assert await driver.get_content(path) == data
        assert sorted(await driver.list("/p")) == ["/p/e", "/p/new", "/p/old", "/p/same"]
        await driver.put_many([])
        with pytest.raises(InvalidPath):
            await driver.put_many([("/p/x", b"1"), ("/p/../y", b"2")])
        with pytest.raises(PathNotFound):
            await driver.get_content("/p/x")  # checked before anything is written

    run(scenario())


def test_move(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        await driver.put_content("/uploads/u1/data", b"payload")
        await driver.move("/uploads/u1/data", "/blobs/sha256/ab/abcd/data")  # new parents
        assert await driver.get_content("/blobs/sha256/ab/abcd/data") == b"payload"
        with pytest.raises(PathNotFound):
            await driver.stat("/uploads/u1/data")
        # Onto an existing file: replaced.
        await driver.put_content("/uploads/u2/data", b"second")
        await driver.move("/uploads/u2/data", "/blobs/sha256/ab/abcd/data")
        assert await driver.get_content("/blobs/sha256/ab/abcd/data") == b"second"
        with pytest.raises(PathNotFound):
            await driver.move("/uploads/u3/data", "/blobs/x")
        with pytest.raises(PathNotFound):
            await driver.stat("/blobs/x")

    run(scenario())


def test_delete_file_and_tree(driver: CheckedDriver) -> None:
    async def scenario() -> None:
        for path in ("/t/u/1", "/t/u/v/2", "/t/u/v/w/3", "/t/keep"):
            await driver.put_content(path, b"x")
        await driver.delete("/t/u/1")
        with pytest.raises(PathNotFound):
            await driver.get_content("/t/u/1")
        await driver.delete("/t/u")  # a whole tree
        for gone in ("/t/u", "/t/u/v", "/t/u/v/2", "/t/u/v/w/3"):
            with pytest.raises(PathNotFound):
                await driver.stat(gone)
        assert await driver.get_content("/t/keep") == b"x"
        assert await driver.list("/t") == ["/t/keep"]
        with pytest.raises(PathNotFound):
            await driver.delete("/t/u")
        with pytest.raises(PathNotFound):
            await driver.delete("/never")

    run(scenario())


def test_walk(driver: CheckedDriver) -> None:
    files = {"/w/a/1": b"1", "/w/a/b/22": b"22", "/w/a/b/c/333": b"333", "/w/z": b""}

    async def scenario() -> None:
        for path, data in files.items():
            await driver.put_content(path, data)
        await driver.put_content("/outside", b"not walked")
        infos = await walk_all(driver, "/w")
        by_path = {i.path: i for i in infos}
        assert len(by_path) == len(infos)  # each once
        assert set(by_path) == {"/w/a", "/w/a/b", "/w/a/b/c", *files}
        for path, data in files.items():
            assert (by_path[path].size, by_path[path].is_dir) == (len(data), False)
        for directory in ("/w/a", "/w/a/b", "/w/a/b/c"):
            assert by_path[directory].is_dir
        # Depth first: a directory comes before everything below it.
        order = [i.path for i in infos]
        for i, path in enumerate(order):
            parent = path.rsplit("/", 1)[0]
            if parent != "/w":
                assert order.index(parent) < i
        assert [i.path for i in await walk_all(driver, "/w/a/b/c")] == ["/w/a/b/c/333"]
        with pytest.raises(PathNotFound):
            await walk_all(driver, "/nowhere")

    run(scenario())


def test_path_not_found_everywhere(driver: CheckedDriver) -> None:
    missing = "/no/such/path"
    calls: list[Callable[[], Coroutine[Any, Any, Any]]] = [
        lambda: driver.get_content(missing),
        lambda: read_all(driver.reader(missing)),
        lambda: driver.writer(missing, 3),
        lambda: driver.stat(missing),
        lambda: driver.list(missing),
        lambda: driver.move(missing, "/elsewhere"),
        lambda: driver.delete(missing),
        lambda: walk_all(driver, missing),
    ]

    async def scenario() -> None:
        for i, call in enumerate(calls):
            with pytest.raises(PathNotFound) as caught:
                await call()
            assert caught.value.driver == driver.name, i
            assert missing in str(caught.value) or caught.value.path, i
        with pytest.raises(PathNotFound):
            await driver.stat("/elsewhere")  # the failed move created nothing

    run(scenario())


def test_redirect_and_local_path(driver: CheckedDriver, tmp_path: Path) -> None:
    async def scenario() -> None:
        await driver.put_content("/blobs/x/data", b"x")
        assert await driver.redirect_url("/blobs/x/data", "GET") is None

    run(scenario())
    local = driver.local_path("/blobs/x/data")
    if driver.name == "filesystem":
        assert local == str(tmp_path / "root/blobs/x/data")
        assert Path(local).read_bytes() == b"x"
    else:
        assert local is None


# -- the contract, for the other drivers' test modules ----------------------------------

#: The tests above that hold for every driver.
CONTRACT: tuple[Callable[..., None], ...] = (
    test_put_and_get,
    test_put_overwrites_whole_file,
    test_put_is_atomic_for_concurrent_readers,
    test_get_missing,
    test_reader_from_offset,
    test_reader_invalid_offset_and_missing,
    test_writer_appends_in_pieces,
    test_writer_offset_zero_starts_afresh,
    test_writer_from_offset_truncates_the_rest,
    test_writer_invalid_offset_and_missing,
    test_writer_size_close_and_cancel,
    test_continue_a_file_written_whole,
    test_list_many,
    test_put_many,
    test_get_many,
    test_stat,
    test_mod_time_follows_writes,
    test_list,
    test_move,
    test_delete_file_and_tree,
    test_walk,
    test_path_not_found_everywhere,
)


def contract(*, without: Collection[str] = ()) -> dict[str, Callable[..., None]]:
    """The contract tests by name, but those named in ``without``.

    A driver's test module runs them on its own ``driver`` fixture with
    ``globals().update(contract())``: pytest collects them there like its own tests.
    """
    unknown = set(without) - {test.__name__ for test in CONTRACT}
    assert not unknown, f"not contract tests: {sorted(unknown)}"
    return {test.__name__: test for test in CONTRACT if test.__name__ not in without}

