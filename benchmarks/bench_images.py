"""Group ``images``: whole images pushed and pulled by ``--images`` (8) clients at once,
on filesystem storage. Part of benchmarks/run.py; see benchmarks/README.md.

An image is an OCI manifest, a small config and five layers of 1, 3, 8, 16 and 32 MiB
(60 MiB in all, sizes of a typical application image's layers). Each client pushes
its own image to its own repository, one request after the other on one keep-alive
connection, as a client does that pushes its layers in turn: every layer ``POST`` then
``PUT ?digest=`` with the whole layer, the config the same way, then the manifest ``PUT``
by tag. A pull is the way back: the manifest ``GET`` by tag, the config, the layers;
the manifest and config are sha256-checked against their digests, the layers as
``--pull-check`` says (by default compared byte for byte with what was pushed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench_blobs import drop_blob, make_servers, pull_check
from bench_client import (
    BLOCK,
    BigBlob,
    Connection,
    ProtocolError,
    expect,
    fetch_hashed,
    put_blob,
    run_pool,
)
from bench_core import MB, Measure, Row, Sample, Server
from bench_manifests import (
    MANIFEST_ACCEPT,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    push_blob,
    put_manifest,
    sha256,
)

LAYER_SIZES = tuple(n << 20 for n in (1, 3, 8, 16, 32))


class Image:
    """One image's layers, config and manifest; the first bytes of every layer are
    unique to it, so that no push finds content already stored."""

    def __init__(self, pattern: bytes, repo: str, tag: str, nonce: str) -> None:
        self.repo, self.tag = repo, tag
        self.layers = [BigBlob(pattern, size, f"dockyard-bench {nonce} {repo} {i}".encode())
                       for i, size in enumerate(LAYER_SIZES)]
        self.config = json.dumps({
            "architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": [b.digest for b in self.layers]},
        }, separators=(",", ":")).encode()
        self.manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(self.config),
                       "size": len(self.config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": b.digest, "size": b.size}
                       for b in self.layers],
        }, indent=3).encode()
        self.size = sum(LAYER_SIZES) + len(self.config) + len(self.manifest)

    async def push(self, conn: Connection) -> None:
        for layer in self.layers:
            await put_blob(conn, self.repo, layer)
        await push_blob(conn, self.repo, self.config)
        await put_manifest(conn, self.repo, self.tag, self.manifest)

    async def pull(self, conn: Connection, port: int, receivers: ThreadPoolExecutor,
                   hashers: ThreadPoolExecutor, check: str) -> None:
        r = await conn.request("GET", f"/v2/{self.repo}/manifests/{self.tag}",
                               {"Accept": MANIFEST_ACCEPT})
        expect(r, 200, "manifest GET")
        digest = sha256(r.body)
        if digest != sha256(self.manifest) or r.headers.get("docker-content-digest") != digest:
            raise ProtocolError(f"manifest GET {self.repo}:{self.tag}: digest {digest}")
        manifest = json.loads(r.body)
        config = manifest["config"]["digest"]
        r = await conn.request("GET", f"/v2/{self.repo}/blobs/{config}")
        expect(r, 200, "config GET")
        if sha256(r.body) != config:
            raise ProtocolError(f"config GET {self.repo}: content does not match {config}")
        if [layer["digest"] for layer in manifest["layers"]] != [b.digest for b in self.layers]:
            raise ProtocolError(f"manifest GET {self.repo}:{self.tag}: other layers")
        loop = asyncio.get_running_loop()
        for blob in self.layers:
            target = f"/v2/{self.repo}/blobs/{blob.digest}"
            status, size, got = await loop.run_in_executor(
                receivers, fetch_hashed, port, target, hashers, check != "length", None,
                blob if check == "bytes" else None)
            if status != 200 or size != blob.size or (check != "length" and got != blob.digest):
                raise ProtocolError(f"GET {target}: {status}, {size} bytes with {got}")


class ImagesGroup:
    name = "images"

    def __init__(self, args: argparse.Namespace, workdir: Path, secret: str) -> None:
        self.args = args
        self.servers = make_servers(workdir / "images", args.workers, secret)
        self.pattern = os.urandom(BLOCK)
        self.images: list[Image] = []
        # Each pull receives on a blocking socket in a thread of its own and hashes
        # every buffer in another thread, so the clients' hashing spreads over the cores.
        self.receivers = ThreadPoolExecutor(args.images, thread_name_prefix="receive")
        self.hashers = ThreadPoolExecutor(args.images, thread_name_prefix="hash")

    def rows(self) -> list[Row]:
        n = self.args.images
        what = f"{len(LAYER_SIZES)} layers, {sum(LAYER_SIZES) >> 20} MiB"
        return [
            Row("images_push", f"{n} parallel pushes of whole images ({what})", "MB/s", True),
            Row("images_pull", f"{n} parallel pulls of whole images (layers {pull_check(self.args)}"
                " checked)", "MB/s", True),
        ]

    def processes(self) -> list[tuple[str, Any]]:
        return [(s.label, s.proc) for s in self.servers]

    def server(self, label: str) -> Server:
        return next(s for s in self.servers if s.label == label)

    def start(self, stack: contextlib.ExitStack, runner: Any) -> None:
        stack.callback(self.receivers.shutdown)
        stack.callback(self.hashers.shutdown)
        for server in self.servers:
            stack.callback(server.proc.stop)
            server.proc.start()

    def begin_rep(self, rep: int) -> None:
        nonce = secrets.token_hex(8)
        self.images = [Image(self.pattern, f"bench/image-{i}", f"r{rep}", nonce)
                       for i in range(self.args.images)]

    def peak_rss(self) -> dict[str, float]:
        return {s.label: s.peak_rss_mib() for s in self.servers}

    def notes(self, results: dict[str, dict[str, list[Sample]]]) -> list[str]:
        return []

    async def run(self, label: str, rep: int) -> dict[str, Sample]:
        server, images = self.server(label), self.images
        port, total = server.port, sum(image.size for image in images)
        out: dict[str, Sample] = {}

        async def push_job(conn: Connection, i: int) -> None:
            await images[i].push(conn)

        with Measure(server) as m:
            seconds = await run_pool(port, len(images), len(images), push_job)
        out["images_push"] = m.sample(total / seconds / MB)

        async def pull_job(conn: Connection, i: int) -> None:
            await images[i].pull(conn, port, self.receivers, self.hashers,
                                 pull_check(self.args))

        with Measure(server) as m:
            seconds = await run_pool(port, len(images), len(images), pull_job)
        out["images_pull"] = m.sample(total / seconds / MB)
        for image in images:
            for layer in image.layers:
                drop_blob(server, layer.digest)
        os.sync()
        return out
