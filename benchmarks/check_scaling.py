#!/usr/bin/env python3
"""Check docs/scaling.md's model against a run: two dockyard instances behind haproxy,
on one moto S3 bucket and one redis-server (the blob descriptor cache), all on loopback.

Pushes one image of ``--layers`` small layers through the balancer (untimed), warms
each instance with one pull, then runs ``--pulls`` pulls (a manifest GET by tag, then a
GET of the config and of every layer, each answered with a 307 to moto, not followed)
on ``--concurrency`` keep-alive connections. Prints, per pull and per request, what the
model predicts and what was counted: S3 requests (moto's log), Redis commands
(``INFO stats``), the instances' CPU seconds and how haproxy spread the requests.

    python3 benchmarks/check_scaling.py --pulls 100 --layers 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

for _path in (Path(__file__).resolve().parent.parent, Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
from tests.support.backends import MotoServer, S3RegistryProcess, s3_params  # noqa: E402
from tests.support.net import free_port, wait_until  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402

from bench_client import Connection, expect, run_pool  # noqa: E402
from bench_core import group_cpu_seconds, log  # noqa: E402
from bench_manifests import (  # noqa: E402
    MANIFEST_ACCEPT,
    make_config,
    make_layer,
    make_manifest,
    push_blob,
    put_manifest,
    sha256,
)

REPO = "scale/app"
HAPROXY = "/usr/sbin/haproxy"


def redis_commands(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"INFO stats\r\n")
        data = b""
        while b"total_commands_processed" not in data or not data.endswith(b"\r\n"):
            data += sock.recv(65536)
    for line in data.decode().splitlines():
        if line.startswith("total_commands_processed:"):
            return int(line.split(":")[1])
    raise RuntimeError("no total_commands_processed in INFO stats")


def haproxy_config(port: int, stats_port: int, backends: list[int]) -> str:
    servers = "\n".join(f"    server d{i} 127.0.0.1:{p}" for i, p in enumerate(backends))
    return f"""global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend registry
    bind 127.0.0.1:{port}
    default_backend dockyard
backend dockyard
    balance roundrobin
    option http-server-close
{servers}
frontend stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
"""


def served(stats_port: int) -> dict[str, int]:
    """Requests each backend server answered, from haproxy's CSV stats."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{stats_port}/stats;csv", timeout=5).text
    header = text.splitlines()[0].lstrip("# ").split(",")
    out = {}
    for line in text.splitlines()[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == "dockyard" and row.get("svname", "").startswith("d"):
            out[row["svname"]] = int(row.get("hrsp_3xx") or 0) + int(row.get("hrsp_2xx") or 0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pulls", type=int, default=100)
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="workers per instance")
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy record the first instance during the pulls (raw format)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dockyard-scaling-"))
    secret = secrets.token_hex(32)
    try:
        with contextlib.ExitStack() as stack:
            moto = MotoServer(work / "moto")
            stack.enter_context(moto)
            redis = RedisServer(work / "redis")
            stack.enter_context(redis)
            bucket = moto.create_bucket()
            instances = []
            for i in range(2):
                proc = S3RegistryProcess(
                    work / f"dockyard-{i}", s3=s3_params(moto.url, bucket), secret=secret,
                    overrides={
                        "log": {"accesslog": {"disabled": True}},
                        "storage": {"cache": {"blobdescriptor": "redis"},
                                    "maintenance": {"uploadpurging": {"enabled": False}}},
                        "redis": {"addr": redis.addr},
                    },
                    workers=args.workers, log_level="warn")
                stack.callback(proc.stop)
                proc.start()
                instances.append(proc)
            port, stats_port = free_port(), free_port()
            cfg = work / "haproxy.cfg"
            cfg.write_text(haproxy_config(port, stats_port, [p.port for p in instances]))
            lb = subprocess.Popen([HAPROXY, "-f", str(cfg)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
            stack.callback(lambda: (lb.terminate(), lb.wait()))
            wait_until(lambda: served(stats_port) is not None, what="haproxy", deadline=10)
            layers = [make_layer(), *(os.urandom(4096) for _ in range(args.layers - 1))]
            config = make_config(layers[0])
            manifest = make_manifest(config, layers, "scaling")
            digests = [sha256(config), *(sha256(layer) for layer in layers)]

            async def push() -> None:
                conn = Connection(port)
                try:
                    for data in (config, *layers):
                        await push_blob(conn, REPO, data)
                    await put_manifest(conn, REPO, "v1", manifest)
                finally:
                    conn.close()

            async def pull(conn: Connection, _: int) -> None:
                r = await conn.request("GET", f"/v2/{REPO}/manifests/v1",
                                       {"Accept": MANIFEST_ACCEPT})
                expect(r, 200, "manifest GET")
                for digest in digests:
                    r = await conn.request("GET", f"/v2/{REPO}/blobs/{digest}")
                    expect(r, 307, "blob GET")

            asyncio.run(push())
            asyncio.run(run_pool(port, 2, 4, pull))  # warm: both instances, both caches
            mark, redis0 = moto.log_size(), redis_commands(redis.port)
            cpu0 = [group_cpu_seconds(p.pid) for p in instances]
            served0 = served(stats_port)
            spy = None
            if args.profile is not None:
                spy = subprocess.Popen(
                    ["py-spy", "record", "--nonblocking", "-f", "raw", "-r", "200",
                     "-o", str(args.profile), "-p", str(instances[0].pid)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seconds = asyncio.run(run_pool(port, args.concurrency, args.pulls, pull))
            if spy is not None:
                spy.send_signal(2)
                spy.wait()
            cpu = [group_cpu_seconds(p.pid) - c for p, c in zip(instances, cpu0, strict=True)]
            s3 = [r for r in moto.requests(mark) if r[1].startswith(f"/{bucket}")]
            redis_n = redis_commands(redis.port) - redis0 - 1  # less our own INFO
            spread = {k: v - served0.get(k, 0) for k, v in served(stats_port).items()}
            requests = args.pulls * (len(digests) + 1)
            result = {
                "pulls": args.pulls, "layers": args.layers, "requests": requests,
                "seconds": round(seconds, 2),
                "pulls_per_second": round(args.pulls / seconds, 1),
                "s3_requests_per_pull": round(len(s3) / args.pulls, 2),
                "model_s3_requests_per_pull": 1,
                "redis_commands_per_pull": round(redis_n / args.pulls, 2),
                "model_redis_reads_per_pull": len(digests),
                "cpu_ms_per_request": round(sum(cpu) / requests * 1000, 3),
                "cpu_seconds_per_instance": [round(c, 2) for c in cpu],
                "requests_per_instance": spread,
            }
            print(json.dumps(result, indent=1))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
        log(f"removed {work}")


if __name__ == "__main__":
    sys.exit(main())
