"""Media types, descriptors and the parsed manifest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dockyard.digest import Digest

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
    "Manifest",
]

DOCKER_SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA1_UNSIGNED = "application/vnd.docker.distribution.manifest.v1+json"
# The member of a signed schema1 body that holds its signatures (libtrust's name).
SIGNATURE_KEY = "signatures"

KNOWN_MEDIA_TYPES: frozenset[str] = frozenset(
    {
        DOCKER_SCHEMA2,
        DOCKER_MANIFEST_LIST,
        OCI_MANIFEST,
        OCI_INDEX,
        SCHEMA1_SIGNED,
        SCHEMA1_UNSIGNED,
    }
)

#: A Docker layer that clients fetch from its ``urls``; the registry need not hold it.
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
#: The OCI layer types whose ``urls`` distribution checks against the allow/deny lists.
OCI_LAYER_TYPES: frozenset[str] = frozenset(
    {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    }
)
#: The media type distribution gives the blobs a schema1 manifest lists in ``fsLayers``.
SCHEMA1_LAYER = "application/vnd.docker.container.image.rootfs.diff+x-gtar"

MAX_MANIFEST_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A reference to content by digest, as in a manifest's ``config``/``layers``/``manifests``.

    Mappings are read-only; they take no part in hashing, so descriptors can go in sets.
    """

    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] | None = field(default=None, hash=False)
    artifact_type: str | None = None
    platform: Mapping[str, Any] | None = field(default=None, hash=False)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest; everything the storage and HTTP layers need to know.

    ``payload`` is what is stored as the revision blob and ``digest`` is its sha256:
    the exact bytes received, except for signed schema1, where it is the signed
    payload without its ``signatures`` (kept apart in :attr:`signatures`, as libtrust's
    ``Signatures()`` returns them, and merged back with
    :func:`~dockyard.manifest.merge_schema1_signatures` when served).
    """

    media_type: str
    digest: Digest
    payload: bytes = field(repr=False)
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] | None = field(default=None, hash=False)
    signatures: tuple[bytes, ...] = field(default=(), repr=False)
