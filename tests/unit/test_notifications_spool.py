"""The notification spool: order, acknowledgement, restart, the bound, ownership."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard import filewrite
from dockyard.notifications import DiskSpool, MemorySpool, Spool, SpoolBusy
from dockyard.notifications import spool as spool_module


def lines(n: int, start: int = 0) -> list[bytes]:
    return [f'{{"n":{i}}}'.encode() for i in range(start, start + n)]


def drain(spool: Spool, batch: int = 3) -> list[bytes]:
    out: list[bytes] = []
    while True:
        got, position = spool.peek(batch)
        if not got:
            return out
        out.extend(got)
        spool.ack(position, len(got))


@pytest.mark.parametrize("kind", ["disk", "memory"])
def test_in_order_and_acknowledged_once(tmp_path: Path, kind: str) -> None:
    spool: Spool = DiskSpool(tmp_path / "s", 100) if kind == "disk" else MemorySpool(100)
    spool.append(lines(5))
    got, position = spool.peek(2)
    assert got == lines(2)
    assert spool.peek(2)[0] == lines(2)  # not acknowledged: read again
    spool.ack(position, 2)
    spool.append(lines(3, 5))
    assert drain(spool) == lines(6, 2)
    assert spool.pending == 0
    assert drain(spool) == []


def test_survives_a_restart_without_redelivery(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path / "s", 100)
    spool.append(lines(6))
    _, position = spool.peek(4)
    spool.ack(position, 4)
    spool.close()
    again = DiskSpool(tmp_path / "s", 100)
    assert again.pending == 2
    again.append(lines(1, 6))
    assert drain(again) == lines(3, 4)
    again.close()
    assert DiskSpool(tmp_path / "s", 100).pending == 0


def test_a_partial_last_line_is_not_delivered_and_later_events_are(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path / "s", 100)
    spool.append(lines(2))
    spool.close()
    segment = next((tmp_path / "s").glob("*.events"))
    with segment.open("ab") as f:
        f.write(b'{"torn":')  # a crash in the middle of a write
    again = DiskSpool(tmp_path / "s", 100)
    again.append(lines(1, 2))
    assert drain(again) == lines(3)


@pytest.mark.parametrize("kind", ["disk", "memory"])
def test_bound_drops_the_oldest(tmp_path: Path, kind: str) -> None:
    spool: Spool = DiskSpool(tmp_path / "s", 3) if kind == "disk" else MemorySpool(3)
    assert spool.append(lines(2)) == 0
    assert spool.append(lines(3, 2)) == 2
    assert spool.pending == 3 and spool.drops == 2
    assert drain(spool) == lines(3, 2)


def test_segments_rotate_and_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "_SEGMENT_BYTES", 20)
    spool = DiskSpool(tmp_path / "s", 1000)
    for i in range(10):
        spool.append(lines(1, i))
    assert len(list((tmp_path / "s").glob("*.events"))) > 2
    assert drain(spool, batch=4) == lines(10)
    assert len(list((tmp_path / "s").glob("*.events"))) <= 1


def test_one_owner_at_a_time(tmp_path: Path) -> None:
    owner = DiskSpool(tmp_path / "s", 10)
    with pytest.raises(SpoolBusy):
        DiskSpool(tmp_path / "s", 10)
    owner.close()
    DiskSpool(tmp_path / "s", 10).close()


def test_reads_events_across_read_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Blocks shorter than an event: every line spans blocks; a torn last line stays unread.
    monkeypatch.setattr(spool_module, "_READ_BYTES", 5)
    spool = DiskSpool(tmp_path / "s", 100)
    spool.append(lines(7))
    got, position = spool.peek(3)
    assert got == lines(3)
    spool.ack(position, 3)
    spool.close()
    with next((tmp_path / "s").glob("*.events")).open("ab") as f:
        f.write(b'{"torn":')
    again = DiskSpool(tmp_path / "s", 100)
    assert drain(again, batch=2) == lines(4, 3)


@pytest.mark.parametrize("mirror", [0, 4, 1000])
def test_peeks_from_memory_what_the_disk_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror: int
) -> None:
    """The events kept in memory are exactly what a read of the disk gives, with the
    same positions, across segment rotations, the mirror's bound, drops and acks; a
    restart reads the rest from disk."""
    monkeypatch.setattr(spool_module, "_SEGMENT_BYTES", 40)
    monkeypatch.setattr(spool_module, "_MIRROR_EVENTS", mirror)
    spool = DiskSpool(tmp_path / "s", 25)
    appended: list[bytes] = []
    delivered: list[bytes] = []
    served_from_memory = 0
    for step in range(40):
        batch = lines(step % 5 + 1, len(appended))
        spool.append(batch)
        appended.extend(batch)
        limit = step % 4 + 1
        from_disk = spool._read(limit)  # what a spool without the mirror would give
        served_from_memory += bool(spool._mirror) and spool._mirror[0][0] == spool._cursor
        got, position = spool.peek(limit)
        assert (got, position) == from_disk
        if step % 3:
            spool.ack(position, len(got))
            delivered.extend(got)
    assert spool.drops > 0  # the bound of 25 dropped some
    spool.close()
    rest = drain(DiskSpool(tmp_path / "s", 25))
    kept = delivered + rest
    assert kept == sorted(set(kept), key=appended.index)  # in order, none twice
    assert rest == appended[-len(rest):]  # the newest are never dropped
    assert (served_from_memory > 0) == (mirror > 0)


def test_a_short_write_goes_on_where_it_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel may take less than a write asked (a signal, a nearly full disk): the
    rest follows, and a restart reads every event whole."""
    pwritev, write = os.pwritev, os.write

    def short_pwritev(fd: int, buffers: list[bytes], offset: int) -> int:
        return pwritev(fd, [memoryview(buffers[0])[:1000]], offset)

    def short_write(fd: int, data: bytes) -> int:
        return write(fd, memoryview(data)[:1000])

    # Whichever call the spool makes takes at most 1,000 bytes.
    monkeypatch.setattr(filewrite.os, "pwritev", short_pwritev)
    monkeypatch.setattr(filewrite.os, "write", short_write)
    events = [b'{"n":%d,"pad":"%s"}' % (i, b"x" * 300) for i in range(500)]
    spool = DiskSpool(tmp_path / "s", 1000)
    spool.append(events)
    spool.close()
    again = DiskSpool(tmp_path / "s", 1000)
    assert again.pending == 500
    assert drain(again, 200) == events


def test_a_failed_write_leaves_whole_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails part way (a full disk) may leave part of a line: the next
    append goes to a new segment, so every event a restart reads is whole."""
    spool = DiskSpool(tmp_path / "s", 100)
    spool.append(lines(2))
    pwritev = os.pwritev

    def failing_pwritev(fd: int, buffers: list[bytes], offset: int) -> int:
        pwritev(fd, [memoryview(buffers[0])[:3]], offset)  # part of the first line
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(filewrite.os, "pwritev", failing_pwritev)
    with pytest.raises(OSError):
        spool.append(lines(1, 2))
    monkeypatch.setattr(filewrite.os, "pwritev", pwritev)
    spool.append(lines(2, 3))
    assert len(list((tmp_path / "s").glob("*.events"))) == 2
    spool.close()
    assert drain(DiskSpool(tmp_path / "s", 100)) == lines(2) + lines(2, 3)


def test_reads_the_cursor_of_an_earlier_version(tmp_path: Path) -> None:
    """Versions before the fixed-length record replaced ``cursor`` by rename, its numbers
    unpadded: a spool they left resumes where they stopped, and the record written over
    theirs reads back whole."""
    spool = DiskSpool(tmp_path / "s", 100)
    spool.append(lines(5))
    spool.close()
    segment = next((tmp_path / "s").glob("*.events"))
    offset = sum(len(line) + 1 for line in lines(2))
    (tmp_path / "s" / "cursor").write_text(f"{int(segment.stem)} {offset}\n")
    again = DiskSpool(tmp_path / "s", 100)
    assert again.pending == 3
    got, position = again.peek(1)
    assert got == lines(1, 2)
    again.ack(position, 1)
    again.close()
    record = (tmp_path / "s" / "cursor").read_bytes()
    assert record.count(b"\n") == 1 and len(record.split()) == 2  # nothing of the old left
    assert drain(DiskSpool(tmp_path / "s", 100)) == lines(2, 3)


@pytest.mark.parametrize("kind", ["disk", "memory"])
def test_peek_nowait_answers_from_memory_or_not_at_all(tmp_path: Path, kind: str) -> None:
    """What an event loop may take without a thread: the same events as :meth:`peek`
    while the spool has them in memory; None when they must be read from disk, or a
    thread holds the spool (it may be waiting for the disk)."""
    spool: Spool = DiskSpool(tmp_path / "s", 100) if kind == "disk" else MemorySpool(100)
    assert spool.blocking == (kind == "disk")
    spool.append(lines(4))
    assert spool.peek_nowait(3) == spool.peek(3)
    got = spool.peek_nowait(3)
    assert got is not None
    spool.ack(got[1], 3)
    assert spool.peek_nowait(3) == (lines(1, 3), spool.peek(3)[1])
    if isinstance(spool, DiskSpool):
        with spool._lock:
            assert spool.peek_nowait(3) is None
        spool.close()
        again = DiskSpool(tmp_path / "s", 100)  # a new process: nothing in memory
        assert again.peek_nowait(3) is None
        assert again.peek(3)[0] == lines(1, 3)


def test_a_spool_that_fails_to_open_is_not_left_owned(tmp_path: Path) -> None:
    """An error while opening (here the cursor cannot be opened) releases the lock, so a
    later attempt, once the cause is gone, owns the spool instead of finding it busy."""
    (tmp_path / "s" / "cursor").mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        DiskSpool(tmp_path / "s", 10)
    (tmp_path / "s" / "cursor").rmdir()
    DiskSpool(tmp_path / "s", 10).close()
