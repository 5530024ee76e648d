#!/usr/bin/env python3
"""Garbage collection, dockyard online vs ``docker-registry garbage-collect`` offline
(issue 13).

Writes one tree on disk directly (fast): ``--manifests`` tagged manifests in ``--repos``
repositories, each with a config and ``--layers`` layers of their own, plus as many
unreferenced blobs as it takes to reach ``--blobs`` in all; every file is dated a day
back. The same tree is copied for each side, then:

- dockyard: ``dockyard serve`` (SQLite index built at start, reported;
  ``storage.maintenance.garbagecollect.enabled`` with no schedule), and
  ``dockyard garbage-collect --online`` while a client keeps pulling (a manifest by tag,
  then a ``HEAD`` of one of its blobs, in a loop on 4 threads): wall time of the
  collection and requests served meanwhile (and failed: must be 0);
- docker-registry: ``/usr/bin/docker-registry garbage-collect`` on its tree, with no
  registry serving (it must not serve while it collects): wall time, 0 requests served.

Both must leave exactly the referenced blobs.

    python3 benchmarks/bench_gc.py                        # 2,000 manifests, 20,000 blobs
    python3 benchmarks/bench_gc.py --manifests 200 --blobs 2000   # a quick look
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

for _path in (Path(__file__).resolve().parent.parent,):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
import httpx  # noqa: E402
from tests.support.servers import DISTRIBUTION_BINARY, RegistryProcess, process_env  # noqa: E402

V2 = "docker/registry/v2"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_tree(root: Path, repos: int, manifests: int, layers: int, blobs: int
               ) -> tuple[set[str], list[tuple[str, str, str]]]:
    """The tree; returns the referenced blob digests and (repo, tag, a blob) per image."""
    referenced: set[str] = set()
    images: list[tuple[str, str, str]] = []
    day_ago = time.time() - 86400

    def put(rel: str, data: bytes) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (day_ago, day_ago))

    def blob(data: bytes) -> dict[str, Any]:
        hx = _sha(data)
        put(f"{V2}/blobs/sha256/{hx[:2]}/{hx}/data", data)
        return {"digest": f"sha256:{hx}", "size": len(data)}

    for m in range(manifests):
        repo = f"bench/r{m % repos:04d}"
        config = blob(json.dumps({"architecture": "amd64", "os": "linux", "m": m}).encode())
        own = [blob(f"layer {i} of image {m}".encode() * 4) for i in range(layers)]
        payload = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **d}
                       for d in own],
        }).encode()
        manifest = blob(payload)
        digest = manifest["digest"]
        for d in (config, *own):
            put(f"{V2}/repositories/{repo}/_layers/sha256/{d['digest'][7:]}/link",
                d["digest"].encode())
        put(f"{V2}/repositories/{repo}/_manifests/revisions/sha256/{digest[7:]}/link",
            digest.encode())
        tag = f"v{m}"
        put(f"{V2}/repositories/{repo}/_manifests/tags/{tag}/current/link", digest.encode())
        put(f"{V2}/repositories/{repo}/_manifests/tags/{tag}/index/sha256/{digest[7:]}/link",
            digest.encode())
        referenced.update(d["digest"] for d in (config, *own, manifest))
        images.append((repo, tag, own[0]["digest"]))
    for g in range(max(0, blobs - len(referenced))):
        garbage = blob(f"unreferenced {g}".encode())
        repo = f"bench/r{g % repos:04d}"
        put(f"{V2}/repositories/{repo}/_layers/sha256/{garbage['digest'][7:]}/link",
            garbage["digest"].encode())
    return referenced, images


def stored(root: Path) -> set[str]:
    return {f"sha256:{p.parent.name}" for p in (root / V2 / "blobs").glob("sha256/*/*/data")}


def pull_loop(url: str, images: list[tuple[str, str, str]], stop: threading.Event,
              counts: dict[str, int], lock: threading.Lock, seed: int) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        i = seed
        while not stop.is_set():
            repo, tag, layer = images[i % len(images)]
            i += 7
            ok = client.get(f"/v2/{repo}/manifests/{tag}",
                            headers={"Accept": MANIFEST_TYPE}).status_code == 200
            ok = ok and client.head(f"/v2/{repo}/blobs/{layer}").status_code == 200
            with lock:
                counts["served" if ok else "failed"] += 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifests", type=int, default=2000)
    parser.add_argument("--blobs", type=int, default=20000)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repos", type=int, default=100)
    parser.add_argument("--dir", default=None, help="where to make the trees")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-gc-", dir=args.dir))
    try:
        root = base / "tree"
        started = time.perf_counter()
        referenced, images = write_tree(root, args.repos, args.manifests, args.layers,
                                        args.blobs)
        total = len(stored(root))
        print(f"tree: {args.manifests:,} manifests, {total:,} blobs "
              f"({total - len(referenced):,} unreferenced), written in "
              f"{time.perf_counter() - started:.1f}s", file=sys.stderr)
        ours, ours_root = base / "dockyard", base / "dockyard-root"
        theirs_root = base / "distribution-root"
        shutil.copytree(root, ours_root)
        shutil.copytree(root, theirs_root)

        server = RegistryProcess(ours, kind="dockyard", log_level="warn", overrides={
            "storage": {"filesystem": {"rootdirectory": str(ours_root)},
                        "maintenance": {"garbagecollect": {"enabled": True, "interval": 0}}}})
        started = time.perf_counter()
        server.start(deadline=3600)
        print(f"dockyard start, index built from storage: {time.perf_counter() - started:.1f}s",
              file=sys.stderr)
        counts, lock, stop = {"served": 0, "failed": 0}, threading.Lock(), threading.Event()
        threads = [threading.Thread(target=pull_loop,
                                    args=(server.url, images, stop, counts, lock, s))
                   for s in range(4)]
        try:
            for t in threads:
                t.start()
            time.sleep(1)
            with lock:
                counts["served"] = counts["failed"] = 0
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "dockyard", "garbage-collect", "--online",
                 str(server.config_path)],
                capture_output=True, text=True, check=False, env=process_env(server.env))
            ours_time = time.perf_counter() - started
            with lock:
                served, failed = counts["served"], counts["failed"]
        finally:
            stop.set()
            for t in threads:
                t.join()
            server.stop()
        if done.returncode != 0:
            sys.exit(f"dockyard garbage-collect --online failed:\n{done.stderr[-3000:]}")
        print(done.stdout.strip(), file=sys.stderr)

        config = base / "distribution.yml"
        config.write_text(json.dumps({"version": "0.1", "storage": {
            "filesystem": {"rootdirectory": str(theirs_root)}}, "http": {"addr": ":0"}}))
        started = time.perf_counter()
        theirs = subprocess.run([DISTRIBUTION_BINARY, "garbage-collect", str(config)],
                                capture_output=True, text=True, check=False)
        theirs_time = time.perf_counter() - started
        if theirs.returncode != 0:
            sys.exit(f"docker-registry garbage-collect failed:\n{theirs.stderr[-3000:]}")

        left_ours, left_theirs = stored(ours_root), stored(theirs_root)
        assert left_ours == referenced, "dockyard left the wrong blobs"
        assert left_theirs == referenced, "docker-registry left the wrong blobs"
        print(f"\nGC of {args.manifests:,} manifests and {total:,} blobs "
              f"({total - len(referenced):,} freed by each)")
        print("| collector | wall time | requests served meanwhile | failed |")
        print("|---|---:|---:|---:|")
        print(f"| dockyard garbage-collect --online (serving) | {ours_time:.1f} s | "
              f"{served:,} ({served / ours_time:,.0f}/s) | {failed} |")
        print(f"| docker-registry garbage-collect (offline) | {theirs_time:.1f} s | "
              f"0 (registry stopped) | - |")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
