"""Manifests: parse and validate every media type a registry stores (pure, no I/O).

The storage and HTTP layers ask this package questions and never look inside a
manifest themselves::

    manifest = parse_manifest(body, request.headers.get("Content-Type"))
    foreign_layer_check(manifest, allow, deny)
    for blob in referenced_blobs(manifest): ...          # must exist as blobs
    for child in referenced_manifests(manifest): ...     # must exist as manifests
    store(manifest.digest, manifest.payload, manifest.signatures)
    ...
    body = merge_schema1_signatures(payload, signatures)  # serving signed schema1

Errors (from :mod:`dockyard.errors`)::

    ManifestTooLarge     body over MAX_MANIFEST_SIZE
    ManifestInvalid      not JSON, wrong or unknown media type, bad field or descriptor
    ManifestUnverified   schema1 signatures missing, unknown algorithm, not verifying
    NameInvalid          schema1 ``name`` breaks the repository name grammar
    TagInvalid           schema1 ``tag`` breaks the tag grammar
    ManifestBlobUnknown  foreign_layer_check: a layer URL is missing or not allowed

Where distribution (the Go registry this replaces) reads JSON, this package reads it
the same way (Go's struct-field matching, ``null`` handling, libtrust's signature
serialization), so clients and dockyard agree on what a manifest says.
"""

from dockyard.manifest._lenient import LenientReferences, lenient_references
from dockyard.manifest._parse import parse_manifest
from dockyard.manifest._references import (
    foreign_layer_check,
    referenced_blobs,
    referenced_manifests,
    url_allowed,
)
from dockyard.manifest._schema1 import merge_schema1_signatures
from dockyard.manifest._stored import stored_media_type
from dockyard.manifest._types import (
    DOCKER_FOREIGN_LAYER,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA2,
    KNOWN_MEDIA_TYPES,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    OCI_LAYER_TYPES,
    OCI_MANIFEST,
    SCHEMA1_LAYER,
    SCHEMA1_SIGNED,
    SCHEMA1_UNSIGNED,
    Descriptor,
    Manifest,
)

__all__ = [
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_SCHEMA2",
    "KNOWN_MEDIA_TYPES",
    "MAX_MANIFEST_SIZE",
    "OCI_INDEX",
    "OCI_LAYER_TYPES",
    "OCI_MANIFEST",
    "SCHEMA1_LAYER",
    "SCHEMA1_SIGNED",
    "SCHEMA1_UNSIGNED",
    "Descriptor",
    "LenientReferences",
    "Manifest",
    "foreign_layer_check",
    "lenient_references",
    "merge_schema1_signatures",
    "parse_manifest",
    "referenced_blobs",
    "referenced_manifests",
    "stored_media_type",
    "url_allowed",
]
