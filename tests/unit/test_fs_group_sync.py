"""Group commit of the filesystem driver's small writes (storage/drivers/groupsync.py):
concurrent batches are written by the sync thread and share their syncs, renames follow
the sync that covered their temporaries, and a failed write, sync or rename leaves no
temporary file and nothing claimed durable."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest

from dockyard.storage.drivers.base import CheckedDriver, StorageError
from dockyard.storage.drivers.filesystem import FilesystemDriver
from dockyard.storage.drivers.groupsync import GroupSync, group_sync_for


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


def written(tmp_path: Path, count: int) -> list[tuple[str, bytes]]:
    """``count`` files to write: ``target<i>`` holding ``content <i>``."""
    return [(str(tmp_path / f"target{i}"), f"content {i}".encode()) for i in range(count)]


class Recorder:
    """Stands in for ``syncfs``: records, at each sync, which targets exist."""

    def __init__(self, tmp_path: Path, fail: bool = False) -> None:
        self.tmp_path = tmp_path
        self.fail = fail
        self.seen: list[list[str]] = []

    def __call__(self) -> None:
        self.seen.append(sorted(p.name for p in self.tmp_path.glob("target*")))
        if self.fail:
            raise OSError(errno.EIO, "disk gone")


def test_concurrent_batches_share_two_syncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten batches queued together: one sync before any rename, one after all."""
    group = GroupSync(str(tmp_path))
    syncs = Recorder(tmp_path)
    monkeypatch.setattr(group, "_sync", syncs)
    pending = written(tmp_path, 10)

    async def scenario() -> None:
        await asyncio.gather(*(group.commit([p]) for p in pending))
        await group.aclose()

    asyncio.run(scenario())
    assert syncs.seen == [[], sorted(f"target{i}" for i in range(10))]
    assert [(tmp_path / f"target{i}").read_bytes() for i in range(10)] == [
        f"content {i}".encode() for i in range(10)]
    assert temporaries(tmp_path) == []


def test_a_batch_queued_during_a_round_waits_for_the_next_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second batch, queued while the first's sync runs, is renamed only after a
    sync that began after it was written, and answered after one more."""
    group = GroupSync(str(tmp_path))
    syncs = Recorder(tmp_path)
    monkeypatch.setattr(group, "_sync", syncs)
    first, second = written(tmp_path, 2)

    async def scenario() -> None:
        one = asyncio.ensure_future(group.commit([first]))
        await asyncio.sleep(0)  # the first round has started with the first batch only
        await asyncio.gather(one, group.commit([second]))
        await group.aclose()

    asyncio.run(scenario())
    assert syncs.seen == [[], ["target0"], ["target0", "target1"]]


def test_a_failed_sync_fails_its_batches_and_removes_their_temporaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = GroupSync(str(tmp_path))
    monkeypatch.setattr(group, "_sync", Recorder(tmp_path, fail=True))
    pending = written(tmp_path, 2)

    async def scenario() -> list[BaseException | None]:
        results = await asyncio.gather(*(group.commit([p]) for p in pending),
                                       return_exceptions=True)
        await group.aclose()
        return results

    results = asyncio.run(scenario())
    assert all(isinstance(r, OSError) and r.errno == errno.EIO for r in results)
    assert list(tmp_path.glob("target*")) == []
    assert temporaries(tmp_path) == []


def test_an_unexpected_error_fails_the_round_instead_of_leaving_it_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the round raises reaches the writers waiting on it (none waits forever),
    and their temporaries are removed."""
    group = GroupSync(str(tmp_path))

    def broken() -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(group, "_sync", broken)

    async def scenario() -> list[BaseException | None]:
        results = await asyncio.gather(*(group.commit([item]) for item in written(tmp_path, 2)),
                                       return_exceptions=True)
        await group.aclose()
        return list(results)

    results = asyncio.run(scenario())
    assert all(isinstance(r, RuntimeError) for r in results)
    assert list(tmp_path.glob("target*")) == []
    assert temporaries(tmp_path) == []


def test_a_failed_write_fails_only_its_batch(tmp_path: Path) -> None:
    """A batch one of whose files cannot be made (a file where its directory must be)
    fails whole, leaving none of its files; the others land."""
    (tmp_path / "file").write_bytes(b"x")
    bad = [(str(tmp_path / "first"), b"1"), (str(tmp_path / "file/below"), b"2")]
    group = group_sync_for(str(tmp_path))
    assert group is not None, "the test directory is expected on ext4, XFS or btrfs"

    failed, landed = asyncio.run(_bad_beside_good(group, bad, tmp_path))
    assert isinstance(failed, NotADirectoryError)
    assert landed is None
    assert not (tmp_path / "first").exists()
    assert (tmp_path / "target0").read_bytes() == b"content 0"
    assert temporaries(tmp_path) == []


async def _bad_beside_good(
    group: GroupSync, bad: list[tuple[str, bytes]], tmp_path: Path
) -> list[BaseException | None]:
    """The outcomes of ``bad`` and of a good batch committed at the same time."""
    results = await asyncio.gather(group.commit(bad), group.commit(written(tmp_path, 1)),
                                   return_exceptions=True)
    await group.aclose()
    return list(results)


def test_a_failed_rename_fails_only_its_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose second rename fails keeps the first (renamed in order), removes
    the rest and fails; the others land."""
    group = GroupSync(str(tmp_path))
    monkeypatch.setattr(group, "_sync", Recorder(tmp_path))
    real_replace = os.replace

    def replace(source: str, target: str) -> None:
        if target.endswith("second"):
            raise OSError(errno.EIO, "rename failed")
        real_replace(source, target)

    monkeypatch.setattr("dockyard.storage.drivers.groupsync.os.replace", replace)
    bad = [(str(tmp_path / name), name.encode()) for name in ("first", "second", "third")]

    failed, landed = asyncio.run(_bad_beside_good(group, bad, tmp_path))
    assert isinstance(failed, OSError) and failed.errno == errno.EIO
    assert landed is None
    assert (tmp_path / "first").read_bytes() == b"first"
    assert not (tmp_path / "second").exists()
    assert not (tmp_path / "third").exists()
    assert (tmp_path / "target0").read_bytes() == b"content 0"
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("grouped", [True, False], ids=["group-sync", "fsync-each"])
def test_put_many_both_ways(tmp_path: Path, grouped: bool) -> None:
    """With a group sync (ext4, XFS, btrfs) or an fsync a file (other filesystems),
    put_many writes each file whole, leaves what already holds its content, and maps a
    failure to a StorageError with no temporary file left."""
    fs = FilesystemDriver(str(tmp_path))
    if not grouped:
        fs._group = None
    driver = CheckedDriver(fs)

    async def scenario() -> None:
        await driver.put_many([("/r/a/link", b"sha256:a"), ("/r/b/link", b"sha256:b")])
        await driver.put_many([("/r/a/link", b"sha256:a"), ("/r/c/link", b"sha256:c")])
        await driver.put_content("/r/file", b"x")
        with pytest.raises(StorageError):
            await driver.put_many([("/r/d/link", b"sha256:d"), ("/r/file/below", b"2")])
        await driver.aclose()

    asyncio.run(scenario())
    assert {p.parent.name: p.read_bytes() for p in tmp_path.glob("r/*/link")} == {
        "a": b"sha256:a", "b": b"sha256:b", "c": b"sha256:c"}
    assert temporaries(tmp_path) == []
