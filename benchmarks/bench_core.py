"""What every benchmark group shares: measured processes, rows, samples, formatting.

Part of benchmarks/run.py (the one entry point); see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import RegistryProcess  # run.py puts the checkout first on sys.path

MB = 1_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
LABELS = ("dockyard", "docker-registry")


# --------------------------------------------------------------------------- processes


def process_group(pgid: int) -> list[int]:
    """Every live process in the group ``pgid``: a server started in a session of its own
    and the processes it forked (dockyard's workers).

    Found by following ``/proc/<pid>/task/<tid>/children`` from the leader, a read or two
    per process of the server. Scanning all of ``/proc`` cost a read per process of the
    machine (1.5 ms with 70 processes), and the rows that time single requests measure
    around them (the fresh tags/list row read it between the tag push and the listing,
    which left the server idle for that long). Without the ``children`` files (a kernel
    built without them) ``/proc`` is scanned.
    """
    if not os.path.exists(f"/proc/{pgid}/task/{pgid}/children"):
        return _scan_process_group(pgid)
    pids = []
    todo = [pgid]
    while todo:
        pid = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue  # gone meanwhile
        pids.append(pid)
        for tid in tasks:
            try:
                children = _read_proc(f"/proc/{pid}/task/{tid}/children")
            except OSError:
                continue
            todo.extend(int(child) for child in children.split())
    return pids


def _read_proc(path: str) -> str:
    """A small /proc file, read in two system calls (``Path.read_text`` took three
    times as long: a few reads make a measurement)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 65536).decode()
    finally:
        os.close(fd)


def _scan_process_group(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def group_cpu_seconds(pgid: int | None) -> float:
    """User + system CPU time of the group's processes, from /proc/<pid>/stat."""
    if pgid is None:
        return 0.0
    ticks = 0
    for pid in process_group(pgid):
        try:
            stat = _read_proc(f"/proc/{pid}/stat")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLK_TCK


def group_peak_rss_mib(pgid: int | None) -> float:
    """Largest VmHWM (peak resident set) among the group's processes, in MiB."""
    if pgid is None:
        return 0.0
    peak = 0
    for pid in process_group(pgid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
    return peak / 1024


def group_pss_mib(pgid: int) -> float:
    """Sum of the group's proportional set sizes (``Pss`` of /proc/<pid>/smaps_rollup),
    in MiB: a page shared by the supervisor and its workers counts once over them all."""
    total = 0
    for pid in process_group(pgid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
    return total / 1024


def server_kind(label: str) -> str:
    """The server a process label names: ``dockyard (on)`` -> ``dockyard``."""
    return next((kind for kind in LABELS if label == kind or label.startswith(kind + " ")),
                label)


class PssSampler:
    """The peak, per label, of :func:`group_pss_mib` of a server's process group,
    sampled every ``interval`` seconds by a thread while a group runs (VmHWM is kept by
    the kernel per process; a sum over processes has no such counter)."""

    def __init__(self, servers: list[tuple[str, int]], interval: float = 0.25) -> None:
        self.servers = servers
        self.interval = interval
        self.peaks = {label: 0.0 for label, _ in servers}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pss-sampler", daemon=True)

    def __enter__(self) -> PssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        for label, pgid in self.servers:
            self.peaks[label] = max(self.peaks[label], group_pss_mib(pgid))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()


class Server:
    """A registry process of the test suite's (tests/support/servers.py), plus what is measured.

    Its own process group (``start_new_session``) holds it and its workers.
    """

    def __init__(self, label: str, proc: RegistryProcess) -> None:
        self.label = label
        self.proc = proc

    @property
    def port(self) -> int:
        return self.proc.port

    def cpu_seconds(self) -> float:
        return group_cpu_seconds(self.proc.pid)

    def peak_rss_mib(self) -> float:
        return group_peak_rss_mib(self.proc.pid)


def worker_args(workers: int | None) -> list[str]:
    """dockyard's command line arguments: ``--workers N``, or with None none, so that it
    runs with its defaults (one worker per CPU), as a user runs it. Its RegistryProcess
    takes ``workers=None`` so that the config does not set ``http.workers`` either."""
    return [] if workers is None else ["--workers", str(workers)]


def describe_workers(workers: int | None) -> str:
    if workers is None:
        return f"its defaults: {len(os.sched_getaffinity(0))} workers, one per CPU"
    return f"--workers {workers}"


# --------------------------------------------------------------------------- figures


@dataclass
class Row:
    key: str
    title: str
    unit: str
    higher_is_better: bool
    cpu: bool = True  # a line in the CPU table


@dataclass
class Sample:
    value: float
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)  # e.g. backend CPU, requests


class Measure:
    """Server (process group) and client CPU seconds around one workload; ``backend``
    (a process group id, e.g. moto's) is measured too when given."""

    def __init__(self, server: Server, backend: int | None = None) -> None:
        self.server = server
        self.backend = backend
        self.backend_cpu = 0.0

    def __enter__(self) -> Measure:
        self.s0 = self.server.cpu_seconds()
        self.b0 = group_cpu_seconds(self.backend)
        self.c0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server_cpu = self.server.cpu_seconds() - self.s0
        self.backend_cpu = group_cpu_seconds(self.backend) - self.b0
        self.client_cpu = time.process_time() - self.c0

    def sample(self, value: float, **extra: float) -> Sample:
        return Sample(value, self.server_cpu, self.client_cpu, dict(extra))


# --------------------------------------------------------------------------- text


def human(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([KMG]?)(?:i?B)?", text.strip(), re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1G, 64M, 4096)")
    shift = {"": 0, "K": 10, "M": 20, "G": 30}[match.group(2).upper()]
    return int(match.group(1)) << shift


def client_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The benchmark client's event loop: uvloop's when installed (cheaper per request,
    leaving more of the cores to the servers), else None (asyncio's own)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"
