"""Value types shared by the layers: blob descriptors and upload status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from dockyard.digest import Digest

__all__ = [
    "BLOB_MEDIA_TYPE",
    "BlobDescriptor",
    "BlobDescriptorService",
    "ManifestReader",
    "StoredManifest",
    "UploadStatus",
]

BLOB_MEDIA_TYPE = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class BlobDescriptor:
    """A blob as a repository sees it: what to call it, how big, where its bytes are."""

    digest: Digest
    size: int
    media_type: str = BLOB_MEDIA_TYPE


@dataclass(frozen=True, slots=True)
class UploadStatus:
    """Where an upload stands: bytes acknowledged so far."""

    upload_id: str
    offset: int
    started_at: datetime


class BlobDescriptorService(Protocol):
    """Where descriptors come from: the storage layout, or a cache wrapped around it.

    Stores hold one (distribution's ``BlobDescriptorService``), so a cache is added
    by wrapping it rather than by branches inside the store.
    """

    async def stat(self, digest: Digest) -> BlobDescriptor:
        """The content ``digest`` names (through a link: under its canonical digest).

        Raises BlobUnknown.
        """
        ...

    async def stat_many(self, digests: Sequence[Digest]) -> list[BlobDescriptor | None]:
        """:meth:`stat` of each of ``digests`` (None: unknown) in as few round trips
        as the store allows (a manifest's fifty layers: one thread hop on the
        filesystem, none for those a cache holds)."""
        ...

    async def clear(self, digest: Digest) -> None:
        """Forget ``digest``: a cache drops its entry, a store its link."""
        ...


@dataclass(frozen=True, slots=True)
class StoredManifest:
    """A manifest as served: the bytes, their media type, and the revision digest."""

    digest: Digest
    media_type: str
    body: bytes
    digest_text: str = field(init=False, repr=False, compare=False)
    """``str(digest)``, made once: a served manifest is kept by the manifest cache and
    its digest's text is wanted again by every pull's event (a few dozen bytes beside
    the body; a Digest does not keep its text, issue 15)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest_text", str(self.digest))


class ManifestReader(Protocol):
    """Reads a repository's manifest revision, from storage or a cache in front of it."""

    async def read(self, digest: Digest, canonical: Digest | None) -> StoredManifest:
        """The revision ``digest``; ``canonical`` when its link was already read."""
        ...

    def forget(self, digest: Digest) -> None:
        """The revision was deleted: a cache drops it."""
        ...
