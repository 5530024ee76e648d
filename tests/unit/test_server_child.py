"""The start-up work :func:`dockyard.server._in_child` runs in a forked child (the
index's migration and build): its outcome, and its memory, stay apart from the server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.server import _in_child

SRC = Path(__file__).resolve().parents[2] / "src"


class _Unpicklable(Exception):
    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("not picklable")


def test_work_runs_in_another_process(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    _in_child(lambda: marker.write_text(str(os.getpid())), "writing a marker")
    assert int(marker.read_text()) != os.getpid()


def test_what_the_child_raised_is_raised_here() -> None:
    def fail() -> None:
        raise ValueError("index file unusable")

    with pytest.raises(ValueError, match="index file unusable"):
        _in_child(fail, "index preparation")


def test_an_exception_that_cannot_travel_is_reported() -> None:
    def fail() -> None:
        raise _Unpicklable("odd")

    with pytest.raises(RuntimeError, match="index preparation failed: _Unpicklable"):
        _in_child(fail, "index preparation")


_MEMORY_CHECK = """
from pathlib import Path
from dockyard.server import _in_child

def peak_kib():
    status = Path("/proc/self/status").read_text()
    return int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1])

def allocate():
    assert len(b"x" * (64 << 20)) == 64 << 20  # every page written, so resident

before = peak_kib()
_in_child(allocate, "allocating 64 MiB")
after_child = peak_kib()
allocate()  # the same work here does raise this process's peak
print(after_child - before, peak_kib() - before)
"""


def test_memory_the_child_takes_does_not_stay_here() -> None:
    # A fresh interpreter: this one's peak may already be above what the check adds.
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHECK], env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True, text=True, check=True, timeout=60,
    )
    after_child, after_here = map(int, done.stdout.split())
    assert after_child < 32 << 10
    assert after_here >= 60 << 10
