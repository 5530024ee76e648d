"""``dockyard index-referrers`` derives referrer links for manifests written without them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.support.api import TARGET, digest_of, push_blob, random_repo
from tests.support.servers import RegistryProcess

Factory = Callable[..., RegistryProcess]
ClientFactory = Callable[[RegistryProcess], httpx.Client]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

pytestmark = pytest.mark.skipif(TARGET == "distribution", reason="a dockyard command")

# Referrer links in the layout are what the storage walk lists (with the metadata
# index on, referrers come from the index, which the API kept up to date).
WALK = {"storage": {"index": {"driver": "none"}}}


def _put(client: httpx.Client, repo: str, ref: str, body: dict[str, object]) -> str:
    raw = json.dumps(body).encode()
    response = client.put(f"/v2/{repo}/manifests/{ref}", content=raw,
                          headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 201, response.text
    return digest_of(raw)


def test_index_referrers_relinks_what_another_registry_left_unlinked(
    registry_factory: Factory, client_factory: ClientFactory
) -> None:
    server = registry_factory(WALK)
    repo = random_repo()
    with client_factory(server) as client:
        config = push_blob(client, repo, b"{}")
        image = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                 "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                            "digest": config, "size": 2}, "layers": []}
        subject = _put(client, repo, "v1", image)
        note = {**image, "artifactType": "application/vnd.example.note",
                "subject": {"mediaType": OCI_MANIFEST, "digest": subject,
                            "size": len(json.dumps(image))}}
        referrer = _put(client, repo, "note", note)
    server.stop()
    # What a registry without referrer links (distribution 2.x) leaves behind.
    manifests = Path(server.root) / "docker/registry/v2/repositories" / repo / "_manifests"
    shutil.rmtree(manifests / "revisions/sha256" / subject.split(":")[1] / "referrers")
    (manifests / "referrers-indexed").unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "index-referrers", str(server.config_path)],
        capture_output=True, text=True, timeout=60, check=True,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "PATH": "/usr/bin"},
    )
    assert f"{repo}: 1 referrer(s) linked" in done.stderr
    assert "referrer links" in done.stdout
    assert (manifests / "referrers-indexed").is_file()
    link = manifests / "revisions/sha256" / subject.split(":")[1] / "referrers/sha256"
    assert (link / referrer.split(":")[1] / "link").read_text() == referrer
    server.start()
    with client_factory(server) as client:
        listed = client.get(f"/v2/{repo}/referrers/{subject}").json()["manifests"]
    assert [d["digest"] for d in listed] == [referrer]
    assert listed[0]["artifactType"] == "application/vnd.example.note"


def test_read_only_lists_unindexed_referrers_without_writing(
    registry_factory: Factory, client_factory: ClientFactory
) -> None:
    """Listing referrers would index the repository (a write): not in read-only mode."""
    server = registry_factory(WALK)
    repo = random_repo()
    with client_factory(server) as client:
        config = push_blob(client, repo, b"{}")
        image = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                 "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                            "digest": config, "size": 2}, "layers": []}
        subject = _put(client, repo, "v1", image)
        note = {**image, "artifactType": "application/vnd.example.note",
                "subject": {"mediaType": OCI_MANIFEST, "digest": subject,
                            "size": len(json.dumps(image))}}
        referrer = _put(client, repo, "note", note)
    server.stop()
    manifests = Path(server.root) / "docker/registry/v2/repositories" / repo / "_manifests"
    shutil.rmtree(manifests / "revisions/sha256" / subject.split(":")[1] / "referrers")
    (manifests / "referrers-indexed").unlink(missing_ok=True)
    before = sorted(p for p in Path(server.root).rglob("*") if p.is_file())
    server.reconfigure({"storage": {"maintenance": {"readonly": {"enabled": True}}}})
    server.start()
    with client_factory(server) as client:
        response = client.get(f"/v2/{repo}/referrers/{subject}")
    assert response.status_code == 200, response.text
    assert [d["digest"] for d in response.json()["manifests"]] == [referrer]
    assert sorted(p for p in Path(server.root).rglob("*") if p.is_file()) == before
