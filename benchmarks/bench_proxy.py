"""Group ``proxy``: pulls through the pull-through cache, cold (empty cache) and warm,
dockyard against docker-registry in proxy mode, both caching the same upstream.
Part of benchmarks/run.py; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.servers import RegistryProcess

from bench_client import BLOCK, BigBlob, pull, push_monolithic
from bench_core import MB, Measure, Row, Sample, Server, human, worker_args


class ProxyGroup:
    name = "proxy"

    def __init__(self, args: argparse.Namespace, workdir: Path, secret: str,
                 pool: ThreadPoolExecutor) -> None:
        self.args = args
        self.pool = pool
        self.size = args.proxy_size
        base = workdir / "proxy"
        overrides: dict[str, Any] = {
            "log": {"accesslog": {"disabled": True}},
            "storage": {"maintenance": {"uploadpurging": {"enabled": False}}},
        }
        # The upstream: a hosted docker-registry, the same for both caches.
        self.upstream = RegistryProcess(base / "upstream", kind="distribution", secret=secret,
                                        overrides=overrides, log_level="error")
        cache = {**overrides, "proxy": {"remoteurl": self.upstream.url, "ttl": "0"}}
        # A hosted dockyard, for the warm pull's reference: a direct pull.
        self.hosted = RegistryProcess(
            base / "hosted", kind="dockyard", secret=secret, overrides=overrides,
            log_level="warn", workers=None,
            extra_args=worker_args(args.workers))
        self.servers = [
            Server("dockyard", RegistryProcess(
                base / "dockyard", kind="dockyard", secret=secret, overrides=cache,
                log_level="warn", workers=None, extra_args=worker_args(args.workers))),
            Server("docker-registry", RegistryProcess(
                base / "docker-registry", kind="distribution", secret=secret,
                overrides=cache, log_level="error")),
        ]
        self.pattern = os.urandom(BLOCK)
        self.nonce = ""

    def rows(self) -> list[Row]:
        size = human(self.size)
        return [
            Row("proxy_cold", f"proxy: cold pull, {size} (upstream fetch + store)", "MB/s", True),
            Row("proxy_warm", f"proxy: warm pull, {size} (from the cache)", "MB/s", True),
        ]

    def processes(self) -> list[tuple[str, Any]]:
        return [(s.label, s.proc) for s in self.servers]

    def start(self, stack: contextlib.ExitStack, runner: Any) -> None:
        for proc in (self.upstream, self.hosted, *(s.proc for s in self.servers)):
            stack.callback(proc.stop)
            proc.start()

    def begin_rep(self, rep: int) -> None:
        self.nonce = secrets.token_hex(8)

    def peak_rss(self) -> dict[str, float]:
        return {s.label: s.peak_rss_mib() for s in self.servers}

    def notes(self, results: dict[str, dict[str, list[Sample]]]) -> list[str]:
        samples = results["dockyard"].get("proxy_warm", [])
        direct = [s.extra["direct"] for s in samples if "direct" in s.extra]
        if not direct:
            return []
        warm = statistics.median(s.value for s in samples)
        hosted = statistics.median(direct)
        return [f"proxy: dockyard's warm pull {warm:,.0f} MB/s against a direct pull from a "
                f"hosted dockyard repository {hosted:,.0f} MB/s: ratio {warm / hosted:.2f}"]

    async def run(self, label: str, rep: int) -> dict[str, Sample]:
        server = next(s for s in self.servers if s.label == label)
        # Content unique to this server and repetition, so the cold pull is cold.
        blob = BigBlob(self.pattern, self.size, f"proxy {self.nonce} {label}".encode())
        repo = f"bench/proxy{rep}"
        await push_monolithic(self.upstream.port, repo, blob)  # setup, not timed
        out: dict[str, Sample] = {}
        verify = not self.args.no_verify
        with Measure(server) as m:
            seconds = await pull(server.port, repo, blob, self.pool, verify)
        out["proxy_cold"] = m.sample(self.size / seconds / MB)
        with Measure(server) as m:
            seconds = await pull(server.port, repo, blob, self.pool, verify)
        extra: dict[str, float] = {}
        if label == "dockyard":
            # The same bytes from a hosted dockyard repository: the cost of a cache hit.
            await push_monolithic(self.hosted.port, repo, blob)  # setup, not timed
            extra["direct"] = self.size / await pull(
                self.hosted.port, repo, blob, self.pool, verify) / MB
        out["proxy_warm"] = m.sample(self.size / seconds / MB, **extra)
        return out
