"""The global content store and the per-repository links into it.

A repository sees a blob only through a link file holding the canonical digest;
the bytes live once under ``blobs/``. Links are written after the content is in
place, so a blob is never visible before it is complete and verified.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

from dockyard.cache.base import BlobDescriptorCache
from dockyard.digest import CANONICAL_ALGORITHM, Digest, InvalidDigest
from dockyard.errors import BlobUnknown
from dockyard.storage import paths
from dockyard.storage.drivers.base import PathNotFound, StorageDriver
from dockyard.types import BlobDescriptor

__all__ = ["BlobStore", "LinkPathFn", "LinkedBlobStore"]

LinkPathFn = Callable[[str, Digest], str]


class BlobStore:
    """Content-addressed bytes under ``blobs/``, shared by every repository."""

    def __init__(self, driver: StorageDriver, cache: BlobDescriptorCache | None = None) -> None:
        self.driver = driver
        self.cache = cache

    async def stat(self, digest: Digest) -> BlobDescriptor:
        if self.cache is not None and (hit := await self.cache.get(None, digest)):
            return hit
        try:
            info = await self.driver.stat(paths.blob_data_path(digest))
        except PathNotFound:
            raise BlobUnknown(str(digest)) from None
        if info.is_dir:
            raise BlobUnknown(str(digest))
        desc = BlobDescriptor(digest, info.size)
        if self.cache is not None:
            await self.cache.set(None, desc)
        return desc

    async def get(self, digest: Digest) -> bytes:
        """The whole blob: only for small blobs such as manifests and configs."""
        try:
            return await self.driver.get_content(paths.blob_data_path(digest))
        except PathNotFound:
            raise BlobUnknown(str(digest)) from None

    async def put(self, data: bytes, digest: Digest | None = None) -> BlobDescriptor:
        """Store small content directly, atomically (``digest``: already verified sha256)."""
        digest = digest or Digest.of(data)
        await self.driver.put_content(paths.blob_data_path(digest), data)
        return BlobDescriptor(digest, len(data))

    def reader(self, digest: Digest, offset: int = 0) -> AsyncIterator[bytes]:
        return self.driver.reader(paths.blob_data_path(digest), offset)

    def local_path(self, digest: Digest) -> str | None:
        return self.driver.local_path(paths.blob_data_path(digest))

    async def redirect_url(self, digest: Digest, method: str) -> str | None:
        return await self.driver.redirect_url(paths.blob_data_path(digest), method)

    async def delete(self, digest: Digest) -> None:
        if self.cache is not None:
            await self.cache.clear(None, digest)
        try:
            await self.driver.delete(paths.blob_dir_path(digest))
        except PathNotFound:
            raise BlobUnknown(str(digest)) from None


class LinkedBlobStore:
    """One repository's view of the content store, through link files.

    ``link_paths`` lists where links are written (first) and looked for (all, in
    order), so manifests can also be found where distribution 2.1.0 put them.
    ``cache`` (layers only, as in distribution) remembers which canonical digests
    the repository links, so a blob HEAD can skip storage entirely.
    """

    def __init__(
        self,
        driver: StorageDriver,
        blobs: BlobStore,
        repository: str,
        link_paths: Sequence[LinkPathFn] = (paths.layer_link_path,),
        cache: BlobDescriptorCache | None = None,
    ) -> None:
        self.driver = driver
        self.blobs = blobs
        self.repository = repository
        self._link_paths = tuple(link_paths)
        self._cache = cache

    async def resolve(self, digest: Digest) -> Digest:
        """The canonical digest a link for ``digest`` points to."""
        for link_path in self._link_paths:
            try:
                target = await self.driver.get_content(link_path(self.repository, digest))
            except PathNotFound:
                continue
            try:
                return Digest.parse(target.decode("ascii", "replace").strip())
            except InvalidDigest:
                # A corrupt link is treated as no link, never followed.
                continue
        raise BlobUnknown(str(digest))

    async def stat(self, digest: Digest) -> BlobDescriptor:
        cached = self._cache is not None and digest.algorithm == CANONICAL_ALGORITHM
        if cached and self._cache and (hit := await self._cache.get(self.repository, digest)):
            return hit
        canonical = await self.resolve(digest)
        desc = await self.blobs.stat(canonical)
        if cached and self._cache and canonical == digest:
            await self._cache.set(self.repository, desc)
        return BlobDescriptor(digest, desc.size, desc.media_type)

    async def link(self, canonical: Digest, *aliases: Digest) -> None:
        """Make ``canonical`` (and the same content under ``aliases``) visible here."""
        link_path = self._link_paths[0]
        for digest in dict.fromkeys((canonical, *aliases)):
            await self.driver.put_content(
                link_path(self.repository, digest), str(canonical).encode()
            )

    async def unlink(self, digest: Digest) -> None:
        """Remove the repository's link; the content stays for garbage collection."""
        if self._cache is not None:
            await self._cache.clear(self.repository, digest)
        await self.resolve(digest)
        link_path = self._link_paths[0](self.repository, digest)
        try:
            await self.driver.delete(link_path.rsplit("/", 1)[0])
        except PathNotFound:
            raise BlobUnknown(str(digest)) from None
