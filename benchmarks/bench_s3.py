"""Group ``s3``: big blob push and pull (redirected and streamed) and blob HEAD with and
without the Redis blob descriptor cache, on S3 (moto's standalone server, started here).

Each server kind gets its own bucket on the one moto server and three instances on it,
which differ only where a row needs it:

- ``redirect``: the default, blob GETs answered 307 with a pre-signed moto URL; no cache;
- ``stream``: ``storage.redirect.disable: true``; no cache;
- ``redis``: ``storage.redirect.disable: true``, ``storage.cache.blobdescriptor: redis``
  on a redis-server started here (one database per kind: they share the key layout).

Part of benchmarks/run.py; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench_client import (
    BLOCK,
    BigBlob,
    Connection,
    expect,
    heads,
    pull,
    push_monolithic,
    push_small,
    run_pool,
    small_blobs,
)
from bench_core import MB, Measure, Row, Sample, Server, human, worker_args

INSTANCES = ("redirect", "stream", "redis")
# redis.pool as in distribution's documented example: without maxidle, docker-registry
# 2.8 keeps no idle connection and dials Redis for every request.
REDIS_POOL = {"maxidle": 16, "maxactive": 64, "idletimeout": "300s"}
HEAD_REPO = "bench/s3-heads"


def missing_dependencies() -> list[str]:
    """What the s3 group needs and this machine lacks."""
    missing = []
    for module in ("moto", "boto3", "flask"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"python module {module} (moto[server])")
    if not (shutil.which("redis-server") or os.access("/usr/bin/redis-server", os.X_OK)):
        missing.append("redis-server")
    return missing


class S3Group:
    name = "s3"

    def __init__(self, args: argparse.Namespace, workdir: Path, secret: str,
                 pool: ThreadPoolExecutor) -> None:
        # Imported here: the other groups do without moto, boto3 and redis.
        from tests.support.backends import MotoServer, RedisServer

        self.args = args
        self.pool = pool
        self.workdir = workdir / "s3"
        self.secret = secret
        self.moto = MotoServer(self.workdir / "moto")
        self.redis = RedisServer(self.workdir / "redis")
        self.instances: dict[str, dict[str, Server]] = {}
        self.buckets: dict[str, str] = {}
        self.digests: dict[str, list[str]] = {}
        self.pattern = os.urandom(BLOCK)
        self.blob: BigBlob | None = None
        self.s3_client: Any = None

    def rows(self) -> list[Row]:
        a = self.args
        size = human(a.s3_size)
        check = "length" if a.no_verify else "sha256"
        c = a.head_concurrency
        return [
            Row("s3_push", f"S3 push, {size} (POST + PUT)", "MB/s", True),
            Row("s3_pull_redirect", f"S3 pull, {size}, 307 to moto followed ({check} checked)",
                "MB/s", True),
            Row("s3_pull_stream", f"S3 pull, {size}, redirect disabled ({check} checked)",
                "MB/s", True),
            Row("s3_head", f"S3 blob HEAD x {a.s3_heads:,}, concurrency {c}, no cache",
                "req/s", True),
            Row("s3_head_redis", f"S3 blob HEAD x {a.s3_heads:,}, concurrency {c}, Redis cache",
                "req/s", True),
        ]

    def processes(self) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        for label, per in self.instances.items():
            out += [(f"{label} ({name})", s.proc) for name, s in per.items()]
        return out

    def _make(self, label: str, kind: str, db: int) -> dict[str, Server]:
        from tests.support.backends import S3RegistryProcess, s3_params

        bucket = self.moto.create_bucket("dockyard-bench" if kind == "dockyard"
                                         else "registry-bench")
        self.buckets[label] = bucket
        base: dict[str, Any] = {
            "log": {"accesslog": {"disabled": True}},
            "storage": {"maintenance": {"uploadpurging": {"enabled": False}}},
        }
        no_redirect = {"storage": {"redirect": {"disable": True}}}
        with_redis = {
            "storage": {"redirect": {"disable": True}, "cache": {"blobdescriptor": "redis"}},
            "redis": {"addr": self.redis.addr, "db": db, "pool": REDIS_POOL},
        }
        extra_args = worker_args(self.args.workers) if kind == "dockyard" else []
        log_level = "warn" if kind == "dockyard" else "error"
        out = {}
        for name, overrides in (("redirect", {}), ("stream", no_redirect),
                                ("redis", with_redis)):
            config = _merge(base, overrides)
            out[name] = Server(label, S3RegistryProcess(
                self.workdir / f"{label}-{name}", kind=kind,
                s3=s3_params(self.moto.url, bucket), secret=self.secret,
                overrides=config, extra_args=extra_args, log_level=log_level, workers=None))
        return out

    def start(self, stack: contextlib.ExitStack, runner: Any) -> None:
        stack.callback(self.moto.stop)
        self.moto.start()
        stack.callback(self.redis.stop)
        self.redis.start()
        self.s3_client = self.moto.client()
        self.instances = {
            "dockyard": self._make("dockyard", "dockyard", 0),
            "docker-registry": self._make("docker-registry", "distribution", 1),
        }
        for per in self.instances.values():
            for server in per.values():
                stack.callback(server.proc.stop)
                server.proc.start()
        for label, per in self.instances.items():
            blobs = small_blobs(self.args.s3_small)
            runner.run(push_small(per["stream"].port, HEAD_REPO, blobs, 8))
            self.digests[label] = [d for d, _ in blobs]
            runner.run(self._warm_up(per, self.digests[label]))

    async def _warm_up(self, per: dict[str, Server], digests: list[str]) -> None:
        """A GET (not followed) of every small blob on every instance, on 8 connections:
        each worker process has pre-signed a URL and talked to S3 before any timed row
        (the HEAD rows have their own warm-up pass)."""
        for name, server in per.items():
            status = 307 if name == "redirect" else 200

            async def job(conn: Connection, i: int, server: Server = server,
                          status: int = status, name: str = name) -> None:
                r = await conn.request("GET", f"/v2/{HEAD_REPO}/blobs/{digests[i]}")
                expect(r, status, f"warm-up GET on {server.label} ({name})")

            await run_pool(server.port, 8, len(digests), job)

    def begin_rep(self, rep: int) -> None:
        nonce = secrets.token_hex(8)
        self.blob = BigBlob(self.pattern, self.args.s3_size,
                            f"dockyard-bench {nonce} s3".encode())

    def peak_rss(self) -> dict[str, float]:
        return {label: max(s.peak_rss_mib() for s in per.values())
                for label, per in self.instances.items()}

    def _moto_pgid(self) -> int | None:
        proc = getattr(self.moto, "_proc", None)  # its process group, if it tells
        return getattr(proc, "pid", None)

    def _drop_blob(self, label: str, digest: str) -> None:
        """Delete the big blob's data object, so moto's memory does not grow by one blob
        per repetition."""
        hexpart = digest.split(":")[1]
        self.s3_client.delete_object(
            Bucket=self.buckets[label],
            Key=f"docker/registry/v2/blobs/sha256/{hexpart[:2]}/{hexpart}/data")

    async def run(self, label: str, rep: int) -> dict[str, Sample]:
        args, per, blob = self.args, self.instances[label], self.blob
        assert blob is not None
        repo = f"bench/s3-r{rep}"
        verify = not args.no_verify
        moto = self._moto_pgid()
        out: dict[str, Sample] = {}

        def sample(m: Measure, value: float, since: int) -> Sample:
            time.sleep(0.1)  # let moto's log catch up with its last answers
            return m.sample(value, moto_cpu=m.backend_cpu,
                            s3_requests=len(self.moto.requests(since)))

        since = self.moto.log_size()
        with Measure(per["redirect"], moto) as m:
            seconds = await push_monolithic(per["redirect"].port, repo, blob)
        out["s3_push"] = sample(m, args.s3_size / seconds / MB, since)

        since = self.moto.log_size()
        with Measure(per["redirect"], moto) as m:
            seconds = await pull(per["redirect"].port, repo, blob, self.pool, verify,
                                 redirect=True)
        out["s3_pull_redirect"] = sample(m, args.s3_size / seconds / MB, since)

        since = self.moto.log_size()
        with Measure(per["stream"], moto) as m:
            seconds = await pull(per["stream"].port, repo, blob, self.pool, verify)
        out["s3_pull_stream"] = sample(m, args.s3_size / seconds / MB, since)
        self._drop_blob(label, blob.digest)

        digests, conc = self.digests[label], args.head_concurrency
        for key, name in (("s3_head", "stream"), ("s3_head_redis", "redis")):
            server = per[name]
            # One untimed HEAD per blob first: the cached row is measured warm.
            await heads(server.port, HEAD_REPO, digests, len(digests), conc)
            since = self.moto.log_size()
            with Measure(server, moto) as m:
                seconds = await heads(server.port, HEAD_REPO, digests, args.s3_heads, conc)
            out[key] = sample(m, args.s3_heads / seconds, since)
        return out

    def notes(self, results: dict[str, dict[str, list[Sample]]]) -> list[str]:
        import statistics

        labels = [label for label in results if results[label].get("s3_push")]
        if not labels:
            return []
        lines = [
            "S3 backend per workload (median): S3 requests moto logged (per request for"
            " HEAD) / moto's CPU seconds",
            "",
            "| workload | " + " | ".join(f"{x} S3 requests | {x} moto CPU" for x in labels)
            + " |",
            "|---|" + "---:|---:|" * len(labels),
        ]
        for row in self.rows():
            cells = []
            for label in labels:
                samples = results[label][row.key]
                reqs = statistics.median(s.extra["s3_requests"] for s in samples)
                if row.key.startswith("s3_head"):
                    cells.append(f"{reqs / self.args.s3_heads:.2f}")
                else:
                    cells.append(f"{reqs:,.0f}")
                cells.append(f"{statistics.median(s.extra['moto_cpu'] for s in samples):.2f}")
            lines.append(f"| {row.title} | " + " | ".join(cells) + " |")
        return lines


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    from tests.support.servers import deep_merge

    return deep_merge(base, overrides)
