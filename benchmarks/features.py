#!/usr/bin/env python3
"""What dockyard's operator features cost: the HEAD and manifest GET rows, features off
against features on, in one run (issue 11: the cost stays under 10%).

Two dockyard servers of this checkout on filesystem storage, configured as in
``run.py`` (in-memory blob descriptor cache, access log off, ``--workers N``), differ
only by ``features_on()``: Prometheus metrics on the debug listener
(``http.debug.prometheus``) and one notification endpoint (a webhook receiver process
of the test suite, ``tests/support/webhook.py``, that accepts everything). Each repetition
runs each row against ``off`` and ``on`` back to back (alternating which goes first);
the report gives the medians, the ratio (on / off, > 0.90 is the goal), the median of
each repetition's own ratio, and the server CPU per request (from /proc, so it counts
every thread of the server's processes). Both servers are started afresh for each
repetition (``--no-restart`` keeps them): a server process keeps its own speed for its
whole life, and two identical ones differed by up to 17% over a whole run (A/A,
``--control``), so only the median over fresh pairs measures the features. At the end
every request of ``on`` must have reached the receiver as an event and been counted in
a scrape of ``/metrics`` (checked, not timed).

As fast as the servers answer (the default) the rows show capacity: on 2 cores the
client, the server and the receiver share the CPU, and a server's CPU per request
falls as it gets busier (more requests per event-loop wake-up), so the ratio mixes
the features' own work with that. ``--rate R`` sends each row's requests at R per
second instead (open loop, the same offered load for both): the CPU per request is
then what the features cost at that load.

    python3 benchmarks/features.py                    # 20,000 requests a row, 3 repetitions
    python3 benchmarks/features.py --requests 5000 --repeat 1   # a quick look
    python3 benchmarks/features.py --workers 1 --rate 5000     # CPU at a given load
    python3 benchmarks/features.py --features metrics          # one part's share
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _path in (Path(__file__).resolve().parent.parent, Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
import httpx  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.servers import RegistryProcess  # noqa: E402
from tests.support.webhook import WebhookReceiver  # noqa: E402

from bench_client import Connection, ProtocolError, expect, heads, run_pool  # noqa: E402
from bench_core import Measure, Server, client_loop_factory, fmt, log  # noqa: E402
from bench_manifests import (  # noqa: E402
    MANIFEST_ACCEPT,
    make_config,
    make_layer,
    make_manifest,
    push_blob,
    put_manifest,
)

REPO = "bench/features"
BASE: dict[str, Any] = {
    "log": {"accesslog": {"disabled": True}},
    "storage": {
        "cache": {"blobdescriptor": "inmemory"},
        "maintenance": {"uploadpurging": {"enabled": False}},
    },
}


#: What ``--features`` may turn on: each part alone, or all of them.
PARTS = ("metrics", "notifications")


def features_on(
    receiver: WebhookReceiver, debug_port: int, parts: tuple[str, ...] = PARTS
) -> dict[str, Any]:
    """The configuration that turns ``parts`` on (extend it as features are added)."""
    config: dict[str, Any] = {}
    if "metrics" in parts:
        config["http"] = {"debug": {"addr": f"127.0.0.1:{debug_port}",
                                    "prometheus": {"enabled": True}}}
    if "notifications" in parts:
        config["notifications"] = {"endpoints": [
            {"name": "bench", "url": receiver.hook_url, "timeout": "5s"}]}
    return config


def scraped_requests(debug_port: int) -> float:
    """``registry_http_requests_total`` with code 200, summed (all workers: one scrape)."""
    text = httpx.get(f"http://127.0.0.1:{debug_port}/metrics", timeout=30).text
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples
               if s.name == "registry_http_requests_total" and s.labels.get("code") == "200")


async def seed(port: int, layer: bytes, config: bytes, manifest: bytes) -> None:
    conn = Connection(port)
    try:
        await push_blob(conn, REPO, config)
        await push_blob(conn, REPO, layer)
        await put_manifest(conn, REPO, "latest", manifest)
    finally:
        conn.close()


async def manifest_gets(
    port: int, digest: str, count: int, conc: int, rate: float | None = None
) -> float:
    async def job(conn: Connection, i: int) -> None:
        r = await conn.request("GET", f"/v2/{REPO}/manifests/latest", {"Accept": MANIFEST_ACCEPT})
        expect(r, 200, "manifest GET")
        if r.headers.get("docker-content-digest") != digest:
            raise ProtocolError("manifest GET: wrong digest")

    return await run_pool(port, conc, count, job, rate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000, help="requests per row")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float,
                        help="open loop: send each row's requests at this many per second "
                             "(the same offered load for both servers: compare their CPU "
                             "per request) instead of as fast as they are answered")
    parser.add_argument("--features", choices=("all", *PARTS), default="all",
                        help="what 'on' turns on: every feature (the default, issue 11's "
                             "rows) or one part alone, to see its share")
    parser.add_argument("--restart", action=argparse.BooleanOptionalAction, default=True,
                        help="start both servers afresh for each repetition (the default): "
                             "a server process keeps its own speed for its whole life, "
                             "up to 17%% off an identical one in A/A runs, so the median "
                             "of fresh pairs measures the features, not two processes")
    parser.add_argument("--control", action="store_true",
                        help="A/A run: 'on' gets the same configuration as 'off' (what the "
                             "ratio looks like with no difference: the noise)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-features-"))
    secret = secrets.token_hex(32)
    layer = make_layer()
    config = make_config(layer)
    manifest = make_manifest(config, layer, "features")
    blob_digests = ["sha256:" + hashlib.sha256(b).hexdigest() for b in (config, layer)]
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    receiver = WebhookReceiver(workdir / "receiver")
    results: dict[str, dict[str, list[tuple[float, float]]]] = {"off": {}, "on": {}}
    parts = () if args.control else PARTS if args.features == "all" else (args.features,)
    try:
        with contextlib.ExitStack() as stack, \
                asyncio.Runner(loop_factory=client_loop_factory()) as runner:
            receiver.start()
            stack.callback(receiver.stop)
            pairs = Pairs(stack, runner, receiver, workdir, secret, args.workers, parts,
                          (layer, config, manifest))
            pairs.start()
            for rep in range(args.repeat):
                if rep and args.restart:
                    pairs.finish()
                    pairs.start()
                # Row by row, off and on back to back: both see the same moment of a
                # shared machine; which goes first alternates (the second of a pair was
                # measured up to 20% dearer in A/A runs, --control).
                order = list(pairs.servers.items())
                if rep % 2:
                    order.reverse()
                for row in ("head", "manifest_get"):
                    for label, server in order:
                        with Measure(server, backend=receiver.pid) as m:
                            if row == "head":
                                seconds = runner.run(heads(
                                    server.port, REPO, blob_digests, args.requests,
                                    args.concurrency, args.rate))
                            else:
                                seconds = runner.run(manifest_gets(
                                    server.port, manifest_digest, args.requests,
                                    args.concurrency, args.rate))
                        rate = args.requests / seconds
                        cpu = m.server_cpu / args.requests * 1e6
                        results[label].setdefault(row, []).append((rate, cpu))
                        log(f"rep {rep + 1} {label:3} {row:12} {rate:8,.0f} req/s, "
                            f"server CPU {cpu:.0f} µs / request, receiver "
                            f"{m.backend_cpu / args.requests * 1e6:.0f}")
                pairs.sent(2 * args.requests)
            pairs.finish()
            if pairs.notifications:
                log(f"receiver: {pairs.received:,} events ({pairs.events:,} expected), the "
                    f"last {pairs.waited:.1f} s after the runs")
            if pairs.metrics:
                sent = args.repeat * 2 * args.requests
                log(f"/metrics: {pairs.counted:,.0f} requests counted ({sent:,} sent)")
                if pairs.counted < sent:
                    raise ProtocolError(
                        f"/metrics counted {pairs.counted:,.0f} of {sent:,} requests")
        print(report(results, args))
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class Pairs:
    """The "off" and "on" servers, started afresh as often as asked, and what the "on"
    ones must have delivered: every event at the receiver, every request in a scrape."""

    def __init__(
        self, stack: contextlib.ExitStack, runner: asyncio.Runner,
        receiver: WebhookReceiver, workdir: Path, secret: str, workers: int,
        parts: tuple[str, ...], content: tuple[bytes, bytes, bytes],
    ) -> None:
        self._stack, self._runner, self._receiver = stack, runner, receiver
        self._workdir, self._secret = workdir, secret
        self._workers, self._parts = workers, parts
        self._content = content  # layer, config, manifest: the seed
        self.metrics, self.notifications = "metrics" in parts, "notifications" in parts
        self.servers: dict[str, Server] = {}
        self.events = 0
        """Events expected at the receiver so far."""
        self.counted = 0.0
        """Requests counted by the scrapes of the "on" servers finished so far."""
        self.received = 0
        """Events at the receiver when the last :meth:`finish` found every expected one."""
        self.waited = 0.0
        """Seconds the last :meth:`finish` waited for them."""
        self._generation = 0
        self._debug_port = 0
        self._baseline = 0.0  # the running "on" server's count after its seed

    def start(self) -> None:
        """A new pair, seeded."""
        self._debug_port = free_port()
        on = features_on(self._receiver, self._debug_port, self._parts)
        for label, extra in (("off", {}), ("on", on)):
            proc = RegistryProcess(
                self._workdir / f"{label}-{self._generation}", secret=self._secret,
                log_level="warn", overrides={**BASE, **extra},
                extra_args=["--workers", str(self._workers)])
            self._stack.callback(proc.stop)
            proc.start()
            self._runner.run(seed(proc.port, *self._content))
            self.servers[label] = Server(label, proc)
        self._generation += 1
        if self.notifications:  # the seed's pushes: the blobs and the manifest
            self.events = len(self._receiver.wait_events(self.events + 3))
        if self.metrics:
            self._baseline = self._scrape()

    def sent(self, requests: int) -> None:
        """``requests`` more went to each server of the pair: as many events expected."""
        if self.notifications:
            self.events += requests

    def finish(self) -> None:
        """Stop the pair once the receiver has every event (one left in a stopped
        server's spool would never be sent) and its requests are counted."""
        t0 = time.monotonic()
        if self.notifications:
            self.received = len(self._receiver.wait_events(self.events, timeout=600))
        self.waited = time.monotonic() - t0
        if self.metrics:
            self.counted += self._scrape() - self._baseline
        for server in self.servers.values():
            server.proc.stop()

    def _scrape(self) -> float:
        time.sleep(1.5)  # every worker's counts reach a scrape within a second
        return scraped_requests(self._debug_port)


def report(results: dict[str, dict[str, list[tuple[float, float]]]],
           args: argparse.Namespace) -> str:
    load = f"at {args.rate:,.0f} req/s" if args.rate else f"concurrency {args.concurrency}"
    titles = {"head": f"blob HEAD x {args.requests:,}, {load}",
              "manifest_get": f"manifest GET by tag x {args.requests:,}, {load}"}
    described = {"all": "Prometheus metrics and one notification endpoint",
                 "metrics": "Prometheus metrics alone",
                 "notifications": "one notification endpoint alone"}[args.features]
    if args.control:
        described = "the same as off (A/A)"
    lines = [
        f"dockyard --workers {args.workers}, median of {args.repeat}; on = {described}"
        + ("; open loop: compare the CPU per request" if args.rate else ""),
        "",
        "| row | off req/s | on req/s | on / off | on / off by pair | off CPU µs/req "
        "| on CPU µs/req | CPU on / off |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row, title in titles.items():
        off = results["off"][row]
        on = results["on"][row]
        r_off = statistics.median(r for r, _ in off)
        r_on = statistics.median(r for r, _ in on)
        c_off = statistics.median(c for _, c in off)
        c_on = statistics.median(c for _, c in on)
        # The median of each repetition's own ratio: a pair measured back to back.
        paired = statistics.median(a[0] / b[0] for a, b in zip(on, off, strict=True))
        lines.append(f"| {title} | {fmt(r_off)} | {fmt(r_on)} | {r_on / r_off:.2f} | "
                     f"{paired:.2f} | {c_off:.0f} | {c_on:.0f} | {c_on / c_off:.2f} |")
    return "\n".join(lines) + "\n\n" + json.dumps(results)


if __name__ == "__main__":
    sys.exit(main())
