"""The benchmark's measured processes: a server's group, found through its children."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_core


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[bytes]]:
    """A session leader with two children, one of which has a child of its own."""
    proc = subprocess.Popen(
        ["sh", "-c", "sh -c 'sleep 60 & wait' & sleep 60 & wait"], start_new_session=True)
    try:
        yield proc
    finally:
        proc.kill()
        subprocess.run(["pkill", "-KILL", "-g", str(proc.pid)], check=False)
        proc.wait()


def test_the_group_is_the_leader_and_every_descendant(tree: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    scanned: list[int] = []
    while time.monotonic() < deadline:
        scanned = sorted(bench_core._scan_process_group(tree.pid))
        if len(scanned) == 4:  # sh, sh, sleep, sleep
            break
        time.sleep(0.05)
    assert len(scanned) == 4, scanned
    assert sorted(bench_core.process_group(tree.pid)) == scanned
    assert tree.pid in scanned


def test_a_group_that_is_gone_is_empty() -> None:
    proc = subprocess.Popen(["true"], start_new_session=True)
    proc.wait()
    assert bench_core.process_group(proc.pid) == []
    assert bench_core.group_cpu_seconds(proc.pid) == 0.0
