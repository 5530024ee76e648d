"""The OCI 1.1 referrers API and ``OCI-Subject``.

docker-registry 2.8 predates OCI 1.1: it has no referrers route (404) and sends no
``OCI-Subject``, so every test here is skipped against it except the first, which only
checks that a manifest with a ``subject`` is accepted and served as pushed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from tests.support.api import (
    assert_error,
    deviates_on_distribution,
    digest_of,
    push_blob,
    random_repo,
)
from tests.support.manifests import (
    OCI_EMPTY,
    OCI_EMPTY_JSON,
    OCI_INDEX,
    OCI_MANIFEST,
    Built,
    get_manifest,
    image,
    index,
    manifest_path,
    put_manifest,
    repo_dir,
)

if TYPE_CHECKING:
    from servers import RegistryProcess

NO_REFERRERS_API = deviates_on_distribution(
    "no referrers API (GET /v2/<name>/referrers/<digest> is 404) and no OCI-Subject header"
)
SBOM = "application/vnd.example.sbom.v1+json"
SIGNATURE = "application/vnd.example.signature.v1+json"


def referrers_path(repo: str, digest: str) -> str:
    return f"/v2/{repo}/referrers/{digest}"


def artifact(
    client: httpx.Client,
    repo: str,
    subject: Built | dict[str, Any],
    *,
    artifact_type: str | None = SBOM,
    annotations: dict[str, str] | None = None,
    config_media_type: str = OCI_EMPTY,
) -> Built:
    """An OCI artifact manifest (empty config, one layer) naming ``subject``."""
    push_blob(client, repo, OCI_EMPTY_JSON)
    config = OCI_EMPTY_JSON if config_media_type == OCI_EMPTY else b'{"kind": "config"}'
    return image(
        client,
        repo,
        media_type=OCI_MANIFEST,
        config=config,
        config_media_type=config_media_type,
        artifact_type=artifact_type,
        subject=subject,
        annotations=annotations,
    )


def expected_descriptor(manifest: Built, artifact_type: str | None) -> dict[str, Any]:
    document = json.loads(manifest.body)
    desc: dict[str, Any] = {
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": manifest.size,
    }
    if artifact_type is not None:
        desc["artifactType"] = artifact_type
    if document.get("annotations"):
        desc["annotations"] = document["annotations"]
    return desc


def get_referrers(
    client: httpx.Client, repo: str, digest: str, **params: str
) -> tuple[httpx.Response, list[dict[str, Any]]]:
    response = client.get(referrers_path(repo, digest), params=params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == OCI_INDEX
    body = response.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    return response, sorted(body["manifests"], key=lambda d: d["digest"])


def by_digest(*descs: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(descs, key=lambda d: d["digest"])


def test_manifest_with_a_subject_is_stored_as_pushed(client: httpx.Client) -> None:
    repo = random_repo()
    subject = image(client, repo, media_type=OCI_MANIFEST)
    put_manifest(client, repo, "v1", subject)
    sbom = artifact(client, repo, subject)
    response = put_manifest(client, repo, sbom.digest, sbom)
    assert response.headers["Docker-Content-Digest"] == sbom.digest
    assert get_manifest(client, repo, sbom.digest, OCI_MANIFEST).content == sbom.body


@NO_REFERRERS_API
def test_put_with_a_subject_answers_oci_subject(client: httpx.Client) -> None:
    repo = random_repo()
    subject = image(client, repo, media_type=OCI_MANIFEST)
    plain = put_manifest(client, repo, "v1", subject)
    assert "OCI-Subject" not in plain.headers
    sbom = artifact(client, repo, subject)
    response = put_manifest(client, repo, sbom.digest, sbom)
    assert response.headers["OCI-Subject"] == subject.digest
    listing = index([sbom], subject=subject, artifact_type="application/vnd.example.bundle")
    response = put_manifest(client, repo, "bundle", listing)
    assert response.headers["OCI-Subject"] == subject.digest


@NO_REFERRERS_API
def test_referrers_lists_the_manifests_naming_the_subject(client: httpx.Client) -> None:
    repo = random_repo()
    subject = image(client, repo, media_type=OCI_MANIFEST)
    put_manifest(client, repo, "v1", subject)
    other_subject = image(client, repo, media_type=OCI_MANIFEST)
    put_manifest(client, repo, "v2", other_subject)

    sbom = artifact(
        client, repo, subject, annotations={"org.opencontainers.image.created": "2024-05-01"}
    )
    # No artifactType: the config's media type stands in for it.
    signature = artifact(client, repo, subject, artifact_type=None, config_media_type=SIGNATURE)
    bundle = index(
        [sbom],
        subject=subject,
        artifact_type="application/vnd.example.bundle",
        annotations={"purpose": "bundle"},
    )
    unrelated = artifact(client, repo, other_subject)
    for manifest in (sbom, signature, bundle, unrelated):
        put_manifest(client, repo, manifest.digest, manifest)

    _, found = get_referrers(client, repo, subject.digest)
    assert found == by_digest(
        expected_descriptor(sbom, SBOM),
        expected_descriptor(signature, SIGNATURE),
        expected_descriptor(bundle, "application/vnd.example.bundle"),
    )
    assert found[[d["digest"] for d in found].index(sbom.digest)]["annotations"] == {
        "org.opencontainers.image.created": "2024-05-01"
    }
    _, others = get_referrers(client, repo, other_subject.digest)
    assert others == [expected_descriptor(unrelated, SBOM)]


@NO_REFERRERS_API
def test_referrers_of_an_index_subject(client: httpx.Client) -> None:
    repo = random_repo()
    child = image(client, repo, media_type=OCI_MANIFEST)
    put_manifest(client, repo, child.digest, child)
    subject = index([child])
    put_manifest(client, repo, "multi", subject)
    sbom = artifact(client, repo, subject)
    put_manifest(client, repo, sbom.digest, sbom)
    _, found = get_referrers(client, repo, subject.digest)
    assert found == [expected_descriptor(sbom, SBOM)]


@NO_REFERRERS_API
def test_no_referrers_is_an_empty_index(client: httpx.Client) -> None:
    repo = random_repo()
    subject = image(client, repo, media_type=OCI_MANIFEST)
    put_manifest(client, repo, "v1", subject)
    response, found = get_referrers(client, repo, subject.digest)
    assert found == []
    assert "OCI-Filters-Applied" not in response.headers
    # A subject that does not exist has no referrers either.
    _, found = get_referrers(client, repo, digest_of(b"no such manifest"))
    assert found == []


@NO_REFERRERS_API
def test_referrer_pushed_before_its_subject(client: httpx.Client) -> None:
    repo = random_repo()
    subject = image(client, repo, media_type=OCI_MANIFEST)  # blobs only, for now
    sbom = artifact(client, repo, subject)
    response = put_manifest(client, repo, sbom.digest, sbom)
    assert response.headers["OCI-Subject"] == subject.digest
    _, found = get_referrers(client, repo, subject.digest)
    assert found == [expected_descriptor(sbom, SBOM)]
    put_manifest(client, repo, "v1", subject)
    _, found = get_referrers(client, repo, subject.digest)
    assert found == [expected_descriptor(sbom, SBOM)]


@NO_REFERRERS_API
def test_referrers_filtered_by_artifact_type(client: httpx.Client) -> None:
    repo = random_repo()
    subject = image(client, repo, media_type=OCI_MANIFEST)
    put_manifest(client, repo, "v1", subject)
    sbom = artifact(client, repo, subject)
    signature = artifact(client, repo, subject, artifact_type=SIGNATURE)
    implicit = artifact(client, repo, subject, artifact_type=None, config_media_type=SIGNATURE)
    for manifest in (sbom, signature, implicit):
        put_manifest(client, repo, manifest.digest, manifest)

    response, found = get_referrers(client, repo, subject.digest, artifactType=SIGNATURE)
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert found == by_digest(
        expected_descriptor(signature, SIGNATURE), expected_descriptor(implicit, SIGNATURE)
    )
    response, found = get_referrers(client, repo, subject.digest, artifactType=SBOM)
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert found == [expected_descriptor(sbom, SBOM)]
    response, found = get_referrers(client, repo, subject.digest, artifactType="x/none")
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert found == []
    response, found = get_referrers(client, repo, subject.digest)
    assert "OCI-Filters-Applied" not in response.headers
    assert len(found) == 3


@NO_REFERRERS_API
def test_referrers_are_links_below_the_subject(
    client: httpx.Client, registry: RegistryProcess
) -> None:
    """Kept next to the subject's revision, like a tag index: no scan of every manifest."""
    repo = random_repo()
    subject = image(client, repo, media_type=OCI_MANIFEST)
    put_manifest(client, repo, "v1", subject)
    sbom = artifact(client, repo, subject)
    put_manifest(client, repo, sbom.digest, sbom)
    referrers_dir = (
        repo_dir(registry.root, repo)
        / "_manifests/revisions/sha256"
        / subject.digest.split(":")[1]
        / "referrers"
    )
    links = {
        p.relative_to(referrers_dir).as_posix(): p.read_bytes()
        for p in referrers_dir.rglob("*")
        if p.is_file()
    }
    assert links == {f"sha256/{sbom.digest.split(':')[1]}/link": sbom.digest.encode()}


@NO_REFERRERS_API
def test_deleting_a_referrer_removes_it(client: httpx.Client, registry: RegistryProcess) -> None:
    repo = random_repo()
    subject = image(client, repo, media_type=OCI_MANIFEST)
    put_manifest(client, repo, "v1", subject)
    sbom = artifact(client, repo, subject)
    signature = artifact(client, repo, subject, artifact_type=SIGNATURE)
    put_manifest(client, repo, "sbom", sbom)
    put_manifest(client, repo, signature.digest, signature)
    assert client.delete(manifest_path(repo, sbom.digest)).status_code == 202
    _, found = get_referrers(client, repo, subject.digest)
    assert found == [expected_descriptor(signature, SIGNATURE)]
    link = (
        Path(repo_dir(registry.root, repo))
        / "_manifests/revisions/sha256"
        / subject.digest.split(":")[1]
        / "referrers/sha256"
        / sbom.digest.split(":")[1]
    )
    assert not link.exists()
    # Pushed again, it is listed again.
    put_manifest(client, repo, sbom.digest, sbom)
    _, found = get_referrers(client, repo, subject.digest)
    assert len(found) == 2


@NO_REFERRERS_API
def test_referrers_are_per_repository(client: httpx.Client) -> None:
    repo, other = random_repo(), random_repo()
    subject = image(client, repo, media_type=OCI_MANIFEST)
    put_manifest(client, repo, "v1", subject)
    sbom = artifact(client, repo, subject)
    put_manifest(client, repo, sbom.digest, sbom)
    foreign = artifact(client, other, subject)
    put_manifest(client, other, foreign.digest, foreign)
    _, found = get_referrers(client, repo, subject.digest)
    assert found == [expected_descriptor(sbom, SBOM)]
    _, found = get_referrers(client, other, subject.digest)
    assert found == [expected_descriptor(foreign, SBOM)]


@NO_REFERRERS_API
def test_referrers_with_an_invalid_digest(client: httpx.Client) -> None:
    repo = random_repo()
    put_manifest(client, repo, "v1", image(client, repo, media_type=OCI_MANIFEST))
    for bad in ("sha256:abc", "latest", "sha256:" + "Z" * 64):
        assert_error(client.get(referrers_path(repo, bad)), 400, "DIGEST_INVALID")
