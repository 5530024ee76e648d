"""The global content store and the per-repository links into it.

A repository sees a blob only through a link file holding the canonical digest;
the bytes live once under ``blobs/``. Links are written after the content is in
place, so a blob is never visible before it is complete and verified.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

from dockyard.digest import Digest, InvalidDigest
from dockyard.errors import BlobUnknown
from dockyard.storage import paths
from dockyard.storage.drivers.base import (
    PathNotFound,
    StorageDriver,
    get_many,
    stat_many,
)
from dockyard.types import BlobDescriptor, BlobDescriptorService

__all__ = ["BlobStatter", "BlobStore", "LinkPathFn", "LinkedBlobStatter", "LinkedBlobStore"]

LinkPathFn = Callable[[str, Digest], str]


class BlobStatter:
    """Descriptors of the content store, read from the layout (the data file's size)."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver

    async def stat(self, digest: Digest) -> BlobDescriptor:
        try:
            info = await self.driver.stat(paths.blob_data_path(digest))
        except PathNotFound:
            raise BlobUnknown(str(digest)) from None
        if info.is_dir:
            raise BlobUnknown(str(digest))
        return BlobDescriptor(digest, info.size)

    async def stat_many(self, digests: Sequence[Digest]) -> list[BlobDescriptor | None]:
        infos = await stat_many(self.driver, [paths.blob_data_path(d) for d in digests])
        return [
            None if info is None or info.is_dir else BlobDescriptor(digest, info.size)
            for digest, info in zip(digests, infos, strict=True)
        ]

    async def clear(self, digest: Digest) -> None:
        """Nothing to forget: the layout is the record (the store deletes the data)."""


class BlobStore:
    """Content-addressed bytes under ``blobs/``, shared by every repository.

    Descriptors come from ``statter`` (by default the layout itself); a cache is
    put in front by wrapping it (:class:`dockyard.cache.base.CachedBlobStatter`).
    """

    def __init__(self, driver: StorageDriver, statter: BlobDescriptorService | None = None) -> None:
        self.driver = driver
        self.statter: BlobDescriptorService = statter or BlobStatter(driver)

    async def stat(self, digest: Digest) -> BlobDescriptor:
        return await self.statter.stat(digest)

    async def stat_many(self, digests: Sequence[Digest]) -> list[BlobDescriptor | None]:
        return await self.statter.stat_many(digests)

    async def get(self, digest: Digest) -> bytes:
        """The whole blob: only for small blobs such as manifests and configs."""
        try:
            return await self.driver.get_content(paths.blob_data_path(digest))
        except PathNotFound:
            raise BlobUnknown(str(digest)) from None

    async def put(self, data: bytes, digest: Digest | None = None) -> BlobDescriptor:
        """Store small content directly, atomically (``digest``: already verified sha256)."""
        digest = digest or Digest.of(data)
        await self.driver.put_content(*self.content_write(data, digest))
        return BlobDescriptor(digest, len(data))

    @staticmethod
    def content_write(data: bytes, digest: Digest) -> tuple[str, bytes]:
        """The file :meth:`put` writes, for a caller that writes it with others
        (:func:`~dockyard.storage.drivers.base.put_many`)."""
        return paths.blob_data_path(digest), data

    def reader(self, digest: Digest, offset: int = 0) -> AsyncIterator[bytes]:
        return self.driver.reader(paths.blob_data_path(digest), offset)

    def local_path(self, digest: Digest) -> str | None:
        return self.driver.local_path(paths.blob_data_path(digest))

    async def redirect_url(self, digest: Digest, method: str) -> str | None:
        return await self.driver.redirect_url(paths.blob_data_path(digest), method)

    async def delete(self, digest: Digest) -> None:
        await self.statter.clear(digest)
        try:
            await self.driver.delete(paths.blob_dir_path(digest))
        except PathNotFound:
            raise BlobUnknown(str(digest)) from None


class LinkedBlobStatter:
    """One repository's descriptors, read through its link files.

    ``link_paths`` lists where links are written (first) and looked for (all, in
    order), so manifests can also be found where distribution 2.1.0 put them.
    Clearing a digest removes the repository's link (as distribution's
    ``linkedBlobStatter.Clear``).
    """

    __slots__ = ("blobs", "driver", "link_paths", "repository")

    def __init__(
        self,
        driver: StorageDriver,
        blobs: BlobStore,
        repository: str,
        link_paths: Sequence[LinkPathFn] = (paths.layer_link_path,),
    ) -> None:
        self.driver = driver
        self.blobs = blobs
        self.repository = repository
        self.link_paths = tuple(link_paths)

    async def resolve(self, digest: Digest) -> Digest:
        """The canonical digest a link for ``digest`` points to."""
        return await self._resolve(digest, self.link_paths)

    async def _resolve(self, digest: Digest, link_paths: Sequence[LinkPathFn]) -> Digest:
        for link_path in link_paths:
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
        """The linked content's descriptor, under its canonical digest."""
        return await self.blobs.stat(await self.resolve(digest))

    async def stat_many(self, digests: Sequence[Digest]) -> list[BlobDescriptor | None]:
        """:meth:`stat` of each: the links read in one batch, then the content store
        asked once for all of them (its descriptor cache first, when it has one)."""
        canonical = await self.resolve_many(digests)
        found = iter(await self.blobs.stat_many([c for c in canonical if c is not None]))
        return [None if target is None else next(found) for target in canonical]

    async def resolve_many(self, digests: Sequence[Digest]) -> list[Digest | None]:
        """:meth:`resolve` of each (None: not linked), the first link of every digest
        read in one batch (one thread hop on the filesystem)."""
        first = self.link_paths[0]
        found = await get_many(self.driver, [first(self.repository, d) for d in digests])
        out: list[Digest | None] = []
        for digest, raw in zip(digests, found, strict=True):
            try:
                if raw is not None:
                    out.append(Digest.parse(raw.decode("ascii", "replace").strip()))
                    continue
            except InvalidDigest:
                pass
            try:  # not at the first place: the older ones, one by one (rare)
                out.append(await self._resolve(digest, self.link_paths[1:]))
            except BlobUnknown:
                out.append(None)
        return out

    async def clear(self, digest: Digest) -> None:
        await self.resolve(digest)
        link_path = self.link_paths[0](self.repository, digest)
        try:
            await self.driver.delete(paths.link_dir(link_path))
        except PathNotFound:
            raise BlobUnknown(str(digest)) from None


class LinkedBlobStore:
    """One repository's view of the content store, through link files.

    Descriptors come from ``statter``: the links themselves, or (for layers, as in
    distribution) a cache wrapped around them, so a blob HEAD can skip storage.
    """

    __slots__ = ("blobs", "links", "statter")

    def __init__(
        self, links: LinkedBlobStatter, statter: BlobDescriptorService | None = None
    ) -> None:
        self.links = links
        self.blobs = links.blobs
        self.statter: BlobDescriptorService = statter or links

    async def resolve(self, digest: Digest) -> Digest:
        """The canonical digest a link for ``digest`` points to."""
        return await self.links.resolve(digest)

    async def stat(self, digest: Digest) -> BlobDescriptor:
        """The blob as this repository names it (``digest``, maybe not the canonical one)."""
        desc = await self.statter.stat(digest)
        return desc if desc.digest == digest else BlobDescriptor(digest, desc.size, desc.media_type)

    async def present(self, digests: Sequence[Digest]) -> list[bool]:
        """Whether each blob is linked here and stored: the links read from storage in
        one batch (another worker may have removed one), the content's presence from
        the global descriptor cache where it has it (content under a digest never
        changes; garbage collection that runs beside the server clears it or goes
        through the fence), the rest stat'ed in one batch."""
        return [desc is not None for desc in await self.links.stat_many(digests)]

    async def link(self, canonical: Digest, *aliases: Digest) -> None:
        """Make ``canonical`` (and the same content under ``aliases``) visible here."""
        for path, data in self.link_writes(canonical, *aliases):
            await self.links.driver.put_content(path, data)

    def link_writes(self, canonical: Digest, *aliases: Digest) -> list[tuple[str, bytes]]:
        """The files :meth:`link` writes, for a caller that writes them with others
        (:func:`~dockyard.storage.drivers.base.put_many`)."""
        links = self.links
        return [
            (links.link_paths[0](links.repository, digest), str(canonical).encode())
            for digest in dict.fromkeys((canonical, *aliases))
        ]

    async def unlink(self, digest: Digest) -> None:
        """Remove the repository's link; the content stays for garbage collection."""
        await self.statter.clear(digest)
