#!/usr/bin/env python3
"""dockyard side by side with Debian's docker-registry (distribution 2.8), in one run.

Starts both servers on free loopback ports and runs the same workloads against both,
alternating server by server in every repetition. Prints the median of each figure for
both and the ratio, where > 1 always means dockyard did better. Groups of
workloads, each with its own pair of servers, run one after the other:

- blobs: big blob push (monolithic, chunked) and pull, small blobs, blob HEAD
  (filesystem storage);
- images: whole images (manifest, config, five layers) pushed, then pulled, by 8
  clients at once (filesystem storage);
- manifests: manifest PUT and GET by tag, tags/list of a 10,000-tag repository, a full
  _catalog walk of 2,000 repositories (filesystem storage, seeded before the start);
- s3: push and pull (redirected and streamed) of a 256 MiB blob, blob HEAD with and
  without the Redis cache (S3 storage on a moto server, redis-server; both started here).
- ceph: push and pull of a 256 MiB blob on radosgw (both servers) and on RADOS (dockyard;
  docker-registry has none), on a single-node Ceph cluster started here;
- proxy: pulls through the pull-through cache, cold and warm;
- ops: blob HEAD and manifest GET with metrics and health checks on against off.

See benchmarks/README.md.

    python3 benchmarks/run.py                       # everything, full size, 3 repetitions
    python3 benchmarks/run.py --size 64M --s3-size 32M --repeat 1   # a quick look
    python3 benchmarks/run.py --only manifests,s3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

# The checkout's root (for tests/support/servers.py and the rest of tests/) and benchmarks/.
for _path in (Path(__file__).resolve().parent.parent, Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
from tests.support.servers import DISTRIBUTION_BINARY  # noqa: E402

from bench_blobs import BlobsGroup  # noqa: E402
from bench_ceph import CephGroup  # noqa: E402
from bench_ceph import missing_dependencies as ceph_missing  # noqa: E402
from bench_core import (  # noqa: E402
    LABELS,
    PssSampler,
    Row,
    Sample,
    client_loop_factory,
    describe_workers,
    fmt,
    log,
    parse_size,
    server_kind,
)
from bench_images import ImagesGroup  # noqa: E402
from bench_manifests import ManifestsGroup  # noqa: E402
from bench_ops import OpsGroup  # noqa: E402
from bench_proxy import ProxyGroup  # noqa: E402
from bench_s3 import S3Group, missing_dependencies  # noqa: E402

GROUPS = ("blobs", "images", "manifests", "s3", "proxy", "ceph", "ops")
Results = dict[str, dict[str, list[Sample]]]  # label -> row key -> one sample per repetition


class Group(Protocol):
    name: str

    def rows(self) -> list[Row]: ...
    def processes(self) -> list[tuple[str, Any]]: ...
    def start(self, stack: contextlib.ExitStack, runner: Any) -> None: ...
    def begin_rep(self, rep: int) -> None: ...
    async def run(self, label: str, rep: int) -> dict[str, Sample]: ...
    def peak_rss(self) -> dict[str, float]: ...
    def notes(self, results: Results) -> list[str]: ...


async def bench_group(group: Group, args: argparse.Namespace, results: Results) -> None:
    rows = group.rows()
    for rep in range(args.repeat):
        group.begin_rep(rep)  # content and expected digests, before the timed part
        for label in LABELS:
            os.sync()  # no dirty pages of the other server's writes in this one's figures
            samples = await group.run(label, rep)
            for key, sample in samples.items():
                results[label].setdefault(key, []).append(sample)
            log(f"[{group.name} {rep + 1}/{args.repeat}] {label:<15} " + "  ".join(
                f"{row.key} {samples[row.key].value:,.1f}" for row in rows))


Memory = dict[str, dict[str, float]]  # group -> server label -> MiB


def group_pss(group: Group, sampled: dict[str, float]) -> dict[str, float]:
    """The sampled PSS peaks of ``group``'s processes under its ``peak_rss`` labels (the
    s3 and ceph groups run several instances of a server: the largest one counts)."""
    return {label: max((mib for name, mib in sampled.items()
                        if name == label or name.startswith(label + " (")), default=0.0)
            for label in group.peak_rss()}


def memory_lines(rss: Memory, pss: Memory) -> list[str]:
    """Peak RSS per group and over the whole run, with the summed PSS beside it."""
    def per_group(figures: Memory) -> str:
        return "; ".join(f"{name}: " + ", ".join(f"{label} {mib:.0f} MiB"
                                                   for label, mib in per.items())
                         for name, per in figures.items())

    def whole_run(figures: Memory) -> str:
        peaks: dict[str, float] = {}
        for per in figures.values():
            for label, mib in per.items():
                kind = server_kind(label)
                peaks[kind] = max(peaks.get(kind, 0.0), mib)
        return ", ".join(f"{kind} {mib:.0f} MiB" for kind, mib in peaks.items())

    return [
        "peak RSS of the largest server process (VmHWM): " + per_group(rss),
        "peak of the summed PSS of a server's processes (dockyard's supervisor and workers; "
        "sampled every 0.25 s): " + per_group(pss),
        f"peak RSS over the whole run (largest process, any group): {whole_run(rss)}; "
        f"summed PSS: {whole_run(pss)}",
    ]


def report(groups: list[Group], results: Results, rss: Memory, pss: Memory,
           args: argparse.Namespace, registry_version: str) -> str:
    a, b = LABELS
    rows = [row for g in groups for row in g.rows()]
    lines = [
        f"dockyard ({describe_workers(args.workers)}) vs docker-registry {registry_version}: "
        f"median of {args.repeat}; MB = 10^6 bytes.",
        "ratio > 1 means dockyard is better: dockyard/docker-registry for rates,",
        "docker-registry/dockyard for times (ms).",
        "",
        f"| workload | unit | {a} | {b} | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        va = statistics.median(s.value for s in results[a][row.key])
        vb = statistics.median(s.value for s in results[b][row.key])
        ratio = va / vb if row.higher_is_better else vb / va
        lines.append(f"| {row.title} | {row.unit} | {fmt(va)} | {fmt(vb)} | {ratio:.2f} |")
    lines += [
        "",
        "CPU seconds per workload (median): server process(es) / benchmark client",
        "",
        f"| workload | {a} server | {a} client | {b} server | {b} client |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        if not row.cpu:
            continue
        cells = []
        for label in (a, b):
            samples = results[label][row.key]
            cells.append(f"{statistics.median(s.server_cpu for s in samples):.2f}")
            cells.append(f"{statistics.median(s.client_cpu for s in samples):.2f}")
        lines.append(f"| {row.title} | " + " | ".join(cells) + " |")
    for group in groups:
        notes = group.notes(results)
        if notes:
            lines += ["", *notes]
    lines += ["", *memory_lines(rss, pss)]
    return "\n".join(lines)


def make_group(name: str, args: argparse.Namespace, workdir: Path, secret: str,
               pool: ThreadPoolExecutor) -> Group:
    if name == "blobs":
        return BlobsGroup(args, workdir, secret, pool)
    if name == "images":
        return ImagesGroup(args, workdir, secret)
    if name == "manifests":
        return ManifestsGroup(args, workdir, secret)
    if name == "proxy":
        return ProxyGroup(args, workdir, secret, pool)
    if name == "ceph":
        return CephGroup(args, workdir, secret, pool)
    if name == "ops":
        return OpsGroup(args, workdir, secret)
    return S3Group(args, workdir, secret, pool)


def parse_only(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in GROUPS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"--only takes a comma-separated subset of {','.join(GROUPS)}, got {text!r}")
    return [g for g in GROUPS if g in names]  # always in the documented order


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", type=parse_only, default=list(GROUPS),
                        help="groups to run, comma-separated "
                             "(default blobs,images,manifests,s3,proxy,ceph,ops)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="repetitions; each figure is the median (default 3)")
    parser.add_argument("--workers", type=int, default=None,
                        help="dockyard serve --workers N; by default none: both servers "
                             "run with their defaults (dockyard: one worker per CPU)")
    parser.add_argument("--no-verify", action="store_true",
                        help="pull without checking the content (the length is still checked)")
    parser.add_argument("--pull-check", choices=("bytes", "sha256"), default="bytes",
                        help="how the blobs and images groups check a pulled blob: compared "
                             "byte for byte with what was pushed (default: exact, and cheap "
                             "enough that the servers, not the client, bound the row), or "
                             "sha256-hashed as a registry client does (0.65 CPU-s per GB "
                             "here, which caps a pull near 1.5 GB/s on one core)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="parent of the temporary storage folders (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the storage folders and server logs")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write every sample to this file")
    blobs = parser.add_argument_group("blobs")
    blobs.add_argument("--size", type=parse_size, default=1 << 30,
                       help="size of the big blob (default 1G; e.g. 64M for a quick run)")
    blobs.add_argument("--chunk", type=parse_size, default=16 << 20,
                       help="PATCH chunk size of the chunked push (default 16M)")
    blobs.add_argument("--small", type=int, default=2000,
                       help="number of small blobs (default 2000)")
    blobs.add_argument("--small-concurrency", type=int, default=16)
    blobs.add_argument("--heads", type=int, default=20000,
                       help="number of HEAD requests (default 20000)")
    blobs.add_argument("--head-concurrency", type=int, default=32,
                       help="connections of the HEAD rows, S3 ones too (default 32)")
    images = parser.add_argument_group("images")
    images.add_argument("--images", type=int, default=8,
                        help="images pushed and pulled at once, one client each (default 8)")
    manifests = parser.add_argument_group("manifests")
    manifests.add_argument("--manifests", type=int, default=2000,
                           help="distinct manifests PUT by tag per repetition (default 2000)")
    manifests.add_argument("--layers", type=int, default=1,
                           help="layers of each manifest PUT (default 1; e.g. 50)")
    manifests.add_argument("--manifest-gets", type=int, default=20000,
                           help="manifest GETs by tag (default 20000)")
    manifests.add_argument("--manifest-concurrency", type=int, default=32)
    manifests.add_argument("--tags", type=int, default=10000,
                           help="tags of the listed repository (default 10000)")
    manifests.add_argument("--fresh-tags", type=int, default=3000,
                           help="tags of the repository listed just after a tag push "
                                "(default 3000)")
    manifests.add_argument("--tag-lists", type=int, default=20,
                           help="full tags/list requests per repetition (default 20)")
    manifests.add_argument("--repos", type=int, default=2000,
                           help="repositories in the catalog (default 2000)")
    manifests.add_argument("--page", type=int, default=100,
                           help="n of the paged tags/list and _catalog walks (default 100)")
    manifests.add_argument("--walks", type=int, default=5,
                           help="paged walks per repetition, each figure the mean (default 5)")
    manifests.add_argument("--index", choices=("sqlite", "none"), default="sqlite",
                           help="dockyard's storage.index.driver (default sqlite, its "
                                "default; none: listings walk storage, as docker-registry)")
    s3 = parser.add_argument_group("s3")
    s3.add_argument("--s3-size", type=parse_size, default=256 << 20,
                    help="size of the S3 blob (default 256M; moto is slow, keep it bounded)")
    s3.add_argument("--s3-heads", type=int, default=2000,
                    help="HEAD requests per S3 HEAD row (default 2000)")
    s3.add_argument("--s3-small", type=int, default=100,
                    help="small blobs pushed (untimed) for the S3 HEAD rows (default 100)")
    proxy = parser.add_argument_group("proxy")
    proxy.add_argument("--proxy-size", type=parse_size, default=256 << 20,
                       help="size of the blob pulled through the caches (default 256M)")
    ceph = parser.add_argument_group("ceph")
    ceph.add_argument("--ceph-size", type=parse_size, default=256 << 20,
                      help="size of the blob pushed and pulled on radosgw and RADOS "
                           "(default 256M)")
    args = parser.parse_args(argv)
    counts = (args.size, args.chunk, args.repeat, args.small, args.heads, args.manifests,
              args.manifest_gets, args.layers, args.tags, args.fresh_tags, args.tag_lists,
              args.page, args.walks,
              args.s3_size, args.s3_heads, args.s3_small, args.workers or 1,
              args.small_concurrency, args.head_concurrency, args.manifest_concurrency,
              args.proxy_size, args.ceph_size, args.images)
    if min(counts) < 1:
        parser.error("sizes and counts must be positive")
    if args.repos < 4:
        parser.error("--repos must be at least 4")
    if args.s3_size > 1 << 30:
        parser.error("--s3-size: at most 1G (moto keeps every object in memory)")
    if not os.access(DISTRIBUTION_BINARY, os.X_OK):
        parser.error(f"{DISTRIBUTION_BINARY} is missing: run scripts/install-test-deps "
                     "(apt-get install docker-registry)")
    if "s3" in args.only and (missing := missing_dependencies()):
        parser.error(f"the s3 group needs {', '.join(missing)} (scripts/install-test-deps); "
                     "or leave it out with --only blobs,manifests")
    if args.ceph_size > 1 << 30:
        parser.error("--ceph-size: at most 1G (the test cluster's OSD keeps objects in RAM)")
    if "ceph" in args.only and (missing := ceph_missing()):
        parser.error(f"the ceph group needs {', '.join(missing)} (scripts/install-test-deps); "
                     "or leave it out with --only")
    registry_version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "docker-registry"],
        capture_output=True, text=True, check=False).stdout.strip() or "(unknown version)"

    # SIGINT (even where a shell started us ignoring it) and SIGTERM end the run through
    # the finally clauses below, which stop every server.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-bench-", dir=args.dir))
    secret = secrets.token_hex(32)
    results: Results = {label: {} for label in LABELS}
    rss: Memory = {}
    pss: Memory = {}
    done: list[Group] = []
    group: Group | None = None
    try:
        with ThreadPoolExecutor(max_workers=1) as pool, \
                asyncio.Runner(loop_factory=client_loop_factory()) as runner:
            for name in args.only:
                group = current = make_group(name, args, workdir, secret, pool)
                with contextlib.ExitStack() as stack:  # stops this group's servers
                    t0 = time.perf_counter()
                    log(f"== {name}: starting servers")
                    current.start(stack, runner)
                    for label, proc in current.processes():
                        log(f"  {label} on {proc.url}, config {proc.config_path}")
                    log(f"== {name}: ready after {time.perf_counter() - t0:.1f} s (not timed)")
                    with PssSampler([(label, proc.pid)
                                     for label, proc in current.processes()]) as sampler:
                        runner.run(bench_group(current, args, results))
                    rss[name] = current.peak_rss()
                    pss[name] = group_pss(current, sampler.peaks)
                done.append(current)
                group = None
        text = report(done, results, rss, pss, args, registry_version)
        print(text, flush=True)
        if args.json:
            args.json.write_text(json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()},
                 "results": {label: {k: [vars(s) for s in v] for k, v in per.items()}
                             for label, per in results.items()},
                 "peak_rss_mib": rss, "peak_pss_sum_mib": pss}, indent=1))
        return 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except Exception as exc:
        log(f"benchmark failed: {exc!r}")
        if group is not None:
            for label, proc in group.processes():
                log(f"--- {label} log ({proc.log_path}):\n{proc.log_tail()}")
        return 1
    finally:
        # Every group's servers are stopped by its ExitStack on the way out; this is the
        # temporary directory only.
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
