"""Manifests: PUT/GET/HEAD/DELETE by tag and digest for every media type; headers,
content negotiation, validation of references, sizes and bodies.

Every expectation that holds for both servers was checked against docker-registry
2.8.2; where distribution 2.8 behaves otherwise, the test says so and is skipped there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from tests.support.api import (
    TARGET,
    assert_error,
    deviates_on_distribution,
    digest_of,
    error_codes,
    follow,
    push_blob,
    random_repo,
    raw_request,
)
from tests.support.manifests import (
    DOCKER_CONFIG,
    DOCKER_FOREIGN_LAYER,
    DOCKER_LIST,
    DOCKER_SCHEMA2,
    OCI_EMPTY,
    OCI_EMPTY_JSON,
    OCI_INDEX,
    OCI_MANIFEST,
    Built,
    descriptor,
    get_manifest,
    image,
    index,
    manifest_path,
    put_manifest,
    send_partial,
)

if TYPE_CHECKING:
    from servers import RegistryProcess

RegistryFactory = Callable[..., "RegistryProcess"]
MiB = 1024 * 1024
UNKNOWN_DIGEST = "sha256:" + "1" * 64

KINDS = ("docker-schema2", "docker-list", "oci-manifest", "oci-index")
KIND_TYPE = {
    "docker-schema2": DOCKER_SCHEMA2,
    "docker-list": DOCKER_LIST,
    "oci-manifest": OCI_MANIFEST,
    "oci-index": OCI_INDEX,
}


def build(client: httpx.Client, repo: str, kind: str) -> Built:
    """A manifest of ``kind`` whose blobs (and, for lists/indexes, children) exist."""
    if kind in ("docker-schema2", "oci-manifest"):
        return image(client, repo, media_type=KIND_TYPE[kind], layers=2)
    child_type = DOCKER_SCHEMA2 if kind == "docker-list" else OCI_MANIFEST
    children = [image(client, repo, media_type=child_type) for _ in range(2)]
    for child in children:
        put_manifest(client, repo, child.digest, child)
    return index(children, media_type=KIND_TYPE[kind])


def assert_manifest_headers(response: httpx.Response, manifest: Built) -> None:
    assert response.headers["Content-Type"] == manifest.media_type
    assert response.headers["Docker-Content-Digest"] == manifest.digest
    assert response.headers["ETag"] == f'"{manifest.digest}"'
    assert response.headers["Content-Length"] == str(manifest.size)


def assert_not_stored(client: httpx.Client, repo: str, digest: str) -> None:
    assert_error(get_manifest(client, repo, digest), 404, "MANIFEST_UNKNOWN")


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_put_by_tag_then_get_and_head_by_tag_and_digest(client: httpx.Client, kind: str) -> None:
    repo = random_repo()
    manifest = build(client, repo, kind)
    response = put_manifest(client, repo, "latest", manifest)
    assert response.headers["Docker-Content-Digest"] == manifest.digest
    assert response.headers["Content-Length"] == "0"
    location = follow(client, response.headers["Location"])
    assert location.endswith(manifest_path(repo, manifest.digest))

    for reference in ("latest", manifest.digest):
        got = get_manifest(client, repo, reference, manifest.media_type)
        assert got.status_code == 200, got.text
        assert got.content == manifest.body
        assert_manifest_headers(got, manifest)

        head = get_manifest(client, repo, reference, manifest.media_type, method="HEAD")
        assert head.status_code == 200
        assert head.content == b""
        assert_manifest_headers(head, manifest)

    via_location = client.get(location, headers={"Accept": manifest.media_type})
    assert via_location.status_code == 200
    assert via_location.content == manifest.body


def test_head_sends_headers_only(client: httpx.Client, registry: RegistryProcess) -> None:
    """On the wire: Content-Length of the manifest, and not one byte of body."""
    repo = random_repo()
    manifest = image(client, repo)
    put_manifest(client, repo, "latest", manifest)
    for reference in ("latest", manifest.digest):
        response = raw_request(
            registry.url,
            "HEAD",
            manifest_path(repo, reference),
            headers={"Accept": DOCKER_SCHEMA2},
        )
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(manifest.size)
        assert response.headers["Docker-Content-Digest"] == manifest.digest
        assert response.headers["Content-Type"] == DOCKER_SCHEMA2
        assert response.content == b""


@pytest.mark.parametrize("kind", KINDS)
def test_put_by_digest_creates_no_tag(client: httpx.Client, kind: str) -> None:
    repo = random_repo()
    manifest = build(client, repo, kind)
    response = put_manifest(client, repo, manifest.digest, manifest)
    assert response.headers["Docker-Content-Digest"] == manifest.digest
    assert follow(client, response.headers["Location"]).endswith(
        manifest_path(repo, manifest.digest)
    )
    got = get_manifest(client, repo, manifest.digest, manifest.media_type)
    assert got.status_code == 200
    assert got.content == manifest.body
    assert_manifest_headers(got, manifest)
    # No tag was created: the repository has no tags directory at all.
    assert_error(client.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN")


def test_put_same_manifest_twice_is_idempotent(client: httpx.Client) -> None:
    repo = random_repo()
    manifest = image(client, repo)
    first = put_manifest(client, repo, "v1", manifest)
    second = put_manifest(client, repo, "v1", manifest)
    assert first.headers["Docker-Content-Digest"] == second.headers["Docker-Content-Digest"]
    assert get_manifest(client, repo, "v1").content == manifest.body


def test_oci_manifest_with_artifact_type_subject_and_annotations(client: httpx.Client) -> None:
    repo = random_repo()
    subject = image(client, repo, media_type=OCI_MANIFEST)
    put_manifest(client, repo, "subject", subject)
    push_blob(client, repo, OCI_EMPTY_JSON)
    artifact = image(
        client,
        repo,
        media_type=OCI_MANIFEST,
        config=OCI_EMPTY_JSON,
        config_media_type=OCI_EMPTY,
        artifact_type="application/vnd.example.sbom.v1+json",
        subject=subject,
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "x": "y"},
    )
    response = put_manifest(client, repo, "sbom", artifact)
    assert response.headers["Docker-Content-Digest"] == artifact.digest
    for reference in ("sbom", artifact.digest):
        got = get_manifest(client, repo, reference, OCI_MANIFEST)
        assert got.status_code == 200
        assert got.content == artifact.body
        assert_manifest_headers(got, artifact)
    stored = json.loads(got.content)
    assert stored["subject"]["digest"] == subject.digest
    assert stored["artifactType"] == "application/vnd.example.sbom.v1+json"


def test_oci_index_with_artifact_type_subject_and_annotations(client: httpx.Client) -> None:
    repo = random_repo()
    subject = image(client, repo, media_type=OCI_MANIFEST)
    put_manifest(client, repo, subject.digest, subject)
    child = image(client, repo, media_type=OCI_MANIFEST)
    put_manifest(client, repo, child.digest, child)
    artifact = index(
        [child],
        artifact_type="application/vnd.example.bundle",
        subject=subject,
        annotations={"purpose": "test"},
    )
    put_manifest(client, repo, "bundle", artifact)
    got = get_manifest(client, repo, "bundle", OCI_INDEX)
    assert got.status_code == 200
    assert got.content == artifact.body
    assert_manifest_headers(got, artifact)


@pytest.mark.parametrize("kind", ["oci-manifest", "oci-index"])
def test_oci_types_without_media_type_in_the_body(client: httpx.Client, kind: str) -> None:
    """``mediaType`` is optional in OCI documents: Content-Type names the type, and GET
    answers with the type stored (found from the document's shape)."""
    repo = random_repo()
    document = json.loads(build(client, repo, kind).body)
    del document["mediaType"]
    body = json.dumps(document, indent=2).encode()
    response = put_manifest(client, repo, "latest", body, KIND_TYPE[kind])
    assert response.headers["Docker-Content-Digest"] == digest_of(body)
    for reference in ("latest", digest_of(body)):
        got = get_manifest(client, repo, reference)
        assert got.status_code == 200, got.text
        assert got.headers["Content-Type"] == KIND_TYPE[kind]
        assert got.content == body


def test_manifest_list_may_reference_manifests_of_other_types(client: httpx.Client) -> None:
    """An OCI index of a Docker schema2 image and an OCI image (both pushed by digest)."""
    repo = random_repo()
    children = [image(client, repo), image(client, repo, media_type=OCI_MANIFEST)]
    for child in children:
        put_manifest(client, repo, child.digest, child)
    mixed = index(children, media_type=OCI_INDEX)
    put_manifest(client, repo, "mixed", mixed)
    assert get_manifest(client, repo, "mixed").content == mixed.body


# -- digests of exact bytes ----------------------------------------------------------------


def test_digest_is_of_the_exact_bytes_received(client: httpx.Client) -> None:
    """Odd whitespace, reversed key order, escapes and a trailing newline survive as sent."""
    repo = random_repo()
    plain = image(client, repo, layers=1)
    document = json.loads(plain.body)
    layer = document["layers"][0]
    config = document["config"]
    body = (
        f'\t{{ "layers" :[ {{"size":{layer["size"]} ,"digest": "{layer["digest"]}",'
        f'"mediaType":"{layer["mediaType"]}"}}],\r\n'
        f'  "config":{{"size":{config["size"]},"digest":"{config["digest"]}",'
        f'"mediaType":"{config["mediaType"]}"}},'
        f'"mediaType": "{DOCKER_SCHEMA2}",  "schemaVersion":\n2, '
        '"annotations": {"note": "caf\\u00e9 \u2603"}}\n\n'
    ).encode()
    expected = digest_of(body)
    assert expected != plain.digest
    response = put_manifest(client, repo, "odd", body, DOCKER_SCHEMA2)
    assert response.headers["Docker-Content-Digest"] == expected
    for reference in ("odd", expected):
        got = get_manifest(client, repo, reference, DOCKER_SCHEMA2)
        assert got.status_code == 200
        assert got.content == body
        assert got.headers["Docker-Content-Digest"] == expected
        assert got.headers["Content-Length"] == str(len(body))


def test_put_by_digest_of_the_exact_bytes(client: httpx.Client) -> None:
    repo = random_repo()
    manifest = image(client, repo)
    body = manifest.body + b"\n"
    response = put_manifest(client, repo, digest_of(body), body, DOCKER_SCHEMA2)
    assert response.headers["Docker-Content-Digest"] == digest_of(body)
    assert_not_stored(client, repo, manifest.digest)


# -- conditional requests ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_if_none_match_answers_304(client: httpx.Client, method: str) -> None:
    repo = random_repo()
    manifest = image(client, repo)
    put_manifest(client, repo, "latest", manifest)
    for reference in ("latest", manifest.digest):
        for etag in (f'"{manifest.digest}"', manifest.digest):  # distribution takes both
            response = get_manifest(
                client, repo, reference, method=method, headers={"If-None-Match": etag}
            )
            assert response.status_code == 304, (reference, etag, response.text)
            assert response.content == b""
        other = get_manifest(
            client, repo, reference, method=method, headers={"If-None-Match": f'"{UNKNOWN_DIGEST}"'}
        )
        assert other.status_code == 200
        assert_manifest_headers(other, manifest)


def test_if_none_match_is_checked_before_accept(client: httpx.Client) -> None:
    """distribution compares the ETag before looking at Accept: a cached copy stays valid."""
    repo = random_repo()
    manifest = image(client, repo, media_type=OCI_MANIFEST)
    put_manifest(client, repo, "latest", manifest)
    response = get_manifest(
        client, repo, "latest", DOCKER_SCHEMA2, headers={"If-None-Match": f'"{manifest.digest}"'}
    )
    assert response.status_code == 304


# -- content negotiation -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["oci-manifest", "oci-index"])
@pytest.mark.parametrize("by", ["tag", "digest"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_oci_type_outside_accept_is_manifest_unknown(
    client: httpx.Client, kind: str, by: str, method: str
) -> None:
    """distribution 2.8 answers 404 MANIFEST_UNKNOWN for an OCI manifest or index whose
    type the Accept header leaves out, by tag and by digest alike."""
    repo = random_repo()
    manifest = build(client, repo, kind)
    put_manifest(client, repo, "latest", manifest)
    reference = "latest" if by == "tag" else manifest.digest
    others = [t for t in KIND_TYPE.values() if t != manifest.media_type]
    response = get_manifest(client, repo, reference, others, method=method)
    assert_error(response, 404, "MANIFEST_UNKNOWN")
    if method == "GET":
        body = response.json()
        assert "accept header does not support OCI" in body["errors"][0]["message"]
    # With the type listed (among others, with parameters), the manifest is served.
    accept = f"{DOCKER_SCHEMA2}, {manifest.media_type};q=0.9, application/json"
    assert get_manifest(client, repo, reference, accept).status_code == 200


def test_accept_may_come_in_several_headers(client: httpx.Client) -> None:
    repo = random_repo()
    manifest = image(client, repo, media_type=OCI_MANIFEST)
    put_manifest(client, repo, "latest", manifest)
    headers = [("Accept", DOCKER_SCHEMA2), ("Accept", OCI_MANIFEST)]
    response = client.get(manifest_path(repo, "latest"), headers=headers)
    assert response.status_code == 200
    assert response.content == manifest.body


@pytest.mark.parametrize("kind", ["docker-schema2", "docker-list"])
def test_docker_types_by_digest_are_served_whatever_the_accept(
    client: httpx.Client, kind: str
) -> None:
    """By digest, what is stored is what is served (no conversion can match a digest)."""
    repo = random_repo()
    manifest = build(client, repo, kind)
    put_manifest(client, repo, "latest", manifest)
    for accept in ([OCI_MANIFEST, OCI_INDEX], "application/json", "*/*", None):
        response = get_manifest(client, repo, manifest.digest, accept)
        assert response.status_code == 200, (accept, response.text)
        assert response.content == manifest.body
        assert_manifest_headers(response, manifest)


@deviates_on_distribution(
    "a schema2 manifest fetched by tag without schema2 in Accept is rewritten to a schema1 "
    "manifest signed with the registry's key (or 400 MANIFEST_INVALID when the config "
    "cannot be converted); a manifest list fetched with schema2 but not the list type in "
    "Accept answers with its linux/amd64 child"
)
@pytest.mark.parametrize("kind", ["docker-schema2", "docker-list"])
def test_docker_type_by_tag_outside_accept_is_not_converted(
    client: httpx.Client, kind: str
) -> None:
    repo = random_repo()
    manifest = build(client, repo, kind)
    put_manifest(client, repo, "latest", manifest)
    others = [t for t in KIND_TYPE.values() if t != manifest.media_type]
    response = get_manifest(client, repo, "latest", others)
    assert_error(response, 404, "MANIFEST_UNKNOWN")
    assert "accept header does not support" in response.json()["errors"][0]["message"]


@deviates_on_distribution(
    "without Accept, or with Accept: */*, OCI manifests and indexes are 404 MANIFEST_UNKNOWN "
    "and schema2 manifests / manifest lists fetched by tag are converted to schema1"
)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("accept", [None, "*/*", "application/*"])
def test_no_accept_or_a_wildcard_accepts_every_type(
    client: httpx.Client, kind: str, accept: str | None
) -> None:
    repo = random_repo()
    manifest = build(client, repo, kind)
    put_manifest(client, repo, "latest", manifest)
    for reference in ("latest", manifest.digest):
        response = get_manifest(client, repo, reference, accept)
        assert response.status_code == 200, response.text
        assert response.content == manifest.body
        assert_manifest_headers(response, manifest)


# -- unknown manifests ---------------------------------------------------------------------


def test_unknown_manifest(client: httpx.Client) -> None:
    repo = random_repo()
    put_manifest(client, repo, "latest", image(client, repo))
    for owner in (repo, random_repo()):  # an existing and an unknown repository
        for reference in ("nosuchtag", UNKNOWN_DIGEST):
            assert_error(get_manifest(client, owner, reference), 404, "MANIFEST_UNKNOWN")
            head = get_manifest(client, owner, reference, method="HEAD")
            assert head.status_code == 404
            assert head.content == b""


def test_reference_neither_tag_nor_digest_is_unknown(client: httpx.Client) -> None:
    """The original's router never matches such a reference: 404, which clients and the
    spec's conformance tests expect (not 400). distribution's body is its router's plain
    "404 page not found"; dockyard's the error envelope, MANIFEST_UNKNOWN."""
    repo = random_repo()
    put_manifest(client, repo, "latest", image(client, repo))
    for reference in (".INVALID_MANIFEST_NAME", "-leading-dash", "t" * 129):
        response = get_manifest(client, repo, reference)
        if TARGET == "dockyard":
            assert_error(response, 404, "MANIFEST_UNKNOWN")
        assert response.status_code == 404, (reference, response.status_code)
        head = get_manifest(client, repo, reference, method="HEAD")
        assert head.status_code == 404, (reference, head.status_code)
        assert head.content == b""


@deviates_on_distribution(
    "a malformed digest reference answers 500 UNKNOWN (it is taken for a tag)"
)
def test_malformed_digest_reference(client: httpx.Client) -> None:
    repo = random_repo()
    manifest = image(client, repo)
    put_manifest(client, repo, "latest", manifest)
    for reference in ("sha256:abc", "sha256:" + "G" * 64):
        assert_error(get_manifest(client, repo, reference), 400, "DIGEST_INVALID")
        assert_error(
            put_manifest(client, repo, reference, manifest, expect=None), 400, "DIGEST_INVALID"
        )
        assert_error(client.delete(manifest_path(repo, reference)), 400, "DIGEST_INVALID")


# -- validation of references --------------------------------------------------------------


def test_missing_config_blob(client: httpx.Client) -> None:
    repo = random_repo()
    pushed = image(client, repo)
    config = json.loads(pushed.body)["config"]
    # Same layers, a config nobody pushed.
    missing_config = b'{"architecture": "amd64", "never": "pushed"}'
    document = json.loads(pushed.body)
    document["config"] = descriptor(DOCKER_CONFIG, missing_config)
    body = json.dumps(document).encode()
    response = put_manifest(client, repo, "latest", body, DOCKER_SCHEMA2, expect=None)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert response.json()["errors"][0]["detail"] == digest_of(missing_config)
    assert config["digest"] != digest_of(missing_config)
    assert_not_stored(client, repo, digest_of(body))
    assert_error(get_manifest(client, repo, "latest"), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("media_type", [DOCKER_SCHEMA2, OCI_MANIFEST])
def test_missing_layer_blob(client: httpx.Client, media_type: str) -> None:
    repo = random_repo()
    absent = b"a layer that was never pushed"
    layer_type = json.loads(image(None, repo, media_type=media_type, push=False).body)["layers"][0][
        "mediaType"
    ]
    manifest = image(
        client, repo, media_type=media_type, extra_layers=[descriptor(layer_type, absent)]
    )
    response = put_manifest(client, repo, "latest", manifest, expect=None)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    details = [e["detail"] for e in response.json()["errors"]]
    assert details == [digest_of(absent)]
    assert_not_stored(client, repo, manifest.digest)


def test_blobs_of_another_repository_do_not_count(client: httpx.Client) -> None:
    owner, other = random_repo(), random_repo()
    manifest = image(client, owner)
    response = put_manifest(client, other, "latest", manifest, expect=None)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert response.json()["errors"][0]["detail"] in manifest.blobs


@pytest.mark.parametrize("media_type", [DOCKER_LIST, OCI_INDEX])
def test_index_referencing_a_missing_manifest(client: httpx.Client, media_type: str) -> None:
    repo = random_repo()
    child_type = DOCKER_SCHEMA2 if media_type == DOCKER_LIST else OCI_MANIFEST
    present = image(client, repo, media_type=child_type)
    put_manifest(client, repo, present.digest, present)
    absent = image(client, repo, media_type=child_type)  # blobs pushed, manifest not
    listing = index([present, absent], media_type=media_type)
    response = put_manifest(client, repo, "latest", listing, expect=None)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert response.json()["errors"][0]["detail"] == absent.digest
    assert_not_stored(client, repo, listing.digest)


def test_index_child_linked_only_as_a_layer_counts(client: httpx.Client) -> None:
    """distribution looks for manifests under ``_layers`` too (where 2.1.0 linked them),
    so a child uploaded as a blob satisfies an index and can be fetched as a manifest."""
    repo = random_repo()
    child = image(client, repo, media_type=OCI_MANIFEST)
    push_blob(client, repo, child.body)
    listing = index([child])
    put_manifest(client, repo, "latest", listing)
    got = get_manifest(client, repo, child.digest, OCI_MANIFEST)
    assert got.status_code == 200
    assert got.content == child.body


def test_validation_disabled_turns_off_url_checks_only(
    registry_factory: RegistryFactory, client_factory: Callable[[RegistryProcess], httpx.Client]
) -> None:
    """As distribution 2.8 (``app.go``): ``validation.disabled`` drops the URL allow/deny
    patterns (any http(s) URL without fragment is then fine); every referenced blob
    and child manifest must still exist."""
    server = registry_factory(overrides={"validation": {"disabled": True}})
    http = client_factory(server)
    repo = random_repo()
    anywhere, _ = foreign_layer_manifest(http, repo, ["https://anywhere.example.net/layer"])
    put_manifest(http, repo, "foreign", anywhere)
    assert get_manifest(http, repo, "foreign").content == anywhere.body
    for urls in (["ftp://anywhere.example.net/layer"], ["https://a.example/#x"], None):
        refused, layer = foreign_layer_manifest(http, repo, urls)
        assert_url_rejected(put_manifest(http, repo, "refused", refused, expect=None), layer)

    dangling = image(None, repo, push=False)
    response = put_manifest(http, repo, "image", dangling, expect=None)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    orphan_child = image(http, repo, media_type=OCI_MANIFEST)
    response = put_manifest(http, repo, "index", index([orphan_child]), expect=None)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert response.json()["errors"][0]["detail"] == orphan_child.digest


# -- foreign layers (validation.manifests.urls) --------------------------------------------


def foreign_layer_manifest(
    client: httpx.Client, repo: str, urls: list[str] | None, media_type: str = DOCKER_SCHEMA2
) -> tuple[Built, str]:
    """A manifest with one layer fetched from ``urls`` (its blob is never pushed)."""
    data = b"foreign layer " + repr(urls).encode()
    layer_type = (
        DOCKER_FOREIGN_LAYER
        if media_type == DOCKER_SCHEMA2
        else ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")
    )
    extra: dict[str, Any] = {"urls": urls} if urls is not None else {}
    manifest = image(
        client, repo, media_type=media_type, extra_layers=[descriptor(layer_type, data, **extra)]
    )
    return manifest, digest_of(data)


def assert_url_rejected(response: httpx.Response, layer: str) -> None:
    assert response.status_code >= 400, response.text
    errors = response.json()["errors"]
    assert {"code": "MANIFEST_BLOB_UNKNOWN", "detail": layer} in [
        {"code": e["code"], "detail": e.get("detail")} for e in errors
    ], errors


FOREIGN_URL_CONFIG = {
    "validation": {
        "manifests": {
            "urls": {
                "allow": [r"^https?://layers\.example\.com/"],
                "deny": [r"^https?://layers\.example\.com/private/"],
            }
        }
    }
}

FOREIGN_URL_CASES = [
    # (media type, urls, accepted)
    (DOCKER_SCHEMA2, ["https://layers.example.com/a.tar.gz"], True),
    (DOCKER_SCHEMA2, ["http://layers.example.com/a", "https://layers.example.com/b"], True),
    (DOCKER_SCHEMA2, ["https://elsewhere.example.org/a.tar.gz"], False),  # not allowed
    (DOCKER_SCHEMA2, ["https://layers.example.com/private/a"], False),  # denied
    (DOCKER_SCHEMA2, ["https://layers.example.com/a", "https://evil.example/"], False),
    (DOCKER_SCHEMA2, ["ftp://layers.example.com/a"], False),  # not http(s)
    (DOCKER_SCHEMA2, ["https://layers.example.com/a#frag"], False),  # fragment
    (DOCKER_SCHEMA2, None, False),  # a foreign layer needs URLs
    (OCI_MANIFEST, ["https://layers.example.com/a.tar.gz"], True),
    (OCI_MANIFEST, ["https://layers.example.com/private/a"], False),
]


def test_foreign_layer_urls_allow_and_deny(
    registry_factory: RegistryFactory, client_factory: Callable[[RegistryProcess], httpx.Client]
) -> None:
    server = registry_factory(overrides=FOREIGN_URL_CONFIG)
    http = client_factory(server)
    repo = random_repo()
    for media_type, urls, accepted in FOREIGN_URL_CASES:
        manifest, layer = foreign_layer_manifest(http, repo, urls, media_type)
        response = put_manifest(http, repo, manifest.digest, manifest, expect=None)
        if accepted:
            assert response.status_code == 201, (urls, response.text)
            assert get_manifest(http, repo, manifest.digest).content == manifest.body
        else:
            assert_url_rejected(response, layer)
            assert_not_stored(http, repo, manifest.digest)


def test_foreign_layer_urls_rejected_without_allow_list(client: httpx.Client) -> None:
    """With validation on and no ``allow`` patterns, no URL is acceptable."""
    repo = random_repo()
    manifest, layer = foreign_layer_manifest(client, repo, ["https://layers.example.com/a"])
    assert_url_rejected(put_manifest(client, repo, "latest", manifest, expect=None), layer)


@deviates_on_distribution(
    "a rejected layer URL answers 500 with UNKNOWN first, then MANIFEST_BLOB_UNKNOWN"
)
def test_rejected_foreign_layer_url_is_a_client_error(client: httpx.Client) -> None:
    repo = random_repo()
    manifest, layer = foreign_layer_manifest(client, repo, ["https://layers.example.com/a"])
    response = put_manifest(client, repo, "latest", manifest, expect=None)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]
    assert response.json()["errors"][0]["detail"] == layer


def test_regular_layer_with_urls_still_needs_its_blob(client: httpx.Client) -> None:
    """URLs on a layer that is not a foreign type are accepted unchecked, and such a
    layer is not looked up (distribution's "regular layers may have foreign urls")."""
    repo = random_repo()
    data = b"regular layer with urls"
    manifest = image(
        client,
        repo,
        extra_layers=[
            descriptor(
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                data,
                urls=["ftp://anything.example/x"],
            )
        ],
    )
    response = put_manifest(client, repo, "latest", manifest, expect=None)
    assert response.status_code == 201, response.text


# -- validation of the body ----------------------------------------------------------------


def test_digest_reference_not_matching_the_body(client: httpx.Client) -> None:
    repo = random_repo()
    manifest = image(client, repo)
    wrong = digest_of(manifest.body + b" ")
    response = put_manifest(client, repo, wrong, manifest, expect=None)
    assert_error(response, 400, "DIGEST_INVALID")
    assert_not_stored(client, repo, manifest.digest)
    assert_not_stored(client, repo, wrong)


def test_json_read_as_go_reads_it(client: httpx.Client) -> None:
    """Field names match case-insensitively, the last duplicate wins, whitespace around
    the document is fine: what distribution (Go's encoding/json) accepts is accepted."""
    repo = random_repo()
    body = image(client, repo).body
    variants = [
        b"\n  " + body + b"\n",
        body.replace(b'"schemaVersion"', b'"SchemaVersion"'),
        body.replace(b'"schemaVersion": 2,', b'"schemaVersion": 1, "schemaVersion": 2,'),
    ]
    for variant in variants:
        response = put_manifest(client, repo, digest_of(variant), variant, DOCKER_SCHEMA2)
        assert response.headers["Docker-Content-Digest"] == digest_of(variant)
        assert get_manifest(client, repo, digest_of(variant)).content == variant


def test_put_by_a_digest_of_another_algorithm(client: httpx.Client) -> None:
    """Revisions are addressed by sha256: a sha512 reference, even one that matches the
    body, could not be fetched back, so it is refused."""
    repo = random_repo()
    manifest = image(client, repo)
    sha512 = digest_of(manifest.body, "sha512")
    response = put_manifest(client, repo, sha512, manifest, expect=None)
    assert_error(response, 400, "DIGEST_INVALID")
    assert_not_stored(client, repo, manifest.digest)


def _schema2_without(field_name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def edit(document: dict[str, Any]) -> dict[str, Any]:
        del document[field_name]
        return document

    return edit


MALFORMED: list[tuple[str, bytes | Callable[[dict[str, Any]], dict[str, Any]], str]] = [
    ("not json", b"{this is not json", DOCKER_SCHEMA2),
    ("truncated", b'{"schemaVersion": 2, "mediaType": ', DOCKER_SCHEMA2),
    ("json array", b"[]", DOCKER_SCHEMA2),
    ("json string", b'"manifest"', OCI_MANIFEST),
    ("empty body", b"", DOCKER_SCHEMA2),
    ("utf-8 bom", lambda d: d, "bom"),
    ("utf-16", lambda d: d, "utf-16"),
    ("trailing data", lambda d: d, "trailing"),
    ("NaN", lambda d: {**d, "x": float("nan")}, DOCKER_SCHEMA2),
    ("unknown content type", lambda d: d, "application/x-not-a-manifest"),
    ("content type disagrees with mediaType", lambda d: d, OCI_MANIFEST),
    ("schema2 without mediaType", _schema2_without("mediaType"), DOCKER_SCHEMA2),
    ("layers not a list", lambda d: {**d, "layers": {"a": 1}}, DOCKER_SCHEMA2),
    ("size not a number", lambda d: {**d, "config": {**d["config"], "size": "12"}}, DOCKER_SCHEMA2),
]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [pytest.param(body, ctype, id=name) for name, body, ctype in MALFORMED],
)
def test_malformed_manifest(
    client: httpx.Client,
    body: bytes | Callable[[dict[str, Any]], dict[str, Any]],
    content_type: str,
) -> None:
    repo = random_repo()
    if callable(body):
        document = json.loads(image(client, repo).body)
        body = json.dumps(body(document)).encode()
    # Encodings and framing that Go's decoder refuses (so does distribution).
    if content_type == "bom":
        body, content_type = b"\xef\xbb\xbf" + body, DOCKER_SCHEMA2
    elif content_type == "utf-16":
        body, content_type = body.decode().encode("utf-16"), DOCKER_SCHEMA2
    elif content_type == "trailing":
        body, content_type = body + b" {}", DOCKER_SCHEMA2
    response = put_manifest(client, repo, "latest", body, content_type, expect=None)
    assert_error(response, 400, "MANIFEST_INVALID")
    assert_error(get_manifest(client, repo, "latest"), 404, "MANIFEST_UNKNOWN")


@deviates_on_distribution(
    'a manifest without config answers 400 DIGEST_INVALID plus MANIFEST_BLOB_UNKNOWN detail ""'
)
@pytest.mark.parametrize("media_type", [DOCKER_SCHEMA2, OCI_MANIFEST])
def test_image_manifest_without_config(client: httpx.Client, media_type: str) -> None:
    repo = random_repo()
    document = json.loads(image(client, repo, media_type=media_type).body)
    del document["config"]
    response = put_manifest(
        client, repo, "latest", json.dumps(document).encode(), media_type, expect=None
    )
    assert_error(response, 400, "MANIFEST_INVALID")


@deviates_on_distribution("schemaVersion 3 answers 500 UNKNOWN")
@pytest.mark.parametrize("version", [0, 3, "2"])
def test_wrong_schema_version(client: httpx.Client, version: object) -> None:
    repo = random_repo()
    document = json.loads(image(client, repo).body)
    document["schemaVersion"] = version
    body = json.dumps(document).encode()
    response = put_manifest(client, repo, "latest", body, DOCKER_SCHEMA2, expect=None)
    assert_error(response, 400, "MANIFEST_INVALID")


@deviates_on_distribution(
    "without Content-Type (or with application/json) a schema2 body is read as schema1 "
    "and refused with 400 MANIFEST_INVALID"
)
@pytest.mark.parametrize("content_type", [None, "application/json"])
def test_media_type_taken_from_the_body(client: httpx.Client, content_type: str | None) -> None:
    repo = random_repo()
    manifest = image(client, repo, media_type=OCI_MANIFEST)
    put_manifest(client, repo, "latest", manifest.body, content_type)
    got = get_manifest(client, repo, "latest")
    assert got.headers["Content-Type"] == OCI_MANIFEST


# -- size limit ----------------------------------------------------------------------------


def padded(manifest: Built, size: int) -> bytes:
    """``manifest`` with spaces before its closing brace, ``size`` bytes in all."""
    body = manifest.body
    return body[:-1] + b" " * (size - len(body)) + b"}"


def test_manifest_of_exactly_4_mib_is_accepted(client: httpx.Client) -> None:
    repo = random_repo()
    body = padded(image(client, repo), 4 * MiB)
    response = put_manifest(client, repo, "big", body, DOCKER_SCHEMA2)
    assert response.headers["Docker-Content-Digest"] == digest_of(body)
    assert get_manifest(client, repo, "big").content == body


def test_manifest_over_4_mib_is_refused(client: httpx.Client) -> None:
    repo = random_repo()
    body = padded(image(client, repo), 4 * MiB + 1)
    response = put_manifest(client, repo, "big", body, DOCKER_SCHEMA2, expect=None)
    assert response.status_code in (400, 413), response.text
    assert_not_stored(client, repo, digest_of(body))


@deviates_on_distribution(
    'a body over 4 MiB answers 400 MANIFEST_INVALID, detail "http: request body too large"'
)
def test_manifest_over_4_mib_is_size_invalid(client: httpx.Client) -> None:
    repo = random_repo()
    body = padded(image(client, repo), 4 * MiB + 1)
    response = put_manifest(client, repo, "big", body, DOCKER_SCHEMA2, expect=None)
    assert_error(response, (400, 413), "SIZE_INVALID")


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_chunked_manifest_body(client: httpx.Client) -> None:
    """A body without Content-Length (chunked transfer coding) is read to its end."""
    repo = random_repo()
    manifest = image(client, repo)
    body = padded(manifest, 300 * 1024)
    response = client.put(
        manifest_path(repo, "chunked"),
        content=chunks(body),
        headers={"Content-Type": DOCKER_SCHEMA2},
    )
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest_of(body)
    assert get_manifest(client, repo, "chunked").content == body

    too_big = padded(manifest, 4 * MiB + 1)
    response = client.put(
        manifest_path(repo, "chunked"),
        content=chunks(too_big),
        headers={"Content-Type": DOCKER_SCHEMA2},
    )
    assert response.status_code in (400, 413), response.text
    assert_not_stored(client, repo, digest_of(too_big))


def test_oversized_body_is_not_read_to_the_end(registry: RegistryProcess) -> None:
    """Declared 5 MiB, sent a little over 4 MiB: the answer comes without the rest."""
    response = send_partial(
        registry.url,
        "PUT",
        manifest_path(random_repo(), "big"),
        {"Content-Type": DOCKER_SCHEMA2, "Content-Length": str(5 * MiB)},
        b"{" + b" " * (4 * MiB + 64 * 1024),
    )
    assert response.status_code in (400, 413)
    codes = [e["code"] for e in response.json()["errors"]]
    assert codes and set(codes) <= {"SIZE_INVALID", "MANIFEST_INVALID"}, codes


@deviates_on_distribution(
    "the body is read until 4 MiB + 1 bytes have arrived; a declared Content-Length over the "
    "limit is not refused up front, so a client that sends less waits forever"
)
def test_declared_length_over_the_limit_is_refused_up_front(registry: RegistryProcess) -> None:
    response = send_partial(
        registry.url,
        "PUT",
        manifest_path(random_repo(), "big"),
        {"Content-Type": DOCKER_SCHEMA2, "Content-Length": str(5 * MiB)},
        b"{" + b" " * 1024,
        timeout=5,
    )
    assert response.status_code in (400, 413)
    assert [e["code"] for e in response.json()["errors"]] == ["SIZE_INVALID"]
