"""Legacy Docker image manifest v2, schema 1: signed (libtrust pretty JWS) and unsigned.

The tests sign manifests themselves (EC P-256, ES256, as ``docker push`` did) and check
the served JWS with an independent verifier and with dockyard's own parser.

docker-registry 2.8 accepts schema1 only with ``compatibility.schema1.enabled: true``;
the registry of this module sets it (dockyard accepts schema1 either way).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.api import (
    assert_error,
    deviates_on_distribution,
    digest_of,
    follow,
    push_blob,
    random_repo,
)
from tests.support.manifests import (
    ALL_MANIFEST_TYPES,
    SCHEMA1_SIGNED,
    SCHEMA1_UNSIGNED,
    SigningKey,
    get_manifest,
    link_text,
    manifest_path,
    put_manifest,
    repo_dir,
    schema1_payload,
    sign_schema1,
    signed_schema1,
    verify_jws,
)
from tests.support.servers import Kind, RegistryProcess

from dockyard.manifest import SCHEMA1_SIGNED as PARSER_SIGNED
from dockyard.manifest import parse_manifest

SCHEMA1_ACCEPT = [SCHEMA1_SIGNED, SCHEMA1_UNSIGNED, *ALL_MANIFEST_TYPES]


@pytest.fixture(scope="module")
def schema1_registry(
    tmp_path_factory: pytest.TempPathFactory, target: Kind, registry_secret: str
) -> Iterator[RegistryProcess]:
    with RegistryProcess(
        tmp_path_factory.mktemp("schema1"),
        kind=target,
        secret=registry_secret,
        overrides={"compatibility": {"schema1": {"enabled": True}}},
    ) as server:
        yield server


@pytest.fixture
def http(schema1_registry: RegistryProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=schema1_registry.url, timeout=60) as client:
        yield client


def revision_dir(root: Path, repo: str, digest: str) -> Path:
    algorithm, hex_digest = digest.split(":")
    return repo_dir(root, repo) / "_manifests" / "revisions" / algorithm / hex_digest


# -- signed ------------------------------------------------------------------------------


def test_signed_schema1_round_trip(http: httpx.Client) -> None:
    """The digest is that of the signed payload; GET serves a verifying JWS of it."""
    repo = random_repo()
    payload, signed, _keys = signed_schema1(http, repo, "v1")
    assert signed != payload
    response = put_manifest(http, repo, "v1", signed, SCHEMA1_SIGNED)
    digest = digest_of(payload)
    assert response.headers["Docker-Content-Digest"] == digest
    assert follow(http, response.headers["Location"]).endswith(manifest_path(repo, digest))

    for reference in ("v1", digest):
        got = get_manifest(http, repo, reference, SCHEMA1_ACCEPT)
        assert got.status_code == 200, got.text
        assert got.headers["Content-Type"] == SCHEMA1_SIGNED
        assert got.headers["Docker-Content-Digest"] == digest
        assert got.headers["ETag"] == f'"{digest}"'
        assert got.headers["Content-Length"] == str(len(got.content))
        served_payload, _kids = verify_jws(got.content)
        assert served_payload == payload
        parsed = parse_manifest(got.content, got.headers["Content-Type"])
        assert parsed.media_type == PARSER_SIGNED
        assert str(parsed.digest) == digest

        head = get_manifest(http, repo, reference, SCHEMA1_ACCEPT, method="HEAD")
        assert head.status_code == 200
        assert head.headers["Docker-Content-Digest"] == digest
        assert head.headers["Content-Length"] == str(len(got.content))
        assert head.content == b""


def test_signed_schema1_is_served_whatever_the_accept(http: httpx.Client) -> None:
    repo = random_repo()
    payload, signed, _keys = signed_schema1(http, repo, "v1")
    put_manifest(http, repo, "v1", signed, SCHEMA1_SIGNED)
    for accept in ("application/vnd.docker.distribution.manifest.v2+json", SCHEMA1_SIGNED):
        got = get_manifest(http, repo, "v1", accept)
        assert got.status_code == 200
        assert got.headers["Content-Type"] == SCHEMA1_SIGNED
        assert verify_jws(got.content)[0] == payload


@deviates_on_distribution(
    "2.8 stores no signatures: it keeps the payload only and serves it signed with the "
    "registry's own key, so neither the client's signature nor a signatures/ link exists"
)
def test_signatures_are_stored_apart_and_merged_back(
    http: httpx.Client, schema1_registry: RegistryProcess
) -> None:
    repo = random_repo()
    payload, signed, keys = signed_schema1(http, repo, "v1")
    put_manifest(http, repo, "v1", signed, SCHEMA1_SIGNED)
    digest = digest_of(payload)

    # The revision blob is the payload; the signature is a blob linked below it.
    revision = revision_dir(schema1_registry.root, repo, digest)
    assert link_text(revision / "link") == digest
    links = sorted((revision / "signatures").glob("sha256/*/link"))
    assert len(links) == 1
    signature_digest = link_text(links[0])
    assert signature_digest == f"sha256:{links[0].parent.name}"
    blobs = schema1_registry.root / "docker" / "registry" / "v2" / "blobs" / "sha256"
    hex_digest = digest.split(":")[1]
    assert (blobs / hex_digest[:2] / hex_digest / "data").read_bytes() == payload
    sig_hex = signature_digest.split(":")[1]
    stored_signature = json.loads((blobs / sig_hex[:2] / sig_hex / "data").read_bytes())
    assert stored_signature == json.loads(signed)["signatures"][0]

    # Served as received: libtrust's pretty serialization of the payload and signature.
    got = get_manifest(http, repo, "v1", SCHEMA1_ACCEPT)
    assert got.content == signed
    assert verify_jws(got.content) == (payload, [keys[0].kid])


@deviates_on_distribution(
    "2.8 drops pushed signatures and serves one signature by the registry's own key"
)
def test_second_signature_set_adds_to_the_first(http: httpx.Client) -> None:
    repo = random_repo()
    payload, first, keys = signed_schema1(http, repo, "v1")
    put_manifest(http, repo, "v1", first, SCHEMA1_SIGNED)
    second_key = SigningKey()
    second = sign_schema1(payload, [second_key])
    response = put_manifest(http, repo, "v1", second, SCHEMA1_SIGNED)
    assert response.headers["Docker-Content-Digest"] == digest_of(payload)

    got = get_manifest(http, repo, "v1", SCHEMA1_ACCEPT)
    served_payload, kids = verify_jws(got.content)
    assert served_payload == payload
    assert sorted(kids) == sorted([keys[0].kid, second_key.kid])
    # libtrust orders signatures by key ID.
    assert kids == sorted(kids)
    parsed = parse_manifest(got.content, SCHEMA1_SIGNED)
    assert str(parsed.digest) == digest_of(payload)
    assert len(parsed.signatures) == 2

    # Pushing the first set again adds nothing.
    put_manifest(http, repo, "v1", first, SCHEMA1_SIGNED)
    again = get_manifest(http, repo, "v1", SCHEMA1_ACCEPT)
    assert again.content == got.content


@deviates_on_distribution("2.8 serves one signature by the registry's own key")
def test_manifest_signed_by_two_keys_at_once(http: httpx.Client) -> None:
    repo = random_repo()
    payload, signed, keys = signed_schema1(http, repo, "v1", keys=2)
    put_manifest(http, repo, "v1", signed, SCHEMA1_SIGNED)
    got = get_manifest(http, repo, "v1", SCHEMA1_ACCEPT)
    served_payload, kids = verify_jws(got.content)
    assert served_payload == payload
    assert sorted(kids) == sorted(key.kid for key in keys)


def test_tampered_payload_is_unverified(http: httpx.Client) -> None:
    repo = random_repo()
    _payload, signed, _keys = signed_schema1(http, repo, "v1")
    tampered = signed.replace(b'"architecture": "amd64"', b'"architecture": "arm64"')
    assert tampered != signed
    response = put_manifest(http, repo, "v1", tampered, SCHEMA1_SIGNED, expect=None)
    assert_error(response, 400, "MANIFEST_UNVERIFIED")
    assert_error(get_manifest(http, repo, "v1", SCHEMA1_ACCEPT), 404, "MANIFEST_UNKNOWN")


def test_forged_signature_is_unverified(http: httpx.Client) -> None:
    repo = random_repo()
    _payload, signed, _keys = signed_schema1(http, repo, "v1")
    document = json.loads(signed)
    signature = document["signatures"][0]["signature"]
    forged_signature = ("A" if signature[0] != "A" else "B") + signature[1:]
    forged = signed.replace(signature.encode(), forged_signature.encode())
    response = put_manifest(http, repo, "v1", forged, SCHEMA1_SIGNED, expect=None)
    assert_error(response, 400, "MANIFEST_UNVERIFIED")


def test_signed_schema1_with_missing_layer(http: httpx.Client) -> None:
    repo = random_repo()
    present = push_blob(http, repo, b"present layer")
    absent = digest_of(b"absent layer")
    payload = schema1_payload(repo, "v1", [present, absent])
    signed = sign_schema1(payload, [SigningKey()])
    response = put_manifest(http, repo, "v1", signed, SCHEMA1_SIGNED, expect=None)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert response.json()["errors"][0]["detail"] == absent


def test_signed_schema1_digest_reference(http: httpx.Client) -> None:
    """PUT by digest names the payload's digest, not that of the signed body."""
    repo = random_repo()
    payload, signed, _keys = signed_schema1(http, repo, "v1")
    response = put_manifest(http, repo, digest_of(signed), signed, SCHEMA1_SIGNED, expect=None)
    assert_error(response, 400, "DIGEST_INVALID")
    put_manifest(http, repo, digest_of(payload), signed, SCHEMA1_SIGNED)
    got = get_manifest(http, repo, digest_of(payload), SCHEMA1_ACCEPT)
    assert verify_jws(got.content)[0] == payload


def test_delete_signed_schema1(http: httpx.Client) -> None:
    repo = random_repo()
    payload, signed, _keys = signed_schema1(http, repo, "v1")
    put_manifest(http, repo, "v1", signed, SCHEMA1_SIGNED)
    response = http.delete(manifest_path(repo, digest_of(payload)))
    assert response.status_code == 202
    for reference in ("v1", digest_of(payload)):
        assert_error(get_manifest(http, repo, reference, SCHEMA1_ACCEPT), 404, "MANIFEST_UNKNOWN")


# -- unsigned ----------------------------------------------------------------------------


@deviates_on_distribution(
    "2.8 reads every schema1 body as signed and refuses one without signatures "
    "with 400 MANIFEST_INVALID"
)
def test_unsigned_schema1_round_trip(http: httpx.Client) -> None:
    repo = random_repo()
    layer = push_blob(http, repo, b"unsigned schema1 layer")
    payload = schema1_payload(repo, "v1", [layer])
    response = put_manifest(http, repo, "v1", payload, SCHEMA1_UNSIGNED)
    digest = digest_of(payload)
    assert response.headers["Docker-Content-Digest"] == digest
    for reference in ("v1", digest):
        got = get_manifest(http, repo, reference, SCHEMA1_ACCEPT)
        assert got.status_code == 200
        assert got.headers["Content-Type"] == SCHEMA1_UNSIGNED
        assert got.headers["Docker-Content-Digest"] == digest
        assert got.content == payload

    dangling = schema1_payload(repo, "v2", [digest_of(b"never pushed")])
    response = put_manifest(http, repo, "v2", dangling, SCHEMA1_UNSIGNED, expect=None)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert response.json()["errors"][0]["detail"] == digest_of(b"never pushed")
