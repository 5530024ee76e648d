"""Domain errors, shared by every layer below the HTTP API.

The HTTP layer maps each to a spec error code in one table (``dockyard.api.errors``)::

    RegistryFault
    ├── NameInvalid, NameUnknown
    ├── DigestInvalid, SizeInvalid
    ├── BlobUnknown, BlobUploadUnknown, BlobUploadInvalid, RangeInvalid
    ├── ManifestUnknown, ManifestInvalid, ManifestBlobUnknown, ManifestUnverified
    ├── TagInvalid, ManifestTooLarge
    ├── Unsupported (deletes disabled, operation not offered)
    ├── TagImmutable (an ``immutabletags`` rule protects the tag: DENIED)
    ├── ReadOnly (maintenance.readonly)
    ├── TooManyRequests (an upstream rate-limits: 429, Retry-After)
    └── BackendUnavailable (the storage backend failed: 5xx)

    StorageError: a storage driver operation failed (raised by the drivers, and
    re-exported by ``dockyard.storage.drivers.base``; the HTTP layer answers 503).
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailable",
    "BlobUnknown",
    "BlobUploadInvalid",
    "BlobUploadUnknown",
    "DigestInvalid",
    "ManifestBlobUnknown",
    "ManifestInvalid",
    "ManifestTooLarge",
    "ManifestUnknown",
    "ManifestUnverified",
    "NameInvalid",
    "NameUnknown",
    "RangeInvalid",
    "ReadOnly",
    "RegistryFault",
    "SizeInvalid",
    "StorageError",
    "TagImmutable",
    "TagInvalid",
    "TooManyRequests",
    "Unsupported",
]


class RegistryFault(Exception):
    """Base of every error the registry layer raises on purpose."""

    def __init__(self, message: str = "", detail: object = None) -> None:
        super().__init__(message or self.__class__.__name__)
        self.detail = detail


class NameInvalid(RegistryFault):
    """The repository name does not match the grammar."""


class NameUnknown(RegistryFault):
    """The repository is not known to the registry."""


class DigestInvalid(RegistryFault):
    """A digest is malformed, unsupported, or does not match the content."""


class SizeInvalid(RegistryFault):
    """Content length does not match what was announced."""


class BlobUnknown(RegistryFault):
    """The blob is not linked in (or not present for) the repository."""


class BlobUploadUnknown(RegistryFault):
    """No upload with that id exists."""


class BlobUploadInvalid(RegistryFault):
    """The upload state token is bad, or the upload cannot continue."""


class RangeInvalid(RegistryFault):
    """A chunk does not start at the upload's current offset."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class ManifestUnknown(RegistryFault):
    """No manifest for that tag or digest."""


class ManifestInvalid(RegistryFault):
    """The manifest is malformed or fails validation."""


class ManifestBlobUnknown(RegistryFault):
    """A manifest references a blob or manifest the repository lacks."""


class ManifestUnverified(RegistryFault):
    """A signed schema1 manifest failed signature verification."""


class ManifestTooLarge(RegistryFault):
    """A manifest body exceeds the size limit."""


class TagInvalid(RegistryFault):
    """The tag does not match the grammar."""


class TagImmutable(RegistryFault):
    """A manifest PUT would move, or a delete would remove, a tag a rule makes immutable.

    ``detail`` names the rule, the tag and the digest it keeps pointing at.
    """


class Unsupported(RegistryFault):
    """The operation is not offered (e.g. deletes are disabled)."""


class ReadOnly(RegistryFault):
    """The registry is in read-only maintenance mode."""


class TooManyRequests(RegistryFault):
    """A backend (a proxied upstream) asks the client to slow down."""

    def __init__(self, message: str = "", retry_after: str = "60") -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BackendUnavailable(RegistryFault):
    """The storage backend failed or cannot be reached; the client may retry."""


class StorageError(Exception):
    """A driver operation failed (the backend is broken or unreachable)."""

    def __init__(self, message: str, driver: str = "") -> None:
        super().__init__(f"{driver}: {message}" if driver else message)
        self.driver = driver
