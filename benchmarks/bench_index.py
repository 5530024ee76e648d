"""Listings from the metadata index, side by side with docker-registry (issue 12).

Each workload is its own tree: a catalog of N repositories (``--repos``, one layer link
each) or one repository of T tags (``--tags``, all naming one manifest). On the
filesystem the tree is written to disk directly; on S3 (``--s3``) each workload is a
bucket of a moto server seeded in its memory before it listens (benchmarks/
moto_seeded.py: uploading 200,000 objects through moto's API would take longer than
the benchmark). For each workload, in one run: dockyard's SQLite index is built by
``dockyard index rebuild`` (timed), dockyard serves the tree, then
``/usr/bin/docker-registry`` serves the same tree (the same bucket), and each is timed,
median of ``--repeat``:

- ``_catalog`` walk: every page of ``n=1000`` (both servers' default maximum);
- ``tags/list`` whole (no ``n``), and one page of ``n=100`` in the middle (``last`` =
  the middle tag): flat per-page time means the index is used. docker-registry 2.8
  ignores ``n``/``last`` on ``tags/list``, so its "page" is the whole list.

With ``--lock FILE`` (``/tmp/dockyard-bench.lock`` on the shared machine) each
workload's timed part (rebuild, both servers) holds ``flock(FILE)``; writing and
seeding the trees does not.

    python3 benchmarks/bench_index.py            # fs: 1,000/10,000 repos, 1,000..100,000 tags
    python3 benchmarks/bench_index.py --s3 --no-fs --repos 10000 --tags 100000 --repeat 1
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

for _path in (Path(__file__).resolve().parent.parent,):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
import httpx  # noqa: E402
from tests.support.servers import RegistryProcess, process_env  # noqa: E402

T = TypeVar("T")
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


def write_tree(root: Path, work: Workload) -> None:
    made: set[str] = set()
    for rel, data in work.layout():
        path = root / rel
        parent = str(path.parent)
        if parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(parent)
        path.write_bytes(data)


def timed(work: Callable[[], T], repeat: int, check: Callable[[T], bool]) -> float:
    """Median seconds of ``work``; every answer must pass ``check`` (not timed)."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        answer = work()
        samples.append(time.perf_counter() - started)
        assert check(answer), answer
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


@dataclass(frozen=True)
class Workload:
    """A catalog of ``repos`` repositories, or one repository of ``tags`` tags."""

    repos: int = 0
    tags: int = 0

    @property
    def name(self) -> str:
        return f"catalog-{self.repos}" if self.repos else f"tags-{self.tags}"

    def layout(self) -> Iterator[tuple[str, bytes]]:
        return layout(self.repos, [self.tags] if self.tags else [])


def measure(url: str, work: Workload, repeat: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with httpx.Client(base_url=url, timeout=3600) as client:
        if work.repos:
            out[f"_catalog walk, {work.repos:,} repos (n=1000)"] = timed(
                lambda: walk(client, "/v2/_catalog?n=1000", "repositories"), repeat,
                lambda count: count == work.repos)
            return out
        path = f"/v2/tags/t{work.tags}/tags/list"
        middle = f"v{work.tags // 2:06d}"
        page = [f"v{t:06d}" for t in range(work.tags // 2 + 1, work.tags // 2 + 101)]

        def tags(response: httpx.Response, expected: int) -> bool:
            listed = response.json()["tags"]
            # docker-registry's "page" is the whole list: only its length is checked.
            return len(listed) == work.tags or listed == page[:expected]

        out[f"tags/list, {work.tags:,} tags, whole"] = timed(
            lambda: client.get(path), repeat, lambda r: tags(r, work.tags))
        out[f"tags/list, {work.tags:,} tags, one page n=100"] = timed(
            lambda: client.get(path, params={"n": 100, "last": middle}), repeat,
            lambda r: tags(r, 100))
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


@contextlib.contextmanager
def locked(path: str | None) -> Iterator[None]:
    """``flock(path)`` held (nothing without a path): one timed run on the machine."""
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def side_by_side(work: Workload, base: Path, args: argparse.Namespace, title: str,
                 make: Callable[[Path, str, dict[str, Any]], RegistryProcess]) -> None:
    """Rebuild dockyard's index, then time dockyard and docker-registry on one tree."""
    results = {}
    with locked(args.lock):
        print(f"{title}: load average {os.getloadavg()[0]:.1f} at start", file=sys.stderr)
        for kind in ("dockyard", "distribution"):
            overrides: dict[str, Any] = {}
            if kind == "dockyard":
                overrides["storage"] = {"index": {
                    "driver": "sqlite", "path": str(base / f"{work.name}-index.db")}}
            server = make(base / f"{work.name}-{kind}", kind, overrides)
            if kind == "dockyard":
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "dockyard", "index", "rebuild",
                     str(server.config_path)],
                    env=process_env(server.env), cwd=server.workdir, check=True,
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                print(f"{title}: dockyard index rebuild {time.perf_counter() - started:.1f}s: "
                      f"{done.stdout.strip()}", file=sys.stderr)
            server.start(deadline=3600)
            try:
                results[kind] = measure(server.url, work, args.repeat)
            finally:
                server.stop()
    report(f"{title} (load average {os.getloadavg()[0]:.1f} at the end)",
           results["dockyard"], results["distribution"])


def run_fs(base: Path, args: argparse.Namespace, workloads: list[Workload]) -> None:
    for work in workloads:
        root = base / f"fs-{work.name}"
        started = time.perf_counter()
        write_tree(root, work)
        print(f"filesystem {work.name}: written in {time.perf_counter() - started:.1f}s",
              file=sys.stderr)

        def make(workdir: Path, kind: str, overrides: dict[str, Any],
                 root: Path = root) -> RegistryProcess:
            overrides = {**overrides, "storage": {
                **overrides.get("storage", {}), "filesystem": {"rootdirectory": str(root)}}}
            return RegistryProcess(workdir, kind=kind, overrides=overrides, log_level="warn")

        side_by_side(work, base, args, f"filesystem, {work.name}", make)
        shutil.rmtree(root)


def run_s3(base: Path, args: argparse.Namespace, workloads: list[Workload]) -> None:
    from tests.support.backends import MotoServer, S3RegistryProcess, s3_params

    buckets = {work: f"bench-{work.name}" for work in workloads}
    plan = base / "moto-plan.json"
    plan.write_text(json.dumps([
        {"bucket": buckets[w], "repos": w.repos, "tags": [w.tags] if w.tags else []}
        for w in workloads]))

    class SeededMoto(MotoServer):
        deadline = 1800.0

        def command(self) -> list[str]:
            return [sys.executable, str(Path(__file__).with_name("moto_seeded.py")),
                    str(plan), "-H", "127.0.0.1", "-p", str(self.port)]

    moto = SeededMoto(base / "moto")
    started = time.perf_counter()
    moto.start()
    print(f"moto seeded and serving in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    try:
        for work in workloads:
            def make(workdir: Path, kind: str, overrides: dict[str, Any],
                     bucket: str = buckets[work]) -> RegistryProcess:
                return S3RegistryProcess(workdir, kind=kind, overrides=overrides,
                                         log_level="warn", s3=s3_params(moto.url, bucket))

            side_by_side(work, base, args, f"moto S3, {work.name}", make)
    finally:
        moto.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", default="1000,10000", help="catalog sizes ('' for none)")
    parser.add_argument("--tags", default="1000,10000,100000", help="tag counts ('' for none)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--s3", action="store_true", help="on a moto S3 server too")
    parser.add_argument("--no-fs", action="store_true", help="not on the filesystem")
    parser.add_argument("--lock", default=None,
                        help="hold flock(LOCK) over each workload's timed part")
    parser.add_argument("--dir", default=None, help="where the trees go (default: $TMPDIR)")
    args = parser.parse_args()
    workloads = [Workload(repos=int(n)) for n in args.repos.split(",") if n]
    workloads += [Workload(tags=int(n)) for n in args.tags.split(",") if n]
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-index-", dir=args.dir))
    try:
        if not args.no_fs:
            run_fs(base, args, workloads)
        if args.s3:
            run_s3(base, args, workloads)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
