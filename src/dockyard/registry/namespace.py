"""Namespace -> Repository: what the HTTP layer calls, one method per operation.

Policy lives here (deletes enabled, read-only mode, name validation); the
mechanics of the storage layout live in :mod:`dockyard.storage`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from dockyard.digest import CANONICAL_ALGORITHM, Digest
from dockyard.names import is_valid_repository_name
from dockyard.registry.errors import BlobUnknown, NameInvalid, ReadOnly, Unsupported
from dockyard.registry.types import BlobDescriptor, UploadStatus
from dockyard.storage.blobs import BlobStore, LinkedBlobStore
from dockyard.storage.drivers.base import StorageDriver
from dockyard.storage.uploads import UploadStore

__all__ = ["BlobContent", "Namespace", "RegistryOptions", "Repository"]


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """Policies from config.yml's ``storage`` section."""

    delete_enabled: bool = False
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class BlobContent:
    """A blob ready to be served: its descriptor and where its bytes are."""

    descriptor: BlobDescriptor
    canonical: Digest
    store: BlobStore

    def local_path(self) -> str | None:
        return self.store.local_path(self.canonical)

    def reader(self, offset: int = 0) -> AsyncIterator[bytes]:
        return self.store.reader(self.canonical, offset)

    async def redirect_url(self, method: str) -> str | None:
        return await self.store.redirect_url(self.canonical, method)


class Namespace:
    """Every repository of one registry, over one storage driver."""

    def __init__(self, driver: StorageDriver, options: RegistryOptions) -> None:
        self.driver = driver
        self.options = options
        self.blobs = BlobStore(driver)

    def repository(self, name: str) -> Repository:
        """The repository ``name``; raises :class:`NameInvalid` before any path is built."""
        if not is_valid_repository_name(name):
            raise NameInvalid(f"invalid repository name {name[:300]!r}")
        return Repository(self, name)


class Repository:
    """Blobs and uploads of one repository."""

    def __init__(self, namespace: Namespace, name: str) -> None:
        self.namespace = namespace
        self.name = name
        self.layers = LinkedBlobStore(namespace.driver, namespace.blobs, name)
        self._uploads = UploadStore(namespace.driver, name, self.layers)

    def _writable(self) -> None:
        if self.namespace.options.read_only:
            raise ReadOnly()

    async def stat_blob(self, digest: Digest) -> BlobDescriptor:
        return await self.layers.stat(digest)

    async def open_blob(self, digest: Digest) -> BlobContent:
        canonical = await self.layers.resolve(digest)
        desc = await self.namespace.blobs.stat(canonical)
        return BlobContent(BlobDescriptor(digest, desc.size), canonical, self.namespace.blobs)

    async def delete_blob(self, digest: Digest) -> None:
        if not self.namespace.options.delete_enabled:
            raise Unsupported("deletes are disabled (storage.delete.enabled)")
        self._writable()
        await self.layers.unlink(digest)

    async def mount_blob(self, digest: Digest, source: Repository | None) -> BlobDescriptor | None:
        """Link a blob from ``source`` (or, with no source, from anywhere in the registry).

        Returns None when it cannot be mounted, so the caller starts a normal upload.
        """
        self._writable()
        try:
            if source is not None:
                canonical = await source.layers.resolve(digest)
            elif digest.algorithm == CANONICAL_ALGORITHM:
                canonical = digest
            else:
                return None
            desc = await self.namespace.blobs.stat(canonical)
        except BlobUnknown:
            return None
        await self.layers.link(canonical, digest)
        return BlobDescriptor(digest, desc.size)

    async def start_upload(self) -> UploadStatus:
        self._writable()
        return await self._uploads.create()

    async def upload_status(self, upload_id: str, claimed: int | None) -> UploadStatus:
        return await self._uploads.status(upload_id, claimed)

    async def write_upload(
        self,
        upload_id: str,
        body: AsyncIterator[bytes],
        *,
        claimed: int | None,
        start: int | None = None,
        length: int | None = None,
    ) -> UploadStatus:
        self._writable()
        return await self._uploads.write(
            upload_id, body, claimed=claimed, start=start, length=length
        )

    async def finish_upload(
        self,
        upload_id: str,
        digest: Digest,
        body: AsyncIterator[bytes] | None,
        *,
        claimed: int | None,
        start: int | None = None,
        length: int | None = None,
    ) -> BlobDescriptor:
        self._writable()
        return await self._uploads.commit(
            upload_id, digest, body, claimed=claimed, start=start, length=length
        )

    async def cancel_upload(self, upload_id: str) -> None:
        self._writable()
        await self._uploads.cancel(upload_id)
