"""A stored manifest payload turned into the record the index keeps.

The API's writes and the rebuild from storage both call :func:`manifest_record`
on the stored payload, so an index built either way holds the same records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from dockyard.digest import Digest
from dockyard.errors import RegistryFault
from dockyard.index.base import ManifestRecord
from dockyard.manifest import (
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA2,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    lenient_references,
    parse_manifest,
    stored_media_type,
)

__all__ = ["manifest_record"]

_INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
# Types whose parse does not depend on the PUT's Content-Type once the body names them.
_SELF_NAMED = frozenset({DOCKER_SCHEMA2, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX})


def _unique(digests: Iterable[Digest]) -> tuple[Digest, ...]:
    """Each digest once, sorted (the order the index returns them in)."""
    return tuple(sorted(set(digests), key=str))


def manifest_record(
    digest: Digest,
    payload: bytes,
    pushed_at: float | None = None,
    signatures: Iterable[Digest] = (),
    parsed: Manifest | None = None,
) -> ManifestRecord:
    """What ``payload`` (the revision ``digest``) says, for the index.

    A payload the parser refuses (another registry accepted it) is read
    leniently, so that nothing it references is lost to garbage collection.
    ``parsed``: the PUT's own parse of ``payload``, used instead of parsing it again
    when the body names its (non-schema1) type, where it reads the same as a
    parse without Content-Type (what a rebuild does).
    """
    try:
        media_type = stored_media_type(payload)
    except RegistryFault:
        media_type = "application/octet-stream"
    try:
        if (parsed is not None and parsed.media_type == media_type
                and media_type in _SELF_NAMED and parsed.payload is payload):
            manifest = parsed
        else:
            manifest = parse_manifest(payload, None)
    except (RegistryFault, ValueError, RecursionError):
        record = _lenient(digest, payload, media_type, pushed_at)
        return dataclasses.replace(record, signatures=_unique(signatures))
    config = () if manifest.config is None else (manifest.config,)
    children = manifest.manifests if manifest.media_type in _INDEX_TYPES else ()
    return ManifestRecord(
        digest=digest,
        media_type=media_type,
        size=len(payload),
        blobs=_unique(d.digest for d in (*config, *manifest.layers)),
        children=_unique(d.digest for d in children),
        subject=manifest.subject.digest if manifest.subject is not None else None,
        artifact_type=manifest.artifact_type,
        annotations=dict(manifest.annotations) if manifest.annotations else None,
        signatures=_unique(signatures),
        pushed_at=pushed_at,
    )


def _lenient(
    digest: Digest, payload: bytes, media_type: str, pushed_at: float | None
) -> ManifestRecord:
    refs = lenient_references(payload)
    if refs is None:
        return ManifestRecord(digest, media_type, len(payload), pushed_at=pushed_at)
    return ManifestRecord(
        digest=digest,
        media_type=media_type,
        size=len(payload),
        blobs=_unique(refs.blobs),
        children=_unique(refs.children),
        subject=refs.subject,
        artifact_type=refs.artifact_type,
        pushed_at=pushed_at,
    )
