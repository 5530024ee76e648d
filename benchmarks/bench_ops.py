"""Group ``ops``: the cost of the operator features, on against off, in the same run.

For each server (dockyard and docker-registry) two processes on their own filesystem
storage: one plain, one with ``http.debug.addr``, ``http.debug.prometheus.enabled`` and
``health.storagedriver`` (every request counted, timed and sized; every storage call
timed). The blob HEAD and manifest GET rows run against both, alternating which goes
first; a note gives each server's on/off ratio. After each repetition the
metrics-enabled servers are scraped and their request counters checked against the
requests just sent. Part of benchmarks/run.py; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tests.support.net import free_port
from tests.support.servers import RegistryProcess

from bench_client import Connection, ProtocolError, expect, run_pool
from bench_core import Measure, Row, Sample, Server, worker_args
from bench_manifests import (
    MANIFEST_ACCEPT,
    make_config,
    make_layer,
    make_manifest,
    push_blob,
    put_manifest,
    sha256,
)

REPO = "bench/ops"
TAG = "latest"
KINDS = {"dockyard": "dockyard", "docker-registry": "distribution"}
SLICES = 8  # per row and repetition: 4 of metrics off, 4 on, interleaved


class OpsGroup:
    name = "ops"

    def __init__(self, args: argparse.Namespace, workdir: Path, secret: str) -> None:
        self.args = args
        base: dict[str, Any] = {
            "log": {"accesslog": {"disabled": True}},
            "storage": {
                "cache": {"blobdescriptor": "inmemory"},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
        }
        self.debug_ports: dict[str, int] = {}
        self.plain: dict[str, Server] = {}
        self.measured: dict[str, Server] = {}
        for label, kind in KINDS.items():
            extra = worker_args(args.workers) if kind == "dockyard" else []
            level = "warn" if kind == "dockyard" else "error"
            self.plain[label] = Server(label, RegistryProcess(
                workdir / "ops" / f"{label}-off", kind=kind, secret=secret, overrides=base,
                extra_args=extra, log_level=level, workers=None))  # type: ignore[arg-type]
            port = self.debug_ports[label] = free_port()
            on = {**base,
                  "http": {"debug": {"addr": f"127.0.0.1:{port}",
                                     "prometheus": {"enabled": True}}},
                  "health": {"storagedriver": {"enabled": True, "interval": "10s",
                                               "threshold": 3}}}
            self.measured[label] = Server(label, RegistryProcess(
                workdir / "ops" / f"{label}-on", kind=kind, secret=secret, overrides=on,
                extra_args=extra, log_level=level, workers=None))  # type: ignore[arg-type]
        self.layer = make_layer()
        self.config = make_config(self.layer)
        self.manifest = make_manifest(self.config, self.layer, "ops")
        self.rep = 0

    def rows(self) -> list[Row]:
        a = self.args
        heads = f"blob HEAD x {a.heads:,}, concurrency {a.head_concurrency}"
        gets = f"manifest GET by tag x {a.manifest_gets:,}, concurrency {a.manifest_concurrency}"
        return [
            Row("ops_head_off", f"{heads}, metrics off", "req/s", True),
            Row("ops_head_on", f"{heads}, metrics + health on", "req/s", True),
            Row("ops_get_off", f"{gets}, metrics off", "req/s", True),
            Row("ops_get_on", f"{gets}, metrics + health on", "req/s", True),
        ]

    def processes(self) -> list[tuple[str, Any]]:
        return [(f"{s.label} ({state})", s.proc) for state, per in
                (("off", self.plain), ("on", self.measured)) for s in per.values()]

    def start(self, stack: contextlib.ExitStack, runner: Any) -> None:
        for server in (*self.plain.values(), *self.measured.values()):
            stack.callback(server.proc.stop)
            server.proc.start()
            runner.run(self._seed(server.port))

    async def _seed(self, port: int) -> None:
        conn = Connection(port)
        try:
            await push_blob(conn, REPO, self.config)
            await push_blob(conn, REPO, self.layer)
            await put_manifest(conn, REPO, TAG, self.manifest)
        finally:
            conn.close()

    def begin_rep(self, rep: int) -> None:
        self.rep = rep

    def peak_rss(self) -> dict[str, float]:
        return {f"{label} ({state})": per[label].peak_rss_mib()
                for state, per in (("off", self.plain), ("on", self.measured))
                for label in KINDS}

    def notes(self, results: dict[str, dict[str, list[Sample]]]) -> list[str]:
        lines = []
        for label, per in results.items():
            if not per.get("ops_head_on"):
                continue
            parts = []
            for row, what in (("head", "blob HEAD"), ("get", "manifest GET")):
                on = statistics.median(s.value for s in per[f"ops_{row}_on"])
                off = statistics.median(s.value for s in per[f"ops_{row}_off"])
                parts.append(f"{what} {on / off:.2f} ({(on / off - 1) * 100:+.1f}%)")
            lines.append(f"ops: {label} with metrics + health on / off: " + ", ".join(parts))
        return lines

    async def run(self, label: str, rep: int) -> dict[str, Sample]:
        """Each row in slices, off and on in the order ABBA ABBA (BAAB BAAB on odd
        repetitions), so that a drift of the machine's load weighs on both alike."""
        out: dict[str, Sample] = {}
        servers = {"off": self.plain[label], "on": self.measured[label]}
        order = ["off", "on", "on", "off"] * (SLICES // 4)
        if rep % 2:
            order = [("on" if s == "off" else "off") for s in order]
        a = self.args
        before = self._scraped(label)
        for row, total, work in (("head", a.heads, self._heads), ("get", a.manifest_gets,
                                                                   self._gets)):
            per_slice = max(total // (SLICES // 2), 1)
            spent = {state: [0.0, 0.0, 0.0, 0] for state in servers}
            for state in order:
                server = servers[state]
                with Measure(server) as m:
                    seconds = await work(server, per_slice)
                acc = spent[state]
                acc[0] += seconds
                acc[1] += m.server_cpu
                acc[2] += m.client_cpu
                acc[3] += per_slice
            for state, (seconds, server_cpu, client_cpu, count) in spent.items():
                out[f"ops_{row}_{state}"] = Sample(count / seconds, server_cpu, client_cpu)
        per_state = {("blob", "head"): max(a.heads // (SLICES // 2), 1) * (SLICES // 2),
                     ("manifest", "get"): max(a.manifest_gets // (SLICES // 2), 1)
                     * (SLICES // 2)}
        self._check_counted(label, before, per_state)
        return out

    async def _heads(self, server: Server, count: int) -> float:
        a = self.args
        digest = sha256(self.layer)

        async def job(conn: Connection, i: int) -> None:
            r = await conn.request("HEAD", f"/v2/{REPO}/blobs/{digest}")
            expect(r, 200, "HEAD blob")

        return await run_pool(server.port, a.head_concurrency, count, job)

    async def _gets(self, server: Server, count: int) -> float:
        a = self.args
        digest = sha256(self.manifest)

        async def job(conn: Connection, i: int) -> None:
            r = await conn.request("GET", f"/v2/{REPO}/manifests/{TAG}",
                                   {"Accept": MANIFEST_ACCEPT})
            expect(r, 200, "manifest GET")
            if r.headers.get("docker-content-digest") != digest:
                raise ProtocolError("manifest GET: wrong digest")

        return await run_pool(server.port, a.manifest_concurrency, count, job)

    def _scraped(self, label: str) -> dict[tuple[str, str], float]:
        """``registry_http_requests_total`` 2xx by (handler, method), summed over codes."""
        text = httpx.get(f"http://127.0.0.1:{self.debug_ports[label]}/metrics",
                         timeout=30).text
        counts: dict[tuple[str, str], float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "registry_http_requests_total" and s.labels["code"] == "200":
                    key = (s.labels["handler"], s.labels["method"])
                    counts[key] = counts.get(key, 0.0) + s.value
        return counts

    def _check_counted(self, label: str, before: dict[tuple[str, str], float],
                       sent: dict[tuple[str, str], int]) -> None:
        """The scrape counts every request sent (dockyard's other workers' counts reach a
        scrape within a second; docker-registry's at once)."""
        counted: dict[tuple[str, str], float] = {}
        for _ in range(50):
            after = self._scraped(label)
            counted = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in sent}
            if counted == sent:
                return
            time.sleep(0.1)
        raise ProtocolError(f"{label}: /metrics counted {counted}, sent {sent}")
