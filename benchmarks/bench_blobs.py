"""Group ``blobs``: big blob push (monolithic, chunked) and pull, small blobs, blob HEAD,
on filesystem storage. Part of benchmarks/run.py; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.servers import RegistryProcess

from bench_client import (
    BLOCK,
    BigBlob,
    heads,
    pull,
    push_chunked,
    push_monolithic,
    push_small,
    small_blobs,
)
from bench_core import MB, Measure, Row, Sample, Server, human, worker_args


def drop_blob(server: Server, digest: str) -> None:
    """Remove a benchmark blob's data directly, to keep the disk from filling up."""
    alg, hexpart = digest.split(":")
    shutil.rmtree(
        server.proc.root / "docker/registry/v2/blobs" / alg / hexpart[:2] / hexpart,
        ignore_errors=True,
    )


def pull_check(args: argparse.Namespace) -> str:
    """What a pull row checks of the body: ``length``, ``bytes`` or ``sha256``."""
    return "length" if args.no_verify else args.pull_check


def make_servers(workdir: Path, workers: int | None, secret: str) -> list[Server]:
    """dockyard (this checkout's src/) and docker-registry, each in its own folder, on
    filesystem storage with Debian's default in-memory blob descriptor cache."""
    overrides: dict[str, Any] = {
        "log": {"accesslog": {"disabled": True}},
        "storage": {
            "cache": {"blobdescriptor": "inmemory"},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
    }
    return [
        Server("dockyard", RegistryProcess(
            workdir / "dockyard", kind="dockyard", secret=secret, overrides=overrides,
            log_level="warn", workers=None, extra_args=worker_args(workers))),
        Server("docker-registry", RegistryProcess(
            workdir / "docker-registry", kind="distribution", secret=secret,
            overrides=overrides, log_level="error")),
    ]


class BlobsGroup:
    name = "blobs"

    def __init__(self, args: argparse.Namespace, workdir: Path, secret: str,
                 pool: ThreadPoolExecutor) -> None:
        self.args = args
        self.pool = pool
        self.servers = make_servers(workdir / "blobs", args.workers, secret)
        self.pattern = os.urandom(BLOCK)
        self.blobs: dict[str, BigBlob] = {}

    def rows(self) -> list[Row]:
        a = self.args
        size = human(a.size)
        return [
            Row("mono", f"monolithic push, {size} (POST + PUT)", "MB/s", True),
            Row("chunked", f"chunked push, {size} in {human(a.chunk)} PATCHes", "MB/s", True),
            Row("final_put", "  final PUT of the chunked push", "ms", False, cpu=False),
            Row("pull", f"pull, {size} ({pull_check(a)} checked)", "MB/s", True),
            Row("small", f"{a.small:,} small blobs 1-4 KiB, concurrency {a.small_concurrency}",
                "blobs/s", True),
            Row("head", f"blob HEAD x {a.heads:,}, concurrency {a.head_concurrency}",
                "req/s", True),
        ]

    def processes(self) -> list[tuple[str, Any]]:
        return [(s.label, s.proc) for s in self.servers]

    def start(self, stack: contextlib.ExitStack, runner: Any) -> None:
        for server in self.servers:
            stack.callback(server.proc.stop)
            server.proc.start()

    def begin_rep(self, rep: int) -> None:
        nonce = secrets.token_hex(8)
        self.blobs = {
            kind: BigBlob(self.pattern, self.args.size,
                          f"dockyard-bench {nonce} {kind}".encode())
            for kind in ("mono", "chunked")
        }

    def server(self, label: str) -> Server:
        return next(s for s in self.servers if s.label == label)

    def peak_rss(self) -> dict[str, float]:
        return {s.label: s.peak_rss_mib() for s in self.servers}

    def notes(self, results: dict[str, dict[str, list[Sample]]]) -> list[str]:
        return []

    async def run(self, label: str, rep: int) -> dict[str, Sample]:
        args, blobs, server = self.args, self.blobs, self.server(label)
        out: dict[str, Sample] = {}
        port = server.port
        repo = f"bench/r{rep}"

        with Measure(server) as m:
            seconds = await push_monolithic(port, repo, blobs["mono"])
        out["mono"] = m.sample(args.size / seconds / MB)

        with Measure(server) as m:
            seconds = await pull(port, repo, blobs["mono"], self.pool, not args.no_verify,
                                 compare=args.pull_check == "bytes")
        out["pull"] = m.sample(args.size / seconds / MB)
        drop_blob(server, blobs["mono"].digest)
        os.sync()

        with Measure(server) as m:
            seconds, final = await push_chunked(port, repo, blobs["chunked"], args.chunk)
        out["chunked"] = m.sample(args.size / seconds / MB)
        out["final_put"] = Sample(final * 1000)
        drop_blob(server, blobs["chunked"].digest)
        os.sync()

        small = small_blobs(args.small)
        with Measure(server) as m:
            seconds = await push_small(port, repo, small, args.small_concurrency)
        out["small"] = m.sample(args.small / seconds)

        with Measure(server) as m:
            seconds = await heads(port, repo, [d for d, _ in small], args.heads,
                                  args.head_concurrency)
        out["head"] = m.sample(args.heads / seconds)
        return out
