"""The media type a stored manifest is served with."""

from __future__ import annotations

import json

from dockyard.errors import ManifestInvalid
from dockyard.manifest._types import OCI_INDEX, OCI_MANIFEST, SCHEMA1_UNSIGNED


def stored_media_type(payload: bytes) -> str:
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
