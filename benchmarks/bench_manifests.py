"""Group ``manifests``: manifest PUT and GET by tag, tags/list of a big repository (full
and paged), a full catalog walk; on filesystem storage seeded before the servers start.

Seeding: each server gets one config blob, one layer blob and one OCI manifest through
the API (repository ``bench/manifests``, tag ``seed``); then, server stopped, the link
files of ``--tags`` tags (repository ``bench/tags``) and of the other repositories (up to
``--repos`` in all) are written straight into its storage root, in the layout both
servers share. Part of benchmarks/run.py; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import tarfile
import time
from pathlib import Path
from typing import Any

from bench_blobs import make_servers
from bench_client import (
    Connection,
    ProtocolError,
    Response,
    expect,
    path_of,
    run_pool,
    start_upload,
    with_digest,
)
from bench_core import LABELS, Measure, Row, Sample, Server, log

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
# docker-registry 2.8 answers 404 for an OCI manifest unless Accept names the OCI type.
MANIFEST_ACCEPT = ", ".join((
    OCI_MANIFEST,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
))
MANIFEST_REPO = "bench/manifests"
TAGS_REPO = "bench/tags"
FRESH_REPO = "bench/fresh"
LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data)}


def make_layer() -> bytes:
    """A small gzipped tar with one file."""
    content = b"dockyard benchmark layer\n"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("bench.txt")
        info.size = len(content)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def make_config(layer: bytes) -> bytes:
    diff_id = sha256(gzip.decompress(layer))
    return json.dumps({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }, separators=(",", ":")).encode()


def make_manifest(config: bytes, layer: bytes | list[bytes], note: str) -> bytes:
    """An OCI image manifest of ``config`` and ``layer`` (or layers); ``note`` makes it
    distinct."""
    layers = layer if isinstance(layer, list) else [layer]
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, one) for one in layers],
        "annotations": {"org.example.dockyard-bench": note},
    }, indent=2).encode()


def write_link(path: Path, digest: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(digest)


def seed_repository(root: Path, name: str, blobs: list[str], manifest: str,
                    tags: list[str]) -> None:
    """The link files of a repository holding ``blobs`` and ``manifest`` under ``tags``."""
    repo = root / "docker/registry/v2/repositories" / name
    for digest in blobs:
        write_link(repo / "_layers/sha256" / digest.split(":")[1] / "link", digest)
    manifests = repo / "_manifests"
    hexpart = manifest.split(":")[1]
    write_link(manifests / "revisions/sha256" / hexpart / "link", manifest)
    for tag in tags:
        write_link(manifests / "tags" / tag / "current/link", manifest)
        write_link(manifests / "tags" / tag / "index/sha256" / hexpart / "link", manifest)


def filler_names(count: int) -> list[str]:
    """``count`` repository names, 50 to a namespace."""
    return [f"catalog-{i // 50:03d}/repo-{i % 50:02d}" for i in range(count)]


async def push_blob(conn: Connection, repo: str, data: bytes) -> None:
    target = await start_upload(conn, repo)
    r = await conn.request("PUT", with_digest(target, sha256(data)),
                           {"Content-Type": "application/octet-stream"}, data)
    expect(r, 201, "blob PUT")


async def put_manifest(conn: Connection, repo: str, ref: str, body: bytes) -> None:
    r = await conn.request("PUT", f"/v2/{repo}/manifests/{ref}",
                           {"Content-Type": OCI_MANIFEST}, body)
    expect(r, 201, "manifest PUT")
    if r.headers.get("docker-content-digest") != sha256(body):
        raise ProtocolError(f"manifest PUT: digest {r.headers.get('docker-content-digest')}")


async def walk(conn: Connection, first: str, max_pages: int) -> list[Response]:
    """GET ``first`` and every page its ``Link: <...>; rel="next"`` leads to."""
    pages: list[Response] = []
    target: str | None = first
    while target is not None:
        if len(pages) >= max_pages:
            raise ProtocolError(f"walk from {first}: more than {max_pages} pages")
        r = await conn.request("GET", target)
        expect(r, 200, f"GET {target}")
        pages.append(r)
        match = LINK_NEXT.search(r.headers.get("link", ""))
        target = path_of(match.group(1)) if match else None
    return pages


def listed(pages: list[Response], key: str) -> list[str]:
    out: list[str] = []
    for page in pages:
        out += json.loads(page.body)[key] or []
    return out


def check_listing(what: str, label: str, names: list[str], expected: set[str]) -> None:
    if len(names) != len(expected) or set(names) != expected:
        raise ProtocolError(
            f"{what} on {label}: {len(names)} names ({len(set(names))} distinct), "
            f"expected {len(expected)}; first ones {names[:3]}")


class ManifestsGroup:
    name = "manifests"

    def __init__(self, args: argparse.Namespace, workdir: Path, secret: str) -> None:
        self.args = args
        self.servers = make_servers(workdir / "manifests", args.workers, secret)
        self.layer = make_layer()
        self.config = make_config(self.layer)
        # The PUT rows' manifests reference the seed layer and --layers - 1 more blobs.
        self.layers = [self.layer, *(f"extra layer {i}\n".encode()
                                     for i in range(args.layers - 1))]
        self.seed = make_manifest(self.config, self.layer, "seed")
        self.tags = [f"t{i:05d}" for i in range(args.tags)]
        self.seeded_fresh = [f"t{i:05d}" for i in range(args.fresh_tags)]
        # label -> the tags of FRESH_REPO: seeded, then one more before each listing.
        self.fresh_tags = {label: set(self.seeded_fresh) for label in LABELS}
        self.repos = {MANIFEST_REPO, TAGS_REPO, FRESH_REPO, *filler_names(args.repos - 3)}
        self.manifests: list[tuple[str, bytes, str]] = []  # (tag, body, digest)

    def rows(self) -> list[Row]:
        a = self.args
        c = a.manifest_concurrency
        return [
            Row("manifest_put", f"manifest PUT by tag x {a.manifests:,} (distinct OCI, "
                f"{a.layers} layer{'s' if a.layers > 1 else ''}), concurrency {c}",
                "req/s", True),
            Row("manifest_get", f"manifest GET by tag x {a.manifest_gets:,}, concurrency {c}",
                "req/s", True),
            Row("tags_full", f"tags/list of {a.tags:,} tags, full (x {a.tag_lists})",
                "ms", False),
            Row("tags_paged", f"tags/list of {a.tags:,} tags, n={a.page} following Link "
                "(*)", "ms", False),
            Row("tags_fresh", f"tags/list of {a.fresh_tags:,}+ tags just after a tag push "
                f"(x {a.tag_lists})", "ms", False),
            Row("catalog", f"_catalog walk of {a.repos:,} repositories, n={a.page} "
                "following Link", "ms", False),
        ]

    def processes(self) -> list[tuple[str, Any]]:
        return [(s.label, s.proc) for s in self.servers]

    def server(self, label: str) -> Server:
        return next(s for s in self.servers if s.label == label)

    def start(self, stack: contextlib.ExitStack, runner: Any) -> None:
        digest = sha256(self.seed)
        for server in self.servers:
            stack.callback(server.proc.stop)
            if server.proc.kind == "dockyard":
                # With the index, the seeded links (written behind its back, below) are
                # read in by a rebuild at the next start (untimed).
                server.proc.reconfigure({"storage": {"index": (
                    {"driver": "none"} if self.args.index == "none"
                    else {"driver": "sqlite", "rebuildonstart": True})}})
            server.proc.start()
            runner.run(self._push_seed(server.port))
            server.proc.stop()
            t0 = time.perf_counter()
            root = server.proc.root
            blobs = [sha256(self.config), sha256(self.layer)]
            seed_repository(root, MANIFEST_REPO, blobs, digest, ["seed"])
            seed_repository(root, TAGS_REPO, blobs, digest, self.tags)
            seed_repository(root, FRESH_REPO, blobs, digest, self.seeded_fresh)
            for name in sorted(self.repos - {MANIFEST_REPO, TAGS_REPO, FRESH_REPO}):
                seed_repository(root, name, blobs, digest, ["latest"])
            os.sync()
            log(f"  {server.label}: seeded {len(self.tags):,} tags and {len(self.repos):,} "
                f"repositories in {time.perf_counter() - t0:.1f} s (not timed)")
            server.proc.start()

    async def _push_seed(self, port: int) -> None:
        conn = Connection(port)
        try:
            await push_blob(conn, MANIFEST_REPO, self.config)
            for layer in self.layers:
                await push_blob(conn, MANIFEST_REPO, layer)
            await put_manifest(conn, MANIFEST_REPO, "seed", self.seed)
        finally:
            conn.close()

    def begin_rep(self, rep: int) -> None:
        nonce = secrets.token_hex(8)
        self.manifests = []
        for i in range(self.args.manifests):
            body = make_manifest(self.config, self.layers, f"{nonce}-{i}")
            self.manifests.append((f"r{rep}-{i:05d}", body, sha256(body)))

    def peak_rss(self) -> dict[str, float]:
        return {s.label: s.peak_rss_mib() for s in self.servers}

    def notes(self, results: dict[str, dict[str, list[Sample]]]) -> list[str]:
        pages = {label: int(per["tags_paged"][0].extra["pages"])
                 for label, per in results.items() if per.get("tags_paged")}
        cat = {label: int(per["catalog"][0].extra["pages"])
               for label, per in results.items() if per.get("catalog")}
        return [
            f"dockyard's storage.index.driver: {self.args.index}"
            + (" (listings walk storage, as docker-registry's do)."
               if self.args.index == "none" else " (its default)."),
            "(*) paged tags/list: requests per walk: " + ", ".join(
                f"{k} {v}" for k, v in pages.items())
            + ". docker-registry 2.8 ignores n and last on tags/list: its \"paged\""
            " walk is one request answering the full list, so this ratio compares"
            " dockyard's pages with one full list.",
            "_catalog walk: requests per walk: " + ", ".join(
                f"{k} {v}" for k, v in cat.items()) + ".",
        ]

    async def run(self, label: str, rep: int) -> dict[str, Sample]:
        args, server = self.args, self.server(label)
        port, conc = server.port, args.manifest_concurrency
        out: dict[str, Sample] = {}
        manifests = self.manifests

        async def put_job(conn: Connection, i: int) -> None:
            tag, body, _ = manifests[i]
            await put_manifest(conn, MANIFEST_REPO, tag, body)

        with Measure(server) as m:
            seconds = await run_pool(port, conc, len(manifests), put_job)
        out["manifest_put"] = m.sample(len(manifests) / seconds)

        async def get_job(conn: Connection, i: int) -> None:
            tag, body, digest = manifests[i % len(manifests)]
            r = await conn.request("GET", f"/v2/{MANIFEST_REPO}/manifests/{tag}",
                                   {"Accept": MANIFEST_ACCEPT})
            expect(r, 200, "manifest GET")
            if r.headers.get("docker-content-digest") != digest or len(r.body) != len(body):
                raise ProtocolError(f"manifest GET {tag}: {len(r.body)} bytes, digest "
                                    f"{r.headers.get('docker-content-digest')}")

        with Measure(server) as m:
            seconds = await run_pool(port, conc, args.manifest_gets, get_job)
        out["manifest_get"] = m.sample(args.manifest_gets / seconds)

        expected_tags = set(self.tags)
        conn = Connection(port)
        try:
            full = f"/v2/{TAGS_REPO}/tags/list"
            bodies: list[Response] = []
            with Measure(server) as m:
                t0 = time.perf_counter()
                for _ in range(args.tag_lists):
                    r = await conn.request("GET", full)
                    expect(r, 200, "tags/list")
                    bodies.append(r)
                seconds = time.perf_counter() - t0
            out["tags_full"] = m.sample(seconds / args.tag_lists * 1000)
            check_listing("tags/list", label, listed(bodies[:1], "tags"), expected_tags)
            if any(len(r.body) != len(bodies[0].body) for r in bodies):
                raise ProtocolError(f"tags/list on {label}: answers of different lengths")

            max_pages = args.tags // args.page + 10
            walks = []
            with Measure(server) as m:
                t0 = time.perf_counter()
                for _ in range(args.walks):
                    walks.append(await walk(conn, f"{full}?n={args.page}", max_pages))
                seconds = time.perf_counter() - t0
            out["tags_paged"] = m.sample(seconds / args.walks * 1000, pages=len(walks[0]))
            for pages in walks:
                check_listing("paged tags/list", label, listed(pages, "tags"), expected_tags)

            # A new tag before each listing: the tags directory changed just now, so
            # no listing cached from before can answer (only the request is timed).
            fresh_seconds = fresh_server_cpu = fresh_client_cpu = 0.0
            fresh = f"/v2/{FRESH_REPO}/tags/list"
            for i in range(args.tag_lists):
                tag = f"n{rep}-{i:04d}"
                await put_manifest(conn, FRESH_REPO, tag, self.seed)
                self.fresh_tags[label].add(tag)
                with Measure(server) as m:
                    t0 = time.perf_counter()
                    r = await conn.request("GET", fresh)
                    fresh_seconds += time.perf_counter() - t0
                expect(r, 200, "tags/list")
                fresh_server_cpu += m.server_cpu
                fresh_client_cpu += m.client_cpu
                check_listing("fresh tags/list", label, listed([r], "tags"),
                              self.fresh_tags[label])
            out["tags_fresh"] = Sample(fresh_seconds / args.tag_lists * 1000,
                                       fresh_server_cpu, fresh_client_cpu)

            max_pages = args.repos // args.page + 10
            walks = []
            with Measure(server) as m:
                t0 = time.perf_counter()
                for _ in range(args.walks):
                    walks.append(await walk(conn, f"/v2/_catalog?n={args.page}", max_pages))
                seconds = time.perf_counter() - t0
            out["catalog"] = m.sample(seconds / args.walks * 1000, pages=len(walks[0]))
            for pages in walks:
                check_listing("_catalog", label, listed(pages, "repositories"), self.repos)
        finally:
            conn.close()
        return out
