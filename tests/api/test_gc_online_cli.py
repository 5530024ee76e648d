"""``dockyard garbage-collect --online`` beside a serving registry, with controlled ages:
untagged manifests and unreferenced blobs older than the grace go, younger ones and
everything a tag reaches stay; a dry run deletes nothing; the index stays true to
storage. And the configuration it needs."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import yaml
from tests.support.api import deviates_on_distribution, push_blob, random_repo
from tests.support.manifests import OCI_MANIFEST, Built, image, put_manifest

if TYPE_CHECKING:
    from servers import RegistryProcess

RegistryFactory = Callable[..., "RegistryProcess"]
ClientFactory = Callable[["RegistryProcess"], httpx.Client]

pytestmark = deviates_on_distribution("no online garbage collection (dockyard's)")

SRC = Path(__file__).resolve().parents[2] / "src"
HOUR = 3600.0


def dockyard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", *args], capture_output=True,
                          text=True, timeout=300, check=False,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})


def age(server: RegistryProcess, manifest: Built | None, blobs: list[str], hours: float) -> None:
    """Make ``manifest`` (in the index) and ``blobs`` (their data files) ``hours`` old."""
    when = time.time() - hours * HOUR
    root = server.root / "docker" / "registry" / "v2" / "blobs" / "sha256"
    for digest in blobs:
        os.utime(root / digest[7:9] / digest[7:] / "data", (when, when))
    if manifest is not None:
        with contextlib.closing(sqlite3.connect(server.root / "dockyard-index.db",
                                                timeout=30)) as db, db:
            db.execute("UPDATE manifests SET pushed_at = ? WHERE digest = ?",
                       (when, manifest.digest))


def test_online_collection_with_delete_untagged(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    server = registry_factory(overrides={"storage": {"maintenance": {"garbagecollect": {
        "enabled": True, "interval": 0, "graceperiod": "1h"}}}})
    client = client_factory(server)
    repo = random_repo("gc-online")
    tagged = image(client, repo, media_type=OCI_MANIFEST)
    put_manifest(client, repo, "v1", tagged)
    signature = image(client, repo, media_type=OCI_MANIFEST, subject=tagged,
                      artifact_type="application/vnd.example.sig")
    put_manifest(client, repo, signature.digest, signature)
    old = image(client, repo)
    put_manifest(client, repo, old.digest, old)
    young = image(client, repo)
    put_manifest(client, repo, young.digest, young)
    orphan = push_blob(client, repo, b"never referenced " * 10)
    fresh_orphan = push_blob(client, repo, b"just uploaded " * 10)
    everything = [*tagged.blobs, tagged.digest, *signature.blobs, signature.digest,
                  *old.blobs, old.digest, *young.blobs, young.digest, orphan]
    age(server, None, everything, 5)
    for m in (tagged, signature, old):
        age(server, m, [], 5)
    age(server, young, [], 0.1)  # its blobs are old, it is not: it keeps them

    dry = dockyard("garbage-collect", "--online", "-m", "--dry-run", str(server.config_path))
    assert dry.returncode == 0, dry.stderr
    assert f"would delete manifest {old.digest}" in dry.stderr
    assert f"would delete blob {orphan}" in dry.stderr
    assert client.get(f"/v2/{repo}/manifests/{old.digest}").status_code == 200
    assert client.head(f"/v2/{repo}/blobs/{orphan}").status_code == 200

    done = dockyard("garbage-collect", "--online", "-m", str(server.config_path))
    assert done.returncode == 0, done.stderr
    assert "online garbage collection: 1 repository" in done.stdout
    assert "deleted 1 untagged manifest" in done.stdout
    for kept in (tagged, signature, young):
        assert client.get(f"/v2/{repo}/manifests/{kept.digest}").status_code == 200
        for blob in kept.blobs:
            assert client.get(f"/v2/{repo}/blobs/{blob}").status_code == 200
    assert client.get(f"/v2/{repo}/manifests/{old.digest}").status_code == 404
    for gone in (*old.blobs, old.digest, orphan):
        assert client.head(f"/v2/{repo}/blobs/{gone}").status_code == 404
    assert client.head(f"/v2/{repo}/blobs/{fresh_orphan}").status_code == 200  # in grace
    verify = dockyard("index", "verify", str(server.config_path))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_online_needs_the_index_and_the_fence(tmp_path: Path) -> None:
    base = {"version": "0.1", "http": {"secret": "s"},
            "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}}}
    off = tmp_path / "off.yml"
    off.write_text(yaml.safe_dump(base))
    done = dockyard("garbage-collect", "--online", str(off))
    assert done.returncode == 2 and "storage.maintenance.garbagecollect.enabled" in done.stderr
    no_index = tmp_path / "no-index.yml"
    no_index.write_text(yaml.safe_dump({**base, "storage": {
        **base["storage"], "index": {"driver": "none"},
        "maintenance": {"garbagecollect": {"enabled": True}}}}))
    for command in (("check-config",), ("garbage-collect", "--online")):
        done = dockyard(*command, str(no_index))
        assert done.returncode == 2, done.stdout + done.stderr
        assert ("storage.maintenance.garbagecollect.enabled: online garbage collection "
                "needs the metadata index") in done.stderr
