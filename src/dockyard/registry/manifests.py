"""Reading a manifest revision as it is served: payload, media type, schema1 signatures."""

from __future__ import annotations

from dockyard.digest import Digest
from dockyard.errors import ManifestInvalid
from dockyard.manifest import (
    SCHEMA1_SIGNED,
    SCHEMA1_UNSIGNED,
    merge_schema1_signatures,
    stored_media_type,
)
from dockyard.storage.manifests import ManifestStore
from dockyard.types import StoredManifest

__all__ = ["StoredManifestReader"]


class StoredManifestReader:
    """A repository's revisions read from storage (the :class:`ManifestReader` a cache wraps)."""

    __slots__ = ("manifests",)

    def __init__(self, manifests: ManifestStore) -> None:
        self.manifests = manifests

    async def read(self, digest: Digest, canonical: Digest | None) -> StoredManifest:
        payload = await (
            self.manifests.read(canonical) if canonical is not None
            else self.manifests.get_payload(digest)
        )
        media_type = stored_media_type(payload)
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
