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
