"""Value types shared by the layers: blob descriptors and upload status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dockyard.digest import Digest

__all__ = ["BLOB_MEDIA_TYPE", "BlobDescriptor", "UploadStatus"]

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
