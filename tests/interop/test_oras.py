"""The ``oras`` Python package (oras-py): artifacts pushed and pulled, and referrers.

oras-py uploads blobs with a monolithic POST+PUT or, with ``do_chunked``, with PATCHes
whose ``Content-Range`` is ``start-end`` (no ``bytes=``), and PUTs manifests as OCI image
manifests. Referrers are read back over plain HTTP (the referrers API of OCI 1.1).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import oras.client
import oras.oci
import pytest
from tests.support.interop import (
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Skopeo,
    only_on_dockyard,
    random_repo,
    sha256_digest,
)

from .conftest import Images

pytestmark = pytest.mark.interop

ARTIFACT_CONFIG = "application/vnd.dockyard.test.config.v1+json"
TEXT_TYPE = "application/vnd.dockyard.test.text"
JSON_TYPE = "application/vnd.dockyard.test.data+json"
SBOM_TYPE = "application/vnd.dockyard.test.sbom.v1+json"
SIGNATURE_TYPE = "application/vnd.dockyard.test.signature.v1"


@pytest.fixture
def oras_client(registry) -> oras.client.OrasClient:  # type: ignore[no-untyped-def]
    return oras.client.OrasClient(hostname=f"127.0.0.1:{registry.port}", insecure=True)


def target_of(registry, repo: str, tag: str) -> str:  # type: ignore[no-untyped-def]
    return f"127.0.0.1:{registry.port}/{repo}:{tag}"


def get_manifest(client: httpx.Client, repo: str, ref: str) -> httpx.Response:
    response = client.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 200, response.text
    return response


def write_files(directory: Path) -> dict[str, bytes]:
    files = {
        "readme.txt": b"an artifact pushed by oras-py\n",
        "data.json": json.dumps({"numbers": list(range(100))}).encode(),
        "big.bin": os.urandom(300_000),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return files


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_artifact_push_and_pull(
    registry,
    client: httpx.Client,
    oras_client: oras.client.OrasClient,
    tmp_path: Path,
    chunked: bool,
) -> None:
    files = write_files(tmp_path / "in")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"tool": "dockyard-interop"}))
    repo = random_repo("oras")
    target = target_of(registry, repo, "v1")

    response = oras_client.push(
        target,
        files=[
            f"{tmp_path / 'in/readme.txt'}:{TEXT_TYPE}",
            f"{tmp_path / 'in/data.json'}:{JSON_TYPE}",
            f"{tmp_path / 'in/big.bin'}",
        ],
        manifest_config=f"{config}:{ARTIFACT_CONFIG}",
        manifest_annotations={"org.example.purpose": "interop", "org.example.n": "1"},
        disable_path_validation=True,
        do_chunked=chunked,
        chunk_size=64 * 1024,
        quiet=True,
    )
    assert response.status_code == 201

    served = get_manifest(client, repo, "v1")
    assert served.headers["Content-Type"] == OCI_MANIFEST
    assert served.headers["Docker-Content-Digest"] == sha256_digest(served.content)
    manifest = served.json()
    assert manifest["config"]["mediaType"] == ARTIFACT_CONFIG
    assert manifest["annotations"] == {"org.example.purpose": "interop", "org.example.n": "1"}
    titles = {
        layer["annotations"]["org.opencontainers.image.title"]: layer["mediaType"]
        for layer in manifest["layers"]
    }
    assert titles == {
        "readme.txt": TEXT_TYPE,
        "data.json": JSON_TYPE,
        "big.bin": "application/vnd.oci.image.layer.v1.tar",
    }

    out = tmp_path / "out"
    pulled = oras_client.pull(target, outdir=str(out))
    assert sorted(Path(p).name for p in pulled) == sorted(files)
    for name, content in files.items():
        assert (out / name).read_bytes() == content
    assert oras_client.get_tags(target) == ["v1"]


def test_directory_artifact_round_trip(
    registry, oras_client: oras.client.OrasClient, tmp_path: Path
) -> None:
    """A directory is pushed as a tar+gzip layer and extracted again on pull."""
    files = write_files(tmp_path / "tree" / "sub")
    repo = random_repo("oras")
    target = target_of(registry, repo, "dir")
    oras_client.push(
        target, files=[str(tmp_path / "tree")], disable_path_validation=True, quiet=True
    )
    out = tmp_path / "out"
    oras_client.pull(target, outdir=str(out))
    for name, content in files.items():
        assert (out / "tree" / "sub" / name).read_bytes() == content


def push_oci11_artifact(
    oras_client: oras.client.OrasClient,
    target: str,
    artifact_type: str,
    payload: Path,
    *,
    subject: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> tuple[dict[str, Any], Any]:
    """An OCI 1.1 artifact: ``artifactType`` set, the empty config, one layer."""
    container = oras_client.get_container(target)
    empty = payload.parent / "empty.json"
    empty.write_bytes(b"{}")
    config = {"mediaType": OCI_EMPTY, "digest": sha256_digest(b"{}"), "size": 2}
    layer = oras.oci.NewLayer(str(payload), media_type="application/octet-stream")
    layer["annotations"] = {"org.opencontainers.image.title": payload.name}
    for path, desc in ((empty, config), (payload, layer)):
        oras_client._check_200_response(oras_client.upload_blob(str(path), container, desc))
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config,
        "layers": [layer],
    }
    if subject is not None:
        manifest["subject"] = subject
    if annotations:
        manifest["annotations"] = annotations
    response = oras_client.upload_manifest(manifest, container)
    oras_client._check_200_response(response)
    return manifest, response


def test_oci11_artifact_with_artifact_type(
    registry, client: httpx.Client, oras_client: oras.client.OrasClient, tmp_path: Path
) -> None:
    payload = tmp_path / "sbom.json"
    payload.write_text(json.dumps({"packages": ["a", "b"]}))
    repo = random_repo("oras")
    target = target_of(registry, repo, "sbom")
    _, response = push_oci11_artifact(oras_client, target, SBOM_TYPE, payload)
    assert response.status_code == 201
    served = get_manifest(client, repo, "sbom").json()
    assert served["artifactType"] == SBOM_TYPE
    assert served["config"]["mediaType"] == OCI_EMPTY
    out = tmp_path / "out"
    oras_client.pull(target, outdir=str(out))
    assert (out / "sbom.json").read_bytes() == payload.read_bytes()


@only_on_dockyard("no referrers API (GET /v2/<name>/referrers/<digest> -> 404)")
def test_referrers_of_an_image(
    registry,
    client: httpx.Client,
    oras_client: oras.client.OrasClient,
    skopeo: Skopeo,
    images: Images,
    tmp_path: Path,
) -> None:
    """Artifacts whose ``subject`` is an image are listed by the referrers API."""
    image = images.single
    repo = random_repo("referrers")
    skopeo.copy(image.ref, f"docker://127.0.0.1:{registry.port}/{repo}:v1")
    subject_raw = get_manifest(client, repo, "v1").content
    subject = oras.oci.Subject(
        mediaType=OCI_MANIFEST, digest=sha256_digest(subject_raw), size=len(subject_raw)
    )
    assert subject.digest == image.manifest_digest

    empty_listing = client.get(f"/v2/{repo}/referrers/{subject.digest}")
    assert empty_listing.status_code == 200
    assert empty_listing.json()["manifests"] == []

    # 1. oras-py's own push with a subject: no artifactType, so the config's mediaType is
    #    the artifactType the referrers API reports.
    signature = tmp_path / "signature.sig"
    signature.write_bytes(os.urandom(64))
    sig_config = tmp_path / "sig-config.json"
    sig_config.write_text("{}")
    response = oras_client.push(
        target_of(registry, repo, "sig"),
        files=[f"{signature}:{SIGNATURE_TYPE}"],
        manifest_config=f"{sig_config}:{SIGNATURE_TYPE}",
        manifest_annotations={"org.example.signed-by": "interop"},
        subject=subject,
        disable_path_validation=True,
        quiet=True,
    )
    assert response.status_code == 201
    assert response.headers.get("OCI-Subject") == subject.digest
    sig_digest = response.headers["Docker-Content-Digest"]

    # 2. an OCI 1.1 artifact with artifactType and the empty config
    sbom = tmp_path / "sbom.json"
    sbom.write_text(json.dumps({"packages": ["x"]}))
    _, response = push_oci11_artifact(
        oras_client,
        target_of(registry, repo, "sbom"),
        SBOM_TYPE,
        sbom,
        subject={"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": subject.size},
        annotations={"org.example.kind": "sbom"},
    )
    assert response.headers.get("OCI-Subject") == subject.digest
    sbom_digest = response.headers["Docker-Content-Digest"]

    listing = client.get(f"/v2/{repo}/referrers/{subject.digest}")
    assert listing.status_code == 200
    # (the exact header is checked by test_referrers_content_type_is_exactly_the_index_type)
    assert listing.headers["Content-Type"].split(";")[0] == OCI_INDEX
    index = listing.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    found = {m["digest"]: m for m in index["manifests"]}
    assert set(found) == {sig_digest, sbom_digest}
    assert found[sig_digest]["artifactType"] == SIGNATURE_TYPE
    assert found[sig_digest]["annotations"] == {"org.example.signed-by": "interop"}
    assert found[sbom_digest]["artifactType"] == SBOM_TYPE
    assert found[sbom_digest]["annotations"] == {"org.example.kind": "sbom"}
    for digest, entry in found.items():
        raw = get_manifest(client, repo, digest).content
        assert entry["mediaType"] == OCI_MANIFEST
        assert entry["size"] == len(raw)
        assert sha256_digest(raw) == digest

    filtered = client.get(
        f"/v2/{repo}/referrers/{subject.digest}", params={"artifactType": SBOM_TYPE}
    )
    assert filtered.status_code == 200
    assert filtered.headers.get("OCI-Filters-Applied") == "artifactType"
    assert [m["digest"] for m in filtered.json()["manifests"]] == [sbom_digest]

    # the referrer is an ordinary manifest too: oras pulls it
    out = tmp_path / "out"
    oras_client.pull(target_of(registry, repo, "sig"), outdir=str(out))
    assert (out / "signature.sig").read_bytes() == signature.read_bytes()

    # deleting a referrer removes it from the list
    assert client.delete(f"/v2/{repo}/manifests/{sig_digest}").status_code == 202
    after = client.get(f"/v2/{repo}/referrers/{subject.digest}").json()
    assert [m["digest"] for m in after["manifests"]] == [sbom_digest]


@only_on_dockyard("no referrers API (GET /v2/<name>/referrers/<digest> -> 404)")
def test_referrers_content_type_is_exactly_the_index_type(
    registry, client: httpx.Client, oras_client: oras.client.OrasClient, tmp_path: Path
) -> None:
    repo = random_repo("referrers")
    base = tmp_path / "base.txt"
    base.write_text("base")
    oras_client.push(
        target_of(registry, repo, "base"),
        files=[str(base)],
        disable_path_validation=True,
        quiet=True,
    )
    raw = get_manifest(client, repo, "base").content
    subject = {"mediaType": OCI_MANIFEST, "digest": sha256_digest(raw), "size": len(raw)}
    note = tmp_path / "note.txt"
    note.write_text("note")
    push_oci11_artifact(
        oras_client, target_of(registry, repo, "note"), SBOM_TYPE, note, subject=subject
    )
    for digest in (subject["digest"], sha256_digest(b"no such manifest")):
        listing = client.get(f"/v2/{repo}/referrers/{digest}")
        assert listing.status_code == 200
        assert listing.headers["Content-Type"] == OCI_INDEX
