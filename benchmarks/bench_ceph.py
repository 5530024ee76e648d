"""Group ``ceph``: push and pull of a big blob on Ceph, through radosgw (S3) and RADOS,
on a single-node cluster started here (tests/support/ceph.py: mon, memstore OSD, radosgw).

Each server kind gets its own bucket on radosgw and two instances on it:

- ``redirect``: blob GETs answered 307 with a pre-signed radosgw URL (followed, timed);
- ``stream``: ``storage.redirect.disable: true``, the registry streams the bytes;

and dockyard a third one on ``storage.rados`` (the pool ``dockyard``, its own namespace).
Debian's docker-registry has no RADOS driver, so the RADOS rows set dockyard on RADOS
against docker-registry on radosgw (its push and streamed pull, measured once per
repetition and shown in both places).

Part of benchmarks/run.py; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench_client import BLOCK, BigBlob, pull, push_monolithic
from bench_core import MB, Measure, Row, Sample, Server, human, worker_args

MEMSTORE_BYTES = 8 << 30
"""RAM the OSD may hold: the blobs of a repetition (each deleted after it) fit."""


def missing_dependencies() -> list[str]:
    """What the ceph group needs and this machine lacks."""
    from tests.support.ceph import ceph_unavailable

    reason = ceph_unavailable()
    missing = [reason] if reason else []
    try:
        import boto3  # noqa: F401
    except ImportError:
        missing.append("python module boto3")
    return missing


class CephGroup:
    name = "ceph"

    def __init__(self, args: argparse.Namespace, workdir: Path, secret: str,
                 pool: ThreadPoolExecutor) -> None:
        from tests.support.ceph import CephCluster

        self.args = args
        self.pool = pool
        self.workdir = workdir / "ceph"
        self.secret = secret
        self.cluster = CephCluster(self.workdir / "cluster", memstore_bytes=MEMSTORE_BYTES)
        self.instances: dict[str, dict[str, Server]] = {}
        self.buckets: dict[str, str] = {}
        self.namespace = f"bench-{uuid.uuid4().hex[:8]}"
        self.pattern = os.urandom(BLOCK)
        self.blob: BigBlob | None = None
        self.s3_client: Any = None

    def rows(self) -> list[Row]:
        a = self.args
        size = human(a.ceph_size)
        check = "length" if a.no_verify else "sha256"
        return [
            Row("rgw_push", f"radosgw push, {size} (POST + PUT)", "MB/s", True),
            Row("rgw_pull_redirect",
                f"radosgw pull, {size}, 307 to radosgw followed ({check} checked)", "MB/s", True),
            Row("rgw_pull_stream", f"radosgw pull, {size}, redirect disabled ({check} checked)",
                "MB/s", True),
            Row("rados_push", f"RADOS push, {size} (docker-registry: on radosgw)", "MB/s", True),
            Row("rados_pull", f"RADOS pull, {size} (docker-registry: radosgw, streamed)",
                "MB/s", True),
        ]

    def processes(self) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        for label, per in self.instances.items():
            out += [(f"{label} ({name})", s.proc) for name, s in per.items()]
        return out

    def _make(self, label: str, kind: str) -> dict[str, Server]:
        from tests.support.backends import S3RegistryProcess, s3_params
        from tests.support.ceph import RadosRegistryProcess, RgwServer
        from tests.support.servers import deep_merge

        rgw = RgwServer(self.cluster)
        bucket = rgw.create_bucket("dockyard-bench" if kind == "dockyard" else "registry-bench")
        self.buckets[label] = bucket
        base: dict[str, Any] = {
            "log": {"accesslog": {"disabled": True}},
            "storage": {"maintenance": {"uploadpurging": {"enabled": False}}},
        }
        no_redirect = deep_merge(base, {"storage": {"redirect": {"disable": True}}})
        extra_args = worker_args(self.args.workers) if kind == "dockyard" else []
        log_level = "warn" if kind == "dockyard" else "error"
        params = s3_params(rgw.url, bucket, **rgw.credentials)
        out = {}
        for name, config in (("redirect", base), ("stream", no_redirect)):
            out[name] = Server(label, S3RegistryProcess(
                self.workdir / f"{label}-{name}", kind=kind, s3=params, secret=self.secret,
                overrides=config, extra_args=extra_args, log_level=log_level, workers=None))
        if kind == "dockyard":
            rados = {"poolname": self.cluster.pool, "conffile": str(self.cluster.conf),
                     "namespace": self.namespace}
            out["rados"] = Server(label, RadosRegistryProcess(
                self.workdir / f"{label}-rados", rados=rados, secret=self.secret,
                overrides=base, extra_args=extra_args, log_level=log_level, workers=None))
        return out

    def start(self, stack: contextlib.ExitStack, runner: Any) -> None:
        from tests.support.ceph import RgwServer

        stack.callback(self.cluster.stop)
        self.cluster.start()
        self.s3_client = RgwServer(self.cluster).client()
        self.instances = {
            "dockyard": self._make("dockyard", "dockyard"),
            "docker-registry": self._make("docker-registry", "distribution"),
        }
        for per in self.instances.values():
            for server in per.values():
                stack.callback(server.proc.stop)
                server.proc.start()

    def begin_rep(self, rep: int) -> None:
        nonce = secrets.token_hex(8)
        self.blob = BigBlob(self.pattern, self.args.ceph_size,
                            f"dockyard-bench {nonce} ceph".encode())

    def peak_rss(self) -> dict[str, float]:
        return {label: max(s.peak_rss_mib() for s in per.values())
                for label, per in self.instances.items()}

    def _drop_blob(self, label: str, digest: str) -> None:
        """Delete the big blob's data object, so the OSD's memory does not grow by one
        blob per repetition (radosgw frees it in its own time)."""
        hexpart = digest.split(":")[1]
        self.s3_client.delete_object(
            Bucket=self.buckets[label],
            Key=f"docker/registry/v2/blobs/sha256/{hexpart[:2]}/{hexpart}/data")

    async def _drop_rados_blob(self, digest: str) -> None:
        """Delete the big blob from the pool with this checkout's driver."""
        import sys

        from tests.support.servers import SRC_DIR

        if str(SRC_DIR) not in sys.path:
            sys.path.insert(0, str(SRC_DIR))
        from dockyard.storage.drivers.base import PathNotFound
        from dockyard.storage.drivers.rados import RadosDriver, RadosParameters

        hexpart = digest.split(":")[1]
        driver = RadosDriver(RadosParameters({
            "poolname": self.cluster.pool, "conffile": str(self.cluster.conf),
            "namespace": self.namespace}))
        try:
            with contextlib.suppress(PathNotFound):
                await driver.delete(f"/docker/registry/v2/blobs/sha256/{hexpart[:2]}/{hexpart}")
        finally:
            await driver.aclose()

    async def run(self, label: str, rep: int) -> dict[str, Sample]:
        args, per, blob = self.args, self.instances[label], self.blob
        assert blob is not None
        repo = f"bench/ceph-r{rep}"
        verify = not args.no_verify
        out: dict[str, Sample] = {}

        with Measure(per["redirect"]) as m:
            seconds = await push_monolithic(per["redirect"].port, repo, blob)
        out["rgw_push"] = m.sample(args.ceph_size / seconds / MB)
        with Measure(per["redirect"]) as m:
            seconds = await pull(per["redirect"].port, repo, blob, self.pool, verify,
                                 redirect=True)
        out["rgw_pull_redirect"] = m.sample(args.ceph_size / seconds / MB)
        with Measure(per["stream"]) as m:
            seconds = await pull(per["stream"].port, repo, blob, self.pool, verify)
        out["rgw_pull_stream"] = m.sample(args.ceph_size / seconds / MB)
        self._drop_blob(label, blob.digest)

        if "rados" not in per:  # docker-registry: its radosgw figures, for comparison
            out["rados_push"], out["rados_pull"] = out["rgw_push"], out["rgw_pull_stream"]
            return out
        with Measure(per["rados"]) as m:
            seconds = await push_monolithic(per["rados"].port, repo, blob)
        out["rados_push"] = m.sample(args.ceph_size / seconds / MB)
        with Measure(per["rados"]) as m:
            seconds = await pull(per["rados"].port, repo, blob, self.pool, verify)
        out["rados_pull"] = m.sample(args.ceph_size / seconds / MB)
        await self._drop_rados_blob(blob.digest)
        return out

    def notes(self, results: dict[str, dict[str, list[Sample]]]) -> list[str]:
        return [
            "Ceph: one memstore OSD, radosgw (beast) and ceph-mon on this machine, sharing",
            "its cores with the registries; docker-registry has no RADOS driver, so its",
            "RADOS figures are its radosgw push and streamed pull of the same repetition.",
        ]
