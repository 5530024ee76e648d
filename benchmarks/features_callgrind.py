#!/usr/bin/env python3
"""What dockyard's operator features cost, in instructions: the blob HEAD and manifest
GET rows on a ``--workers 1`` server under valgrind's callgrind, features off and on.

Wall-clock figures on a shared machine swing by 20-25%; instruction counts repeat to
0.1%. For each configuration (``off``, ``metrics``, ``notify``, ``both``: see
``CONFIGS``) a server of this checkout runs under ``valgrind --tool=callgrind
--separate-threads=yes``; after a warm-up the counters are zeroed (``callgrind_control
-z``), ``--requests`` requests of the row are sent on ``--concurrency`` connections
(32, as the rows), and once the receiver holds every event the counters are dumped
(``callgrind_control -d``): every thread's instructions, divided by the requests, are
the row's cost. The notifier's and the delivery's batching windows are stretched by
valgrind's slowdown (``--stretch``, about 100x) so that batches are as large as at
full speed.

What this does not show: the share of CPU time. On 2026-12-06 the features cost +9-10%
in instructions here and +20-30% of server CPU per request in ``features.py``
(benchmarks/README.md, "Operator features"). Part of the gap is valgrind's: under it
the page-cache reads (``dockyard.nowait``) fall back to a thread (``run_in_executor``,
11% of the event loop's instructions in ``off``), which natively they never do, so
``off`` is dearer here; removing that share still leaves some +10%. The rest is
cycles, not instructions (this VM has no hardware counters to say which). Compare runs
of this script with each other, to see a change's effect; issue 11's bound is judged
on ``features.py``.

``--cache-sim SIZE`` adds valgrind's cache simulation (32 KiB L1 caches and a last
level of SIZE, 16-way; 1M stands for a core's L2 here) and reports, beside the
instructions, the simulated last-level misses per request (instruction fetches, data
reads and writes): a repeatable view of what the features do to the caches, which the
instruction counts miss (about twice as slow).

    flock /tmp/dockyard-bench.lock python3 benchmarks/features_callgrind.py
    python3 benchmarks/features_callgrind.py --configs off both --requests 1000
    python3 benchmarks/features_callgrind.py --configs off both --requests 1000 --cache-sim 1M
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _path in (Path(__file__).resolve().parent.parent, Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
from tests.support.net import free_port  # noqa: E402
from tests.support.servers import RegistryProcess  # noqa: E402
from tests.support.webhook import WebhookReceiver  # noqa: E402

from bench_client import Connection, expect, run_pool  # noqa: E402
from bench_core import parse_size  # noqa: E402
from bench_manifests import MANIFEST_ACCEPT, make_config, make_layer, make_manifest  # noqa: E402
from features import BASE, REPO, seed  # noqa: E402

CONFIGS = ("off", "metrics", "notify", "both")

# Runs dockyard with the batching windows stretched (valgrind runs code ~100x slower).
_LAUNCH = (
    "import sys; import dockyard.notifications.notifier as n, "
    "dockyard.notifications.endpoint as e; f = float(sys.argv.pop(1)); "
    "n.LINGER *= f; e.LINGER *= f; from dockyard.cli import main; "
    "sys.argv[0] = 'dockyard'; raise SystemExit(main())"
)


class CallgrindProcess(RegistryProcess):
    """A dockyard server under callgrind (counting off until told: ``-z`` zeroes)."""

    def __init__(
        self, *args: Any, stretch: float, outdir: Path, cache: int | None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.stretch = stretch
        self.outdir = outdir
        self.cache = cache

    def command(self) -> list[str]:
        simulate = [] if self.cache is None else [
            "--cache-sim=yes", f"--LL={self.cache},16,64", "--I1=32768,8,64", "--D1=32768,8,64"]
        return [
            "valgrind", "--tool=callgrind", "--separate-threads=yes", *simulate,
            f"--callgrind-out-file={self.outdir}/callgrind.out.%p",
            sys.executable, "-c", _LAUNCH, str(self.stretch),
            "serve", str(self.config_path), *self.extra_args,
        ]


def settings(label: str, receiver: WebhookReceiver, debug_port: int) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if label in ("metrics", "both"):
        extra["http"] = {"debug": {"addr": f"127.0.0.1:{debug_port}",
                                   "prometheus": {"enabled": True}}}
    if label in ("notify", "both"):
        extra["notifications"] = {"endpoints": [
            {"name": "bench", "url": receiver.hook_url, "timeout": "5s"}]}
    return {**BASE, **extra}


async def requests(port: int, row: str, digest: str, count: int, concurrency: int) -> None:
    async def job(conn: Connection, i: int) -> None:
        if row == "head":
            r = await conn.request("HEAD", f"/v2/{REPO}/blobs/{digest}", {})
            expect(r, 200, "blob HEAD")
        else:
            r = await conn.request("GET", f"/v2/{REPO}/manifests/latest",
                                   {"Accept": MANIFEST_ACCEPT})
            expect(r, 200, "manifest GET")

    await run_pool(port, concurrency, count, job)


def counts(outdir: Path) -> dict[str, int]:
    """Every event (``Ir``, and the cache simulation's misses) of every thread's latest
    dump (``summary:`` lines), summed."""
    latest: dict[str, tuple[int, dict[str, int]]] = {}  # thread file stem -> (part, events)
    for path in outdir.glob("callgrind.out.*"):
        match = re.fullmatch(r"callgrind\.out\.(\d+)(?:\.(\d+))?-(\d+)", path.name)
        if not match:
            continue
        part, thread = int(match.group(2) or 0), match.group(3)
        text = path.read_text(errors="replace")
        names = re.search(r"^events: (.+)$", text, re.M)
        found = re.search(r"^(?:summary|totals): (.+)$", text, re.M)
        if names and found and part >= latest.get(thread, (-1, {}))[0]:
            latest[thread] = (part, dict(zip(names.group(1).split(),
                                             map(int, found.group(1).split()), strict=False)))
    total: dict[str, int] = {}
    for _, events in latest.values():
        for name, value in events.items():
            total[name] = total.get(name, 0) + value
    return total


def last_level_misses(events: dict[str, float]) -> float:
    """Simulated last-level misses: instruction fetches, data reads and data writes."""
    return events.get("ILmr", 0) + events.get("DLmr", 0) + events.get("DLmw", 0)


def measure(label: str, args: argparse.Namespace, workdir: Path, receiver: WebhookReceiver,
            data: tuple[bytes, bytes, bytes], runner: asyncio.Runner
            ) -> dict[str, dict[str, float]]:
    layer, config, manifest = data
    digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    outdir = workdir / f"cg-{label}"
    outdir.mkdir()
    proc = CallgrindProcess(
        workdir / label, secret=secrets.token_hex(32), log_level="warn",
        overrides=settings(label, receiver, free_port()),
        extra_args=["--workers", "1"], stretch=args.stretch, outdir=outdir,
        cache=args.cache_sim)
    result: dict[str, dict[str, float]] = {}
    try:
        proc.start(deadline=300)
        notifying = label in ("notify", "both")
        before = len(receiver.events())
        runner.run(seed(proc.port, layer, config, manifest))
        if notifying:  # the three pushes of the seed
            before += 3
            receiver.wait_events(before, timeout=600)
        pid = str(proc.pid)
        for row in ("head", "manifest_get"):
            runner.run(requests(proc.port, row, digest, args.warmup, args.concurrency))
            if notifying:
                receiver.wait_events(before + args.warmup, timeout=600)
            subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
            runner.run(requests(proc.port, row, digest, args.requests, args.concurrency))
            if notifying:
                receiver.wait_events(before + args.warmup + args.requests, timeout=600)
                before += args.warmup + args.requests
            else:
                time.sleep(args.stretch * 0.35)  # the same idle time as the windows
            for old in outdir.glob("callgrind.out.*"):
                old.unlink()
            subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
            time.sleep(2)
            result[row] = {name: value / args.requests
                           for name, value in counts(outdir).items()}
            rowdir = outdir / row
            rowdir.mkdir()
            for dump in outdir.glob("callgrind.out.*"):
                dump.rename(rowdir / dump.name)
    finally:
        proc.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32,
                        help="connections sending at once (32 as in the rows of run.py and "
                             "features.py; 1 was this script's measure until 2026-12-06)")
    parser.add_argument("--stretch", type=float, default=100.0)
    parser.add_argument("--keep", type=Path,
                        help="keep the callgrind files here (for callgrind_annotate)")
    parser.add_argument("--cache-sim", type=parse_size, metavar="SIZE",
                        help="simulate the caches, with a last level of SIZE (e.g. 1M), "
                             "and report its misses per request too")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-callgrind-"))
    layer = make_layer()
    config = make_config(layer)
    data = (layer, config, make_manifest(config, layer, "features"))
    receiver = WebhookReceiver(workdir / "receiver")
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        with contextlib.ExitStack() as stack, asyncio.Runner() as runner:
            receiver.start()
            stack.callback(receiver.stop)
            for label in args.configs:
                results[label] = measure(label, args, workdir, receiver, data, runner)
                print(f"{label}: " + ", ".join(f"{row} {events['Ir']:,.0f}" for row, events
                                               in results[label].items()), flush=True)
    finally:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for label in results:
                shutil.copytree(workdir / f"cg-{label}", args.keep / label, dirs_exist_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
    measures: list[tuple[str, Any]] = [("instr/req", lambda e: e["Ir"])]
    if args.cache_sim:
        measures.append(("LL misses/req", last_level_misses))
    base = results.get("off")
    head = [f"{row} {what}" for what, _ in measures for row in ("blob HEAD", "manifest GET")]
    print("\n| configuration | " + " | ".join(head) + " |")
    print("|---|" + "---:|" * len(head))
    for label, rows in results.items():
        cells = []
        for _, value in measures:
            for row in ("head", "manifest_get"):
                cell = f"{value(rows[row]):,.0f}"
                if base and label != "off":
                    cell += f" ({value(rows[row]) / value(base[row]) - 1:+.1%})"
                cells.append(cell)
        print(f"| {label} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
