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

    flock /tmp/dockyard-bench.lock python3 benchmarks/features_callgrind.py
    python3 benchmarks/features_callgrind.py --configs off both --requests 1000
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

    def __init__(self, *args: Any, stretch: float, outdir: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stretch = stretch
        self.outdir = outdir

    def command(self) -> list[str]:
        return [
            "valgrind", "--tool=callgrind", "--separate-threads=yes",
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


def instructions(outdir: Path) -> int:
    """Instructions of every thread's latest dump (``summary:`` lines), summed."""
    latest: dict[str, tuple[int, int]] = {}  # thread file stem -> (dump part, Ir)
    for path in outdir.glob("callgrind.out.*"):
        match = re.fullmatch(r"callgrind\.out\.(\d+)(?:\.(\d+))?-(\d+)", path.name)
        if not match:
            continue
        part, thread = int(match.group(2) or 0), match.group(3)
        text = path.read_text(errors="replace")
        found = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if found and part >= latest.get(thread, (-1, 0))[0]:
            latest[thread] = (part, int(found.group(1)))
    return sum(ir for _, ir in latest.values())


def measure(label: str, args: argparse.Namespace, workdir: Path, receiver: WebhookReceiver,
            data: tuple[bytes, bytes, bytes], runner: asyncio.Runner) -> dict[str, float]:
    layer, config, manifest = data
    digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    outdir = workdir / f"cg-{label}"
    outdir.mkdir()
    proc = CallgrindProcess(
        workdir / label, secret=secrets.token_hex(32), log_level="warn",
        overrides=settings(label, receiver, free_port()),
        extra_args=["--workers", "1"], stretch=args.stretch, outdir=outdir)
    result: dict[str, float] = {}
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
            result[row] = instructions(outdir) / args.requests
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
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-callgrind-"))
    layer = make_layer()
    config = make_config(layer)
    data = (layer, config, make_manifest(config, layer, "features"))
    receiver = WebhookReceiver(workdir / "receiver")
    results: dict[str, dict[str, float]] = {}
    try:
        with contextlib.ExitStack() as stack, asyncio.Runner() as runner:
            receiver.start()
            stack.callback(receiver.stop)
            for label in args.configs:
                results[label] = measure(label, args, workdir, receiver, data, runner)
                print(f"{label}: " + ", ".join(f"{row} {ir:,.0f}" for row, ir in
                                               results[label].items()), flush=True)
    finally:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for label in results:
                shutil.copytree(workdir / f"cg-{label}", args.keep / label, dirs_exist_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
    base = results.get("off")
    print("\n| configuration | blob HEAD instr/req | manifest GET instr/req |")
    print("|---|---:|---:|")
    for label, rows in results.items():
        cells = []
        for row in ("head", "manifest_get"):
            cell = f"{rows[row]:,.0f}"
            if base and label != "off":
                cell += f" ({rows[row] / base[row] - 1:+.1%})"
            cells.append(cell)
        print(f"| {label} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
