"""Online garbage collection while images are pushed (issue 13).

Pushers (raw HTTP in threads, and skopeo) push images to several repositories while the
registry collects by itself every fraction of a second with a one-second grace, and
``dockyard garbage-collect --online`` competes for the lease from outside. Every image
reuses a layer uploaded two pushes earlier and never referenced since: by the time its
manifest arrives, that layer is older than the grace and unmarked, exactly the blob a
collection deletes, so the fence between PUT and sweep is exercised on every push (the
PUT keeps the blob, or is refused with MANIFEST_BLOB_UNKNOWN and pushed again). Every
push also leaves an orphan blob that nothing will ever reference.

Afterwards: every image whose push got 201 pulls with correct digests, every orphan is
gone, no blob in storage is unreferenced (filesystem, after a last collection), and
``dockyard index verify`` reports no drift. On the filesystem with two workers sharing
the SQLite index, and on moto S3 with two instances sharing a PostgreSQL index.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import tarfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.api import TARGET, digest_of, push_blob, random_repo
from tests.support.index import dockyard_command
from tests.support.interop import Skopeo, require_binary
from tests.support.manifests import DOCKER_LAYER, DOCKER_SCHEMA2, descriptor
from tests.support.servers import RegistryProcess

pytestmark = pytest.mark.skipif(TARGET == "distribution", reason="dockyard's online GC")

GRACE = "1s"
PUSHES_PER_THREAD = 12
THREADS = 3
SKOPEO_PUSHES = 4
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


@dataclass
class Pushed:
    repo: str
    tag: str
    digest: str
    blobs: dict[str, bytes]


@dataclass
class Outcome:
    pushed: list[Pushed] = field(default_factory=list)
    orphans: list[tuple[str, str]] = field(default_factory=list)
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def config_blob() -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"},
                       "salt": os.urandom(8).hex()}).encode()


def manifest_of(config: bytes, layers: Sequence[bytes]) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": DOCKER_SCHEMA2,
        "config": descriptor("application/vnd.docker.container.image.v1+json", config),
        "layers": [descriptor(DOCKER_LAYER, layer) for layer in layers],
    }).encode()


def missing(client: httpx.Client, repo: str, blobs: dict[str, bytes]) -> list[str]:
    return [d for d in blobs if client.head(f"/v2/{repo}/blobs/{d}").status_code != 200]


def http_pusher(urls: Sequence[str], repos: Sequence[str], outcome: Outcome, seed: int,
                pushes: int) -> None:
    """Pushes images, each with a layer uploaded two pushes earlier (see the docstring)."""
    rng = random.Random(seed)
    clients = [httpx.Client(base_url=u, timeout=60) for u in urls]
    stale: list[tuple[str, bytes]] = []  # (repo, layer) uploaded, not yet referenced
    try:
        for i in range(pushes):
            repo = rng.choice(repos)
            client = rng.choice(clients)
            fresh = os.urandom(2048)
            push_blob(client, repo, fresh)
            stale.append((repo, fresh))
            orphan = os.urandom(512)
            orphan_digest = push_blob(client, repo, orphan)
            with outcome.lock:
                outcome.orphans.append((repo, orphan_digest))
            if len(stale) < 3:
                continue
            stale_repo, old = stale.pop(0)
            if stale_repo != repo:
                push_blob(client, stale_repo, old)  # keeps stale_repo's upload as garbage
            config, own = config_blob(), os.urandom(4096)
            blobs = {digest_of(b): b for b in (config, own, old)}
            body = manifest_of(config, [own, old])
            tag = f"t{seed}-{i}"
            for _attempt in range(10):
                client = rng.choice(clients)
                for digest in missing(client, repo, blobs):
                    push_blob(client, repo, blobs[digest])
                time.sleep(rng.uniform(0, 0.3))
                response = client.put(f"/v2/{repo}/manifests/{tag}", content=body,
                                      headers={"Content-Type": DOCKER_SCHEMA2})
                if response.status_code == 201:
                    with outcome.lock:
                        outcome.pushed.append(Pushed(repo, tag, digest_of(body), blobs))
                    break
                if response.status_code == 400 and "MANIFEST_BLOB_UNKNOWN" in response.text:
                    with outcome.lock:
                        outcome.refused += 1
                    continue
                with outcome.lock:
                    outcome.errors.append(f"PUT {repo}:{tag}: {response.status_code} "
                                          f"{response.text[:300]}")
                break
            time.sleep(rng.uniform(0.2, 0.6))
    except Exception as exc:  # reported by the test, never lost in a thread
        with outcome.lock:
            outcome.errors.append(f"pusher {seed}: {exc!r}")
    finally:
        for c in clients:
            c.close()


def dir_image(path: Path, layers: Sequence[bytes]) -> tuple[str, dict[str, bytes]]:
    """A skopeo ``dir:`` image of gzipped tar layers: its manifest digest and blobs."""
    path.mkdir(parents=True)
    (path / "version").write_text("Directory Transport Version: 1.1\n")
    blobs: dict[str, bytes] = {}
    compressed = []
    for data in layers:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            info = tarfile.TarInfo(f"file-{hashlib.sha256(data).hexdigest()[:8]}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        compressed.append(gzip.compress(raw.getvalue(), mtime=0))
    config = config_blob()
    for blob in (config, *compressed):
        blobs[digest_of(blob)] = blob
        (path / digest_of(blob).split(":")[1]).write_bytes(blob)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", c)
                   for c in compressed],
    }).encode()
    (path / "manifest.json").write_bytes(manifest)
    return digest_of(manifest), blobs


def skopeo_pusher(skopeo: Skopeo, servers: Sequence[RegistryProcess], repo: str,
                  work: Path, outcome: Outcome) -> None:
    """skopeo copies of images sharing one base layer, while collections run."""
    base = os.urandom(8192)
    try:
        for i in range(SKOPEO_PUSHES):
            digest, blobs = dir_image(work / f"img{i}", [base, os.urandom(2048)])
            server = servers[i % len(servers)]
            dest = f"docker://127.0.0.1:{server.port}/{repo}:s{i}"
            for _attempt in range(10):
                done = skopeo.copy(f"dir:{work / f'img{i}'}", dest, check=False)
                if done.returncode == 0:
                    with outcome.lock:
                        outcome.pushed.append(Pushed(repo, f"s{i}", digest, blobs))
                    break
                if "MANIFEST_BLOB_UNKNOWN" in done.stderr or "blob unknown" in done.stderr:
                    with outcome.lock:
                        outcome.refused += 1
                    continue
                with outcome.lock:
                    outcome.errors.append(f"skopeo {dest}: {done.stderr[-500:]}")
                break
            time.sleep(1.2)  # the base layer is referenced, its blobs age past the grace
    except Exception as exc:
        with outcome.lock:
            outcome.errors.append(f"skopeo pusher: {exc!r}")


def collect_online(server: RegistryProcess, *args: str) -> str | None:
    """``dockyard garbage-collect --online``; None when another collector holds the lease."""
    done = dockyard_command(server, "garbage-collect", "--online", *args,
                            str(server.config_path), check=False)
    if done.returncode == 1 and "holds the gc lease" in done.stderr:
        return None
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def push_while_collecting(servers: Sequence[RegistryProcess], skopeo: Skopeo,
                          work: Path, pushes: int = PUSHES_PER_THREAD) -> Outcome:
    outcome = Outcome()
    repos = [random_repo("gcload") for _ in range(3)]
    urls = [s.url for s in servers]
    threads = [threading.Thread(target=http_pusher, args=(urls, repos, outcome, seed, pushes))
               for seed in range(THREADS)]
    threads.append(threading.Thread(
        target=skopeo_pusher, args=(skopeo, servers, random_repo("gcskopeo"), work, outcome)))
    for t in threads:
        t.start()
    outside = 0
    while any(t.is_alive() for t in threads):
        if collect_online(servers[0], "--grace", GRACE) is not None:
            outside += 1
        time.sleep(0.5)
    for t in threads:
        t.join()
    assert not outcome.errors, outcome.errors
    print(f"{len(outcome.pushed)} images pushed, {outcome.refused} PUTs refused and pushed "
          f"again, {outside} collections from the command line")
    return outcome


def finish_and_check(servers: Sequence[RegistryProcess], outcome: Outcome) -> None:
    """A last collection once the grace has passed, then everything the issue asks.

    The servers are restarted without their own schedule first (``interval: 0``: only the
    command collects), so that the command gets the lease at once.
    """
    for server in servers:
        server.reconfigure({"storage": {"maintenance": {"garbagecollect": {"interval": 0}}}})
        server.restart()
    time.sleep(1.5)
    deadline = time.monotonic() + 120
    while (summary := collect_online(servers[0], "--grace", GRACE)) is None:
        assert time.monotonic() < deadline, "the gc lease was never free"
        time.sleep(0.5)
    print(summary)
    for server in servers:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for p in outcome.pushed:
                response = client.get(f"/v2/{p.repo}/manifests/{p.tag}",
                                      headers={"Accept": "application/vnd.oci.image.manifest"
                                               ".v1+json, " + DOCKER_SCHEMA2})
                assert response.status_code == 200, (p.repo, p.tag, response.text)
                assert response.headers["Docker-Content-Digest"] == p.digest
                assert digest_of(response.content) == p.digest
                for digest, data in p.blobs.items():
                    blob = client.get(f"/v2/{p.repo}/blobs/{digest}", follow_redirects=True)
                    assert blob.status_code == 200, (p.repo, digest, blob.status_code)
                    assert digest_of(blob.content) == digest and blob.content == data
            for repo, digest in outcome.orphans:
                status = client.head(f"/v2/{repo}/blobs/{digest}").status_code
                assert status == 404, (repo, digest, "an orphan older than the grace is left")
    verify = dockyard_command(servers[0], "index", "verify", str(servers[0].config_path),
                              check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    logs = "".join(s.log_text() for s in servers)
    assert "online garbage collection:" in logs


def referenced_in_layout(root: Path) -> set[str]:
    """Every digest some stored manifest revision references, and the revisions."""
    v2 = root / "docker" / "registry" / "v2"
    found: set[str] = set()
    for link in (v2 / "repositories").rglob("_manifests/revisions/sha256/*/link"):
        digest = link.read_text()
        found.add(digest)
        document: dict[str, Any] = json.loads(
            (v2 / "blobs" / "sha256" / digest[7:9] / digest[7:] / "data").read_bytes())
        for d in [document.get("config"), *document.get("layers", []),
                  *document.get("manifests", [])]:
            if isinstance(d, dict):
                found.add(d["digest"])
    return found


def test_online_gc_while_pushing_on_filesystem(
    tmp_path_factory: pytest.TempPathFactory, registry_secret: str, tmp_path: Path
) -> None:
    skopeo = Skopeo(require_binary("skopeo"))
    server = RegistryProcess(
        tmp_path_factory.mktemp("gc-online"), kind="dockyard", secret=registry_secret,
        overrides={
            "http": {"workers": 2},
            "storage": {"maintenance": {"garbagecollect": {
                "enabled": True, "interval": "300ms", "graceperiod": GRACE}}},
        },
    )
    server.start()
    try:
        outcome = push_while_collecting([server], skopeo, tmp_path)
        finish_and_check([server], outcome)
        # Nothing unreferenced is left in the content store.
        blobs = server.root / "docker" / "registry" / "v2" / "blobs" / "sha256"
        stored = {f"sha256:{p.parent.name}" for p in blobs.glob("*/*/data")}
        assert stored <= referenced_in_layout(server.root), "unreferenced blobs are left"
        assert {d for p in outcome.pushed for d in p.blobs} <= stored
    finally:
        server.stop()


def test_online_gc_while_pushing_on_s3_with_two_instances(
    s3_registry_factory: Callable[..., RegistryProcess],
    s3_bucket: str,
    postgres_server: Any,
    tmp_path: Path,
) -> None:
    skopeo = Skopeo(require_binary("skopeo"))
    dsn = postgres_server.dsn(postgres_server.database())
    shared = {"storage": {
        "index": {"driver": "postgres", "dsn": dsn, "poolsize": 4},
        "redirect": {"disable": True},
        "maintenance": {"garbagecollect": {"enabled": True, "interval": "300ms",
                                           "graceperiod": GRACE},
                        # The purger runs too (moto dates every multipart upload 2010:
                        # uploads in flight are judged by their startedat and survive).
                        "uploadpurging": {"enabled": True, "age": "1h",
                                          "interval": "2s"}},
    }}
    servers = [s3_registry_factory(s3_bucket, overrides=shared) for _ in range(2)]
    outcome = push_while_collecting(servers, skopeo, tmp_path, pushes=8)  # moto is slow
    finish_and_check(servers, outcome)
