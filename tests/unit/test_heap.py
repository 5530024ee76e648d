"""keep_freed_heap(): pieces of a body freed and allocated again reuse the heap's pages
instead of taking new ones from the kernel (a page fault each)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

import dockyard

_CHURN = """
import resource, sys
if sys.argv[1] == "keep":
    from dockyard.heap import keep_freed_heap
    keep_freed_heap()

def churn():
    # Eight uploads' pieces of 256,000 bytes in flight, all freed, again and again.
    for _ in range(30):
        pieces = [bytearray(256_000) for _ in range(8)]
        del pieces

churn()  # the heap grows to its size
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    # A process of its own: glibc's thresholds are the process's.
    env = dict(os.environ, PYTHONPATH=str(Path(dockyard.__file__).parents[1]))
    out = subprocess.run([sys.executable, "-c", _CHURN, mode], check=True,
                         capture_output=True, text=True, env=env).stdout
    return int(out)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_freed_pieces_are_reused_without_page_faults() -> None:
    # By default glibc gives the freed top back and takes it again: ~500 faults a round.
    assert _faults("default") > 30 * 100
    assert _faults("keep") < 100
