"""dockyard.manifest: schema2, manifest lists, OCI manifests and indexes, references."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest

from dockyard.digest import Digest
from dockyard.errors import ManifestBlobUnknown, ManifestInvalid, ManifestTooLarge
from dockyard.manifest import (
    DOCKER_FOREIGN_LAYER,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA2,
    KNOWN_MEDIA_TYPES,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_SIGNED,
    SCHEMA1_UNSIGNED,
    Descriptor,
    Manifest,
    foreign_layer_check,
    parse_manifest,
    referenced_blobs,
    referenced_manifests,
    url_allowed,
)
from dockyard.manifest._gojson import marshal, quote

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"


def desc(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": str(Digest.of(data)), "size": len(data), **extra}


def encode(document: Any) -> bytes:
    return json.dumps(document, indent=3).encode()


def schema2(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": DOCKER_SCHEMA2,
        "config": desc(DOCKER_CONFIG, b"config"),
        "layers": [desc(DOCKER_LAYER, b"layer-1"), desc(DOCKER_LAYER, b"layer-2")],
    }
    document.update(changes)
    return document


def docker_list(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [
            desc(DOCKER_SCHEMA2, b"amd64", platform={"architecture": "amd64", "os": "linux"}),
            desc(
                DOCKER_SCHEMA2,
                b"arm64",
                platform={"architecture": "arm64", "os": "linux", "variant": "v8"},
            ),
        ],
    }
    document.update(changes)
    return document


def oci_manifest(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, b"config"),
        "layers": [desc(OCI_LAYER, b"layer-1")],
    }
    document.update(changes)
    return document


def oci_index(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            desc(OCI_MANIFEST, b"child", platform={"architecture": "amd64", "os": "linux"})
        ],
    }
    document.update(changes)
    return document


def invalid(body: bytes, content_type: str | None) -> ManifestInvalid:
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(body, content_type)
    return info.value


# --- every media type, valid ------------------------------------------------------------


def test_known_media_types() -> None:
    assert {
        DOCKER_SCHEMA2,
        DOCKER_MANIFEST_LIST,
        OCI_MANIFEST,
        OCI_INDEX,
        SCHEMA1_SIGNED,
        SCHEMA1_UNSIGNED,
    } == KNOWN_MEDIA_TYPES


def test_schema2_manifest() -> None:
    body = encode(schema2())
    manifest = parse_manifest(body, DOCKER_SCHEMA2)
    assert manifest.media_type == DOCKER_SCHEMA2
    assert manifest.payload is body
    assert str(manifest.digest) == "sha256:" + hashlib.sha256(body).hexdigest()
    assert manifest.config == Descriptor(DOCKER_CONFIG, Digest.of(b"config"), 6)
    assert [layer.digest for layer in manifest.layers] == [
        Digest.of(b"layer-1"),
        Digest.of(b"layer-2"),
    ]
    assert manifest.manifests == ()
    assert manifest.subject is None
    assert manifest.artifact_type is None
    assert manifest.annotations is None
    assert manifest.signatures == ()


def test_manifest_list() -> None:
    body = encode(docker_list())
    manifest = parse_manifest(body, DOCKER_MANIFEST_LIST)
    assert manifest.media_type == DOCKER_MANIFEST_LIST
    assert manifest.digest == Digest.of(body)
    assert manifest.config is None
    assert manifest.layers == ()
    assert [child.digest for child in manifest.manifests] == [
        Digest.of(b"amd64"),
        Digest.of(b"arm64"),
    ]
    platform = manifest.manifests[1].platform
    assert platform is not None
    assert dict(platform) == {"architecture": "arm64", "os": "linux", "variant": "v8"}


def test_oci_manifest_with_artifact_type_subject_annotations() -> None:
    document = oci_manifest(
        artifactType="application/vnd.example.sbom",
        subject=desc(OCI_MANIFEST, b"subject"),
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        config=desc("application/vnd.oci.empty.v1+json", b"{}"),
    )
    document["layers"][0]["annotations"] = {"org.opencontainers.image.title": "sbom.json"}
    document["layers"][0]["artifactType"] = "application/spdx+json"
    body = encode(document)
    manifest = parse_manifest(body, OCI_MANIFEST)
    assert manifest.media_type == OCI_MANIFEST
    assert manifest.digest == Digest.of(body)
    assert manifest.artifact_type == "application/vnd.example.sbom"
    assert manifest.subject == Descriptor(OCI_MANIFEST, Digest.of(b"subject"), 7)
    assert manifest.annotations == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    layer = manifest.layers[0]
    assert layer.annotations == {"org.opencontainers.image.title": "sbom.json"}
    assert layer.artifact_type == "application/spdx+json"


def test_oci_manifest_artifact_type_falls_back_to_config_media_type() -> None:
    manifest = parse_manifest(encode(oci_manifest()), OCI_MANIFEST)
    assert manifest.artifact_type == OCI_CONFIG


def test_oci_manifest_may_omit_media_type() -> None:
    document = oci_manifest()
    del document["mediaType"]
    manifest = parse_manifest(encode(document), OCI_MANIFEST)
    assert manifest.media_type == OCI_MANIFEST


def test_oci_index_with_artifact_type_subject_annotations() -> None:
    body = encode(
        oci_index(
            artifactType="application/vnd.example.bundle",
            subject=desc(OCI_INDEX, b"subject"),
            annotations={"a": "b"},
        )
    )
    manifest = parse_manifest(body, OCI_INDEX)
    assert manifest.media_type == OCI_INDEX
    assert manifest.digest == Digest.of(body)
    assert manifest.artifact_type == "application/vnd.example.bundle"
    assert manifest.subject is not None and manifest.subject.digest == Digest.of(b"subject")
    assert manifest.annotations == {"a": "b"}
    assert manifest.manifests[0].digest == Digest.of(b"child")


def test_oci_index_without_artifact_type() -> None:
    document = oci_index()
    del document["mediaType"]
    manifest = parse_manifest(encode(document), OCI_INDEX)
    assert manifest.artifact_type is None
    assert manifest.subject is None


def test_null_layers_and_manifests_read_as_empty() -> None:
    # Go clients marshal a nil slice as null; distribution reads it back as empty.
    assert parse_manifest(encode(oci_manifest(layers=None)), OCI_MANIFEST).layers == ()
    assert parse_manifest(encode(oci_index(manifests=None)), OCI_INDEX).manifests == ()


# --- exact bytes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(schema2()).encode(),
        json.dumps(schema2(), indent=2).encode(),
        json.dumps(schema2(), indent="\t").encode() + b"\n",
        b"  \r\n" + json.dumps(schema2(), separators=(",", ":")).encode() + b"\n\n",
        json.dumps(dict(reversed(list(schema2().items())))).encode(),
    ],
)
def test_digest_is_of_the_exact_bytes(body: bytes) -> None:
    manifest = parse_manifest(body, DOCKER_SCHEMA2)
    assert manifest.payload == body
    assert manifest.digest.hex == hashlib.sha256(body).hexdigest()


def test_unicode_is_not_normalised() -> None:
    body = json.dumps(oci_manifest(annotations={"t": "caf\u00e9 \u2028"}), ensure_ascii=False)
    manifest = parse_manifest(body.encode(), OCI_MANIFEST)
    assert manifest.digest == Digest.of(body.encode())
    assert manifest.annotations == {"t": "caf\u00e9 \u2028"}


# --- invalid bodies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (schema2(schemaVersion=1), "schema version 1"),
        (schema2(schemaVersion=3), "schema version 3"),
        (schema2(schemaVersion="2"), "schemaVersion"),
        (schema2(schemaVersion=2.0), "schemaVersion"),
        (schema2(schemaVersion=True), "schemaVersion"),
        ({k: v for k, v in schema2().items() if k != "schemaVersion"}, "schema version 0"),
        ({k: v for k, v in schema2().items() if k != "config"}, "config"),
        (schema2(config="sha256:abc"), "config"),
        (schema2(layers={"0": desc(DOCKER_LAYER, b"x")}), "layers"),
        (schema2(layers=["x"]), "layers[0]"),
    ],
)
def test_schema2_invalid(document: dict[str, Any], reason: str) -> None:
    assert reason in str(invalid(encode(document), DOCKER_SCHEMA2))


def test_schema2_requires_media_type_in_body() -> None:
    document = schema2()
    del document["mediaType"]
    error = invalid(encode(document), DOCKER_SCHEMA2)
    assert "should be 'application/vnd.docker.distribution.manifest.v2+json' not ''" in str(error)


def broken_layer(**fields: Any) -> dict[str, Any]:
    layer = desc(DOCKER_LAYER, b"layer")
    layer.update(fields)
    return {k: v for k, v in layer.items() if v is not ...}


@pytest.mark.parametrize(
    ("layer", "reason"),
    [
        (broken_layer(digest="sha256:1234"), "layers[0].digest"),
        (broken_layer(digest="md5:" + "0" * 32), "layers[0].digest"),
        (broken_layer(digest="sha256:" + "A" * 64), "layers[0].digest"),
        (broken_layer(digest="not a digest"), "layers[0].digest"),
        (broken_layer(digest=...), "layers[0].digest is missing"),
        (broken_layer(digest=5), "layers[0].digest must be a string"),
        (broken_layer(size=-1), "layers[0].size"),
        (broken_layer(size=1.5), "layers[0].size"),
        (broken_layer(size=5.0), "layers[0].size"),
        (broken_layer(size="5"), "layers[0].size"),
        (broken_layer(size=True), "layers[0].size"),
        (broken_layer(size=2**63), "layers[0].size"),
        (broken_layer(size=...), "layers[0].size is missing"),
        (broken_layer(mediaType=...), "layers[0].mediaType is missing"),
        (broken_layer(mediaType=7), "layers[0].mediaType must be a string"),
        (broken_layer(urls="http://x"), "layers[0].urls"),
        (broken_layer(urls=[1]), "layers[0].urls"),
        (broken_layer(annotations={"a": 1}), "layers[0].annotations"),
        (broken_layer(annotations=["a"]), "layers[0].annotations"),
        (broken_layer(platform="linux"), "layers[0].platform"),
        (broken_layer(platform={"os": 1}), "layers[0].platform.os"),
        (broken_layer(artifactType=1), "layers[0].artifactType"),
    ],
)
def test_invalid_descriptor(layer: dict[str, Any], reason: str) -> None:
    assert reason in str(invalid(encode(schema2(layers=[layer])), DOCKER_SCHEMA2))


def test_descriptor_accepts_zero_size_and_sha512() -> None:
    layer = {"mediaType": DOCKER_LAYER, "digest": str(Digest.of(b"", "sha512")), "size": 0}
    manifest = parse_manifest(encode(schema2(layers=[layer])), DOCKER_SCHEMA2)
    assert manifest.layers[0].digest.algorithm == "sha512"
    assert manifest.layers[0].size == 0


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (docker_list(mediaType=OCI_INDEX), "does not match"),
        ({k: v for k, v in docker_list().items() if k != "mediaType"}, "manifest list should be"),
        (docker_list(schemaVersion=1), "schema version 1"),
        (docker_list(manifests=[{"mediaType": DOCKER_SCHEMA2}]), "manifests[0].digest"),
        (docker_list(manifests={"a": 1}), "manifests must be an array"),
    ],
)
def test_manifest_list_invalid(document: dict[str, Any], reason: str) -> None:
    assert reason in str(invalid(encode(document), DOCKER_MANIFEST_LIST))


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (oci_manifest(manifests=[]), "expected manifest but found index"),
        ({k: v for k, v in oci_manifest().items() if k != "config"}, "config"),
        (oci_manifest(artifactType=5), "artifactType must be a string"),
        (oci_manifest(subject="sha256:" + "a" * 64), "subject must be a descriptor"),
        (oci_manifest(subject={"mediaType": OCI_MANIFEST, "size": 1}), "subject.digest"),
        (oci_manifest(subject=desc(OCI_MANIFEST, b"s", digest="sha256:zz")), "subject.digest"),
        (oci_manifest(annotations={"a": ["b"]}), "annotations"),
        (oci_manifest(annotations="a=b"), "annotations"),
        (oci_manifest(schemaVersion=1), "schema version 1"),
    ],
)
def test_oci_manifest_invalid(document: dict[str, Any], reason: str) -> None:
    assert reason in str(invalid(encode(document), OCI_MANIFEST))


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (oci_index(config=desc(OCI_CONFIG, b"c")), "expected index but found manifest"),
        (oci_index(layers=[]), "expected index but found manifest"),
        (oci_index(manifests=[{"digest": str(Digest.of(b"x")), "size": 1}]), "mediaType"),
        (oci_index(artifactType=["a"]), "artifactType"),
        (oci_index(subject=[]), "subject"),
        (oci_index(schemaVersion=None), "schema version 0"),
    ],
)
def test_oci_index_invalid(document: dict[str, Any], reason: str) -> None:
    assert reason in str(invalid(encode(document), OCI_INDEX))


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"{]", b'{"schemaVersion": 2,}', b"\xef\xbb\xbf{}", b'{"a": NaN}', b"{} {}"],
)
def test_malformed_json_reports_the_parser_message(body: bytes) -> None:
    error = invalid(body, OCI_MANIFEST)
    assert "not valid JSON" in str(error)
    assert isinstance(error.detail, str) and error.detail
    assert error.detail in str(error)


def test_deeply_nested_json_is_invalid_not_a_crash() -> None:
    body = b'{"schemaVersion": 2, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    invalid(body, OCI_MANIFEST)


@pytest.mark.parametrize("body", [b"[]", b"null", b'"manifest"', b"2"])
def test_body_must_be_an_object(body: bytes) -> None:
    assert "JSON object" in str(invalid(body, OCI_MANIFEST))


def test_too_large() -> None:
    body = encode(oci_manifest(annotations={"pad": "x" * MAX_MANIFEST_SIZE}))
    with pytest.raises(ManifestTooLarge):
        parse_manifest(body, OCI_MANIFEST)


def test_exactly_the_limit_is_accepted() -> None:
    body = encode(oci_manifest(annotations={"pad": ""}))
    body = body[:-1] + b" " * (MAX_MANIFEST_SIZE - len(body)) + b"}"
    assert len(body) == MAX_MANIFEST_SIZE
    assert parse_manifest(body, OCI_MANIFEST).digest == Digest.of(body)


# --- media type resolution ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "media_type"),
    [
        (schema2(), DOCKER_SCHEMA2),
        (docker_list(), DOCKER_MANIFEST_LIST),
        (oci_manifest(), OCI_MANIFEST),
        (oci_index(), OCI_INDEX),
    ],
)
@pytest.mark.parametrize("content_type", [None, "", "application/json", "application/json; q=1"])
def test_body_media_type_when_content_type_is_generic(
    document: dict[str, Any], media_type: str, content_type: str | None
) -> None:
    assert parse_manifest(encode(document), content_type).media_type == media_type


@pytest.mark.parametrize(
    ("document", "media_type"),
    [
        ({k: v for k, v in oci_index().items() if k != "mediaType"}, OCI_INDEX),
        ({k: v for k, v in oci_manifest().items() if k != "mediaType"}, OCI_MANIFEST),
    ],
)
@pytest.mark.parametrize("content_type", [None, "application/json"])
def test_sniffed_from_shape(
    document: dict[str, Any], media_type: str, content_type: str | None
) -> None:
    assert parse_manifest(encode(document), content_type).media_type == media_type


def test_schema_version_1_without_content_type_is_schema1() -> None:
    body = encode(
        {
            "schemaVersion": 1,
            "name": "library/x",
            "tag": "latest",
            "architecture": "amd64",
            "fsLayers": [],
            "history": [],
        }
    )
    assert parse_manifest(body, None).media_type == SCHEMA1_UNSIGNED


def test_unrecognisable_without_content_type() -> None:
    assert "media type" in str(invalid(b'{"schemaVersion": 2}', None))


@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
        "Application/VND.OCI.Image.Manifest.v1+JSON",
        "  application/vnd.oci.image.manifest.v1+json  ",
    ],
)
def test_content_type_parameters_and_case(content_type: str) -> None:
    assert parse_manifest(encode(oci_manifest()), content_type).media_type == OCI_MANIFEST


@pytest.mark.parametrize(
    ("document", "content_type"),
    [
        (oci_manifest(), DOCKER_SCHEMA2),
        (oci_manifest(), OCI_INDEX),
        (schema2(), OCI_MANIFEST),
        (oci_index(), DOCKER_MANIFEST_LIST),
        (docker_list(), OCI_INDEX),
        (oci_index(), SCHEMA1_SIGNED),
    ],
)
def test_content_type_and_body_media_type_disagree(
    document: dict[str, Any], content_type: str
) -> None:
    assert "does not match Content-Type" in str(invalid(encode(document), content_type))


@pytest.mark.parametrize("content_type", ["text/plain", "application/vnd.example+json"])
def test_unknown_content_type_is_named(content_type: str) -> None:
    assert repr(content_type) in str(invalid(encode(oci_manifest()), content_type))


def test_unknown_body_media_type_is_named() -> None:
    error = invalid(encode(oci_manifest(mediaType="application/vnd.example")), None)
    assert "'application/vnd.example'" in str(error)


@pytest.mark.parametrize("content_type", ["a b", "/json", "application/", "; charset=x"])
def test_malformed_content_type(content_type: str) -> None:
    assert "Content-Type" in str(invalid(encode(oci_manifest()), content_type))


def test_media_type_must_be_a_string() -> None:
    assert "mediaType must be a string" in str(invalid(encode(oci_manifest(mediaType=1)), None))


# --- Go's decoding rules ------------------------------------------------------------------


def test_field_names_match_case_insensitively_like_go() -> None:
    body = (
        b'{"SchemaVersion": 2, "MediaType": "application/vnd.oci.image.manifest.v1+json",'
        b' "CONFIG": {"mediatype": "application/vnd.oci.image.config.v1+json",'
        b' "Digest": "' + str(Digest.of(b"c")).encode() + b'", "SIZE": 1}, "Layers": []}'
    )
    manifest = parse_manifest(body, None)
    assert manifest.media_type == OCI_MANIFEST
    assert manifest.config is not None and manifest.config.digest == Digest.of(b"c")


def test_duplicate_members_last_one_wins_like_go() -> None:
    first, last = desc(OCI_LAYER, b"first"), desc(OCI_LAYER, b"last")
    body = (
        encode(oci_manifest())[:-2]
        + (f',\n"layers": [{json.dumps(first)}],\n"Layers": [{json.dumps(last)}]\n}}').encode()
    )
    manifest = parse_manifest(body, OCI_MANIFEST)
    assert [layer.digest for layer in manifest.layers] == [Digest.of(b"last")]


def test_null_keeps_a_string_field_but_resets_a_list_like_go() -> None:
    body = encode(oci_manifest())[:-2] + b',\n"mediaType": null,\n"layers": null\n}'
    manifest = parse_manifest(body, None)
    assert manifest.media_type == OCI_MANIFEST
    assert manifest.layers == ()


def test_unknown_fields_are_ignored() -> None:
    manifest = parse_manifest(encode(schema2(extra={"x": [1, 2]}, annotations=5)), DOCKER_SCHEMA2)
    assert manifest.annotations is None


# --- immutability ----------------------------------------------------------------------------


def test_results_are_frozen_and_descriptors_hashable() -> None:
    manifest = parse_manifest(encode(oci_manifest(annotations={"a": "b"})), OCI_MANIFEST)
    with pytest.raises(AttributeError):
        manifest.digest = Digest.of(b"")  # type: ignore[misc]
    assert manifest.annotations is not None
    with pytest.raises(TypeError):
        manifest.annotations["a"] = "c"  # type: ignore[index]
    assert len(set(manifest.layers) | set(manifest.layers)) == 1
    assert isinstance(manifest, Manifest)


# --- references ---------------------------------------------------------------------------


def test_referenced_blobs_schema2() -> None:
    foreign = desc(DOCKER_FOREIGN_LAYER, b"windows", urls=["https://example.com/base"])
    remote = desc(DOCKER_LAYER, b"remote", urls=["https://example.com/remote"])
    local = desc(DOCKER_LAYER, b"layer-1")
    manifest = parse_manifest(
        encode(schema2(layers=[foreign, local, remote, local])), DOCKER_SCHEMA2
    )
    assert [d.digest for d in referenced_blobs(manifest)] == [
        Digest.of(b"config"),
        Digest.of(b"layer-1"),
    ]
    assert referenced_manifests(manifest) == ()


def test_referenced_blobs_oci() -> None:
    nondist_remote = desc(OCI_NONDIST, b"nd", urls=["https://example.com/nd"])
    nondist_local = desc(OCI_NONDIST, b"nd-local")
    manifest = parse_manifest(
        encode(oci_manifest(layers=[nondist_remote, nondist_local], subject=desc(OCI_INDEX, b"s"))),
        OCI_MANIFEST,
    )
    assert [d.digest for d in referenced_blobs(manifest)] == [
        Digest.of(b"config"),
        Digest.of(b"nd-local"),
    ]


def test_referenced_manifests_of_lists_and_indexes() -> None:
    children = [desc(DOCKER_SCHEMA2, b"a"), desc(DOCKER_SCHEMA2, b"b"), desc(DOCKER_SCHEMA2, b"a")]
    listed = parse_manifest(encode(docker_list(manifests=children)), DOCKER_MANIFEST_LIST)
    assert [d.digest for d in referenced_manifests(listed)] == [Digest.of(b"a"), Digest.of(b"b")]
    assert referenced_blobs(listed) == ()
    index = parse_manifest(encode(oci_index(subject=desc(OCI_INDEX, b"s"))), OCI_INDEX)
    assert [d.digest for d in referenced_manifests(index)] == [Digest.of(b"child")]


# --- foreign layers (distribution's TestVerifyManifestForeignLayer table) ------------------

ALLOW = [re.compile("^https?://foo")]
DENY = [re.compile("^https?://foo/nope")]


@pytest.mark.parametrize(
    ("media_type", "urls", "error"),
    [
        (DOCKER_FOREIGN_LAYER, None, "missing URL on layer"),
        (DOCKER_LAYER, ["http://foo/bar"], None),  # regular layers may have foreign urls
        (DOCKER_FOREIGN_LAYER, ["file:///local/file"], "invalid URL on layer"),
        (DOCKER_FOREIGN_LAYER, ["http://foo/bar#baz"], "invalid URL on layer"),
        (DOCKER_FOREIGN_LAYER, [""], "invalid URL on layer"),
        (DOCKER_FOREIGN_LAYER, ["https://foo/bar", ""], "invalid URL on layer"),
        (DOCKER_FOREIGN_LAYER, ["", "https://foo/bar"], "invalid URL on layer"),
        (DOCKER_FOREIGN_LAYER, ["http://nope/bar"], "invalid URL on layer"),
        (DOCKER_FOREIGN_LAYER, ["http://foo/nope"], "invalid URL on layer"),
        (DOCKER_FOREIGN_LAYER, ["http://foo/bar"], None),
        (DOCKER_FOREIGN_LAYER, ["https://foo/bar"], None),
    ],
)
def test_foreign_layer_check_schema2(
    media_type: str, urls: list[str] | None, error: str | None
) -> None:
    layer = desc(media_type, b"foreign") | ({"urls": urls} if urls is not None else {})
    manifest = parse_manifest(encode(schema2(layers=[layer])), DOCKER_SCHEMA2)
    if error is None:
        foreign_layer_check(manifest, ALLOW, DENY)
        return
    with pytest.raises(ManifestBlobUnknown) as info:
        foreign_layer_check(manifest, ALLOW, DENY)
    assert str(info.value) == error
    assert info.value.detail == str(Digest.of(b"foreign"))


@pytest.mark.parametrize(
    ("media_type", "urls", "ok"),
    [
        (OCI_NONDIST, None, True),  # no URLs: the blob must exist instead
        (OCI_NONDIST, ["https://foo/bar"], True),
        (OCI_NONDIST, ["https://elsewhere/bar"], False),
        (OCI_LAYER, ["ftp://foo/bar"], False),
        (OCI_LAYER, ["https://foo/nope/x"], False),
        ("application/vnd.example.layer", ["ftp://anything"], True),  # not checked
    ],
)
def test_foreign_layer_check_oci(media_type: str, urls: list[str] | None, ok: bool) -> None:
    layer = desc(media_type, b"layer") | ({"urls": urls} if urls is not None else {})
    manifest = parse_manifest(encode(oci_manifest(layers=[layer])), OCI_MANIFEST)
    if ok:
        foreign_layer_check(manifest, ALLOW, DENY)
    else:
        with pytest.raises(ManifestBlobUnknown, match="invalid URL on layer"):
            foreign_layer_check(manifest, ALLOW, DENY)


def test_foreign_layer_check_ignores_lists() -> None:
    foreign_layer_check(parse_manifest(encode(docker_list()), DOCKER_MANIFEST_LIST), ALLOW, DENY)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.com/a/b?c=d", True),
        ("HTTP://example.com/x", True),
        ("https://user:pw@example.com:8443/x", True),
        ("https://example.com:/x", True),
        ("https://[::1]:5000/x", True),
        ("http:opaque", True),
        ("https://example.com/x#", True),
        ("https://example.com/x#frag", False),
        ("https://example.com:port/x", False),
        ("https://exa mple.com/x", False),
        ("https://example.com/%zz", False),
        ("https://example.com/\x01", False),
        ("https://ex{ample.com/", False),
        ("https://[::1/x", False),
        ("https://us er@example.com/", False),
        (" https://example.com/", False),
        (":https://example.com/", False),
        ("ftp://example.com/", False),
        ("//example.com/", False),
    ],
)
def test_url_allowed_follows_go_url_parse(url: str, ok: bool) -> None:
    assert url_allowed(url, [], []) is ok


def test_url_allow_and_deny_search_anywhere() -> None:
    assert url_allowed("https://a.example/x", [re.compile("example")], [])
    assert not url_allowed("https://a.example/x", [re.compile("^example")], [])
    assert url_allowed("https://a/x", [re.compile("zzz"), re.compile("a/x")], [])
    assert not url_allowed("https://a/x", [], [re.compile("zzz"), re.compile("/x$")])


# --- Go-compatible JSON output --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, "1"),
        (100.0, "100"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (1.25e-10, "1.25e-10"),
        (-0.0, "-0"),
        (2**53 + 1, "9007199254740992"),
        (0.1, "0.1"),
        (123456789.125, "123456789.125"),
    ],
)
def test_go_number_format(value: float, expected: str) -> None:
    assert marshal(value) == expected


def test_go_string_escapes() -> None:
    assert quote('<a href="x">&\u2028\u2029\x00\x08\x0c\t\n\r\x7f\u00e9\\') == (
        '"\\u003ca href=\\"x\\"\\u003e\\u0026\\u2028\\u2029\\u0000\\u0008\\u000c\\t\\n\\r'
        '\x7f\u00e9\\\\"'
    )


def test_go_marshal_indent_layout() -> None:
    value = {"b": [], "a": [1, {}, {"y": None, "x": True}]}
    assert marshal(value) == '{"a":[1,{},{"x":true,"y":null}],"b":[]}'
    assert marshal(value, prefix=">", indent="  ") == (
        '{\n>  "a": [\n>    1,\n>    {},\n>    {\n>      "x": true,\n>      "y": null\n>    }\n'
        '>  ],\n>  "b": []\n>}'
    )
