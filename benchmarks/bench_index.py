#!/usr/bin/env python3
"""Listings from the metadata index, side by side with docker-registry (issue 12).

Writes a tree on disk directly (fast): N repositories with one layer link each for the
catalog, and repositories of 1,000 / 10,000 / 100,000 tags (``--tags``) for tags/list;
then serves that same tree with dockyard (its SQLite index built at start: the build
time is reported) and with ``/usr/bin/docker-registry``, and times, median of
``--repeat``:

- ``_catalog`` walk: every page of ``n=1000`` (both servers' default maximum);
- ``tags/list`` of each repository, whole (no ``n``), and one page of ``n=100`` in the
  middle (``last`` = the middle tag): flat per-page time means the index is used;
- with ``--s3``, the same on a moto S3 bucket (objects uploaded with boto3; smaller
  default sizes: ``--s3-repos``, ``--s3-tags``), dockyard with ``storage.index.driver:
  sqlite`` and a ``path``.

    python3 benchmarks/bench_index.py                    # fs: 10,000 repos, up to 100,000 tags
    python3 benchmarks/bench_index.py --repos 2000 --tags 1000,10000 --s3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

for _path in (Path(__file__).resolve().parent.parent,):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
import httpx  # noqa: E402
from tests.support.servers import RegistryProcess  # noqa: E402

V2 = "docker/registry/v2"
CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


MANIFEST = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": f"sha256:{_sha(CONFIG)}", "size": len(CONFIG)},
    "layers": [],
}).encode()


def layout(repos: int, tag_counts: list[int]) -> Iterator[tuple[str, bytes]]:
    """(path under the root, content) of the whole tree."""
    for data in (CONFIG, MANIFEST):
        hx = _sha(data)
        yield f"{V2}/blobs/sha256/{hx[:2]}/{hx}/data", data
    config, manifest = _sha(CONFIG), _sha(MANIFEST)
    for i in range(repos):
        yield (f"{V2}/repositories/catalog/r{i:05d}/_layers/sha256/{config}/link",
               f"sha256:{config}".encode())
    for count in tag_counts:
        # distribution's catalog lists a repository by its _layers directory.
        yield (f"{V2}/repositories/tags/t{count}/_layers/sha256/{config}/link",
               f"sha256:{config}".encode())
        repo = f"{V2}/repositories/tags/t{count}/_manifests"
        link = f"sha256:{manifest}".encode()
        yield f"{repo}/revisions/sha256/{manifest}/link", link
        for t in range(count):
            tag = f"{repo}/tags/v{t:06d}"
            yield f"{tag}/current/link", link
            yield f"{tag}/index/sha256/{manifest}/link", link


def write_tree(root: Path, repos: int, tag_counts: list[int]) -> None:
    made: set[str] = set()
    for rel, data in layout(repos, tag_counts):
        path = root / rel
        parent = str(path.parent)
        if parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(parent)
        path.write_bytes(data)


def upload_tree(client: Any, bucket: str, repos: int, tag_counts: list[int]) -> None:
    def put(item: tuple[str, bytes]) -> None:
        client.put_object(Bucket=bucket, Key=item[0], Body=item[1])

    with ThreadPoolExecutor(16) as pool:
        for _ in pool.map(put, layout(repos, tag_counts), chunksize=64):
            pass


def timed(work: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def walk(client: httpx.Client, url: str, key: str) -> int:
    count = 0
    next_url: str | None = url
    while next_url:
        response = client.get(next_url)
        response.raise_for_status()
        count += len(response.json()[key] or [])
        link = response.headers.get("Link")
        next_url = link.split(";")[0].strip().strip("<>") if link else None
    return count


def measure(url: str, repos: int, tag_counts: list[int], repeat: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with httpx.Client(base_url=url, timeout=600) as client:
        listed = walk(client, "/v2/_catalog?n=1000", "repositories")
        assert listed == repos + len(tag_counts), (url, listed)
        out[f"_catalog walk, {repos:,} repos (n=1000)"] = timed(
            lambda: walk(client, "/v2/_catalog?n=1000", "repositories"), repeat)
        for count in tag_counts:
            path = f"/v2/tags/t{count}/tags/list"
            assert len(client.get(path).json()["tags"]) == count
            out[f"tags/list, {count:,} tags, whole"] = timed(lambda p=path: client.get(p), repeat)
            middle = f"v{count // 2:06d}"
            out[f"tags/list, {count:,} tags, one page n=100"] = timed(
                lambda p=path, m=middle: client.get(p, params={"n": 100, "last": m}), repeat)
    return out


def report(title: str, ours: dict[str, float], theirs: dict[str, float]) -> None:
    print(f"\n{title}")
    print(f"| {'workload':<42} | dockyard | docker-registry | speed-up |")
    print(f"|{'-' * 44}|---------:|----------------:|---------:|")
    for key, mine in ours.items():
        other = theirs[key]
        print(f"| {key:<42} | {mine * 1000:7.1f} ms | {other * 1000:12.1f} ms | "
              f"{other / mine:7.1f}x |")
    sys.stdout.flush()


def serve(workdir: Path, kind: str, overrides: dict[str, Any],
          cls: Callable[..., RegistryProcess] = RegistryProcess,
          **kwargs: Any) -> tuple[RegistryProcess, float]:
    server = cls(workdir, kind=kind, overrides=overrides, log_level="warn", **kwargs)
    started = time.perf_counter()
    server.start(deadline=3600)
    return server, time.perf_counter() - started


def run_fs(base: Path, args: argparse.Namespace, tag_counts: list[int]) -> None:
    root = base / "fs-root"
    started = time.perf_counter()
    write_tree(root, args.repos, tag_counts)
    print(f"filesystem tree written in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    results = {}
    for kind in ("dockyard", "distribution"):
        overrides = {"storage": {"filesystem": {"rootdirectory": str(root)}}}
        server, startup = serve(base / f"fs-{kind}", kind, overrides)
        try:
            if kind == "dockyard":
                print(f"dockyard start with the index built from storage: {startup:.1f}s",
                      file=sys.stderr)
            results[kind] = measure(server.url, args.repos, tag_counts, args.repeat)
        finally:
            server.stop()
    report("filesystem", results["dockyard"], results["distribution"])


def run_s3(base: Path, args: argparse.Namespace) -> None:
    from tests.support.backends import MotoServer, S3RegistryProcess, s3_params

    tag_counts = [int(t) for t in args.s3_tags.split(",")]
    moto = MotoServer(base / "moto")
    moto.start()
    try:
        bucket = moto.create_bucket("bench")
        started = time.perf_counter()
        upload_tree(moto.client(), bucket, args.s3_repos, tag_counts)
        print(f"S3 tree uploaded in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        results = {}
        for kind in ("dockyard", "distribution"):
            overrides: dict[str, Any] = {}
            if kind == "dockyard":
                overrides = {"storage": {"index": {
                    "driver": "sqlite", "path": str(base / "s3-index.db")}}}
            server, startup = serve(
                base / f"s3-{kind}", kind, overrides, S3RegistryProcess,
                s3=s3_params(moto.url, bucket))
            try:
                if kind == "dockyard":
                    print(f"dockyard start on S3 with the index built: {startup:.1f}s",
                          file=sys.stderr)
                results[kind] = measure(server.url, args.s3_repos, tag_counts, args.repeat)
            finally:
                server.stop()
        report("moto S3", results["dockyard"], results["distribution"])
    finally:
        moto.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=10_000)
    parser.add_argument("--tags", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--s3", action="store_true", help="also on a moto S3 server")
    parser.add_argument("--s3-only", action="store_true")
    parser.add_argument("--s3-repos", type=int, default=2000)
    parser.add_argument("--s3-tags", default="1000,10000")
    parser.add_argument("--dir", default=None, help="where the trees go (default: $TMPDIR)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-index-", dir=args.dir))
    try:
        if not args.s3_only:
            run_fs(base, args, [int(t) for t in args.tags.split(",")])
        if args.s3 or args.s3_only:
            run_s3(base, args)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
