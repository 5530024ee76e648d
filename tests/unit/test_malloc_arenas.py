"""dockyard.malloc: a server process keeps glibc's malloc arenas to two."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap

import pytest

from dockyard.malloc import ARENAS, limit_arenas

try:
    ctypes.CDLL(None).malloc_stats  # noqa: B018 - glibc only
except (AttributeError, OSError):  # pragma: no cover - not glibc
    pytest.skip("glibc's malloc only", allow_module_level=True)

# Threads allocating at once; glibc's own limit is 8 arenas a CPU.
PROBE = textwrap.dedent("""
    import ctypes, sys, threading
    from dockyard.malloc import limit_arenas
    if sys.argv[1] == "limit":
        print(limit_arenas(), flush=True)
    barrier = threading.Barrier(8)
    def allocate():
        barrier.wait()  # all at once, so that each finds the arenas busy
        kept = [bytes(4096) for _ in range(2000)]
        barrier.wait()
        del kept
    threads = [threading.Thread(target=allocate) for _ in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    ctypes.CDLL(None).malloc_stats()  # one "Arena N:" paragraph each, on stderr
""")


def _arenas(mode: str, env: dict[str, str]) -> tuple[str, int]:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], env=env,
                          capture_output=True, text=True, check=True)
    return done.stdout.strip(), done.stderr.count("Arena ")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return env


def test_threads_share_two_arenas_once_limited() -> None:
    _, unlimited = _arenas("plain", _env())
    said, limited = _arenas("limit", _env())
    assert said == "True"
    assert limited <= ARENAS < unlimited


def test_malloc_arena_max_in_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_arenas() is False
    said, arenas = _arenas("limit", {**_env(), "MALLOC_ARENA_MAX": "4"})
    assert said == "False"
    assert 2 < arenas <= 4
