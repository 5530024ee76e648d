"""Reading a manifest revision as it is served: payload, media type, schema1 signatures."""

from __future__ import annotations

import json

from dockyard.digest import Digest
from dockyard.errors import ManifestInvalid
from dockyard.manifest import (
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_SIGNED,
    SCHEMA1_UNSIGNED,
    merge_schema1_signatures,
)
from dockyard.storage.manifests import ManifestStore
from dockyard.types import StoredManifest

__all__ = ["StoredManifestReader"]


class StoredManifestReader:
    """A repository's revisions read from storage (the :class:`ManifestReader` a cache wraps)."""

    def __init__(self, manifests: ManifestStore) -> None:
        self.manifests = manifests

    async def read(self, digest: Digest, canonical: Digest | None) -> StoredManifest:
        payload = await (
            self.manifests.read(canonical) if canonical is not None
            else self.manifests.get_payload(digest)
        )
        media_type = _stored_media_type(payload)
        if media_type in (SCHEMA1_SIGNED, SCHEMA1_UNSIGNED):
            signatures = await self.manifests.signatures(digest)
            if signatures:
                try:
                    merged = merge_schema1_signatures(payload, signatures)
                except ValueError as exc:
                    raise ManifestInvalid(f"stored signatures of {digest} are unusable") from exc
                return StoredManifest(digest, SCHEMA1_SIGNED, merged)
            return StoredManifest(digest, SCHEMA1_UNSIGNED, payload)
        return StoredManifest(digest, media_type, payload)

    def forget(self, digest: Digest) -> None:
        """Nothing to forget: storage is the record."""


def _stored_media_type(payload: bytes) -> str:
    """The media type of a stored payload, sniffed as distribution does on read."""
    try:
        document = json.loads(payload)
    except ValueError:
        raise ManifestInvalid("stored manifest is not JSON") from None
    if not isinstance(document, dict):
        raise ManifestInvalid("stored manifest is not a JSON object")
    media_type = document.get("mediaType")
    if isinstance(media_type, str) and media_type:
        return media_type
    if document.get("schemaVersion") == 1:
        return SCHEMA1_UNSIGNED
    return OCI_INDEX if "manifests" in document else OCI_MANIFEST
