"""What a stored payload names when the parser refuses it (a type it does not know, such
as OCI's withdrawn artifact manifest, or something another registry accepted): read
leniently, so that garbage collection and the index lose nothing it names."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

from dockyard.digest import Digest, InvalidDigest

__all__ = ["LenientReferences", "lenient_references"]


@dataclass(frozen=True, slots=True)
class LenientReferences:
    """The digests a JSON object names where manifests name them (duplicates removed)."""

    blobs: tuple[Digest, ...]
    children: tuple[Digest, ...]
    subject: Digest | None
    artifact_type: str | None


def _found(value: object, key: str = "digest") -> list[Digest]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get(key), str):
            with contextlib.suppress(InvalidDigest):
                out.append(Digest.parse(item[key]))
    return out


def lenient_references(payload: bytes) -> LenientReferences | None:
    """The references of ``payload`` read without validation; None unless a JSON object."""
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    blobs = [
        *_found(document.get("config")),
        *_found(document.get("layers")),
        *_found(document.get("blobs")),  # OCI 1.1-rc artifact manifest
        *_found(document.get("fsLayers"), "blobSum"),  # schema1
    ]
    subject = _found(document.get("subject"))
    artifact = document.get("artifactType")
    return LenientReferences(
        blobs=tuple(dict.fromkeys(blobs)),
        children=tuple(dict.fromkeys(_found(document.get("manifests")))),
        subject=subject[0] if subject else None,
        artifact_type=artifact if isinstance(artifact, str) else None,
    )
