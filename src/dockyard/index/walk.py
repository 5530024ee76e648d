"""Reading a repository's metadata from the storage layout (what the index must equal)."""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
from collections.abc import AsyncIterator

from dockyard.digest import Digest, InvalidDigest
from dockyard.errors import ManifestUnknown, NameUnknown
from dockyard.index.base import RepositoryState
from dockyard.index.records import manifest_record
from dockyard.storage import paths
from dockyard.storage.blobs import BlobStore
from dockyard.storage.drivers.base import PathNotFound, StorageDriver
from dockyard.storage.manifests import ManifestStore
from dockyard.storage.metadata import StorageMetadataIndex
from dockyard.storage.tags import TagStore

__all__ = ["StorageWalker"]

_PAGE = 1000
_CONCURRENCY = 16


class StorageWalker:
    """The layout's repositories, and each one's tags, revisions, links and sizes."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver
        self.blobs = BlobStore(driver)
        self._listing = StorageMetadataIndex(driver, self.blobs, read_only=True)
        self._limit = asyncio.Semaphore(_CONCURRENCY)

    async def repositories(self) -> AsyncIterator[str]:
        """Every repository name, in catalog order."""
        last = ""
        while True:
            page = await self._listing.repositories(_PAGE, last)
            for name in page.entries:
                yield name
            if not page.more or not page.entries:
                return
            last = page.entries[-1]

    async def _digests(self, root: str) -> list[Digest]:
        """``<root>/<alg>/<hex>`` directories that hold a ``link``."""
        try:
            algorithms = await self.driver.list(root)
        except PathNotFound:
            return []
        found: list[Digest] = []
        for alg_dir in algorithms:
            algorithm = posixpath.basename(alg_dir)
            try:
                entries = await self.driver.list(alg_dir)
            except PathNotFound:
                continue
            for entry in entries:
                with contextlib.suppress(InvalidDigest):
                    found.append(Digest.parse(f"{algorithm}:{posixpath.basename(entry)}"))
        return found

    async def _size(self, digest: Digest) -> int | None:
        async with self._limit:
            try:
                return (await self.driver.stat(paths.blob_data_path(digest))).size
            except (PathNotFound, InvalidDigest):
                return None

    async def _linked(self, link: str) -> bool:
        async with self._limit:
            try:
                await self.driver.stat(link)
            except PathNotFound:
                return False
            return True

    async def repository(self, name: str) -> RepositoryState:
        """What the layout holds for ``name`` (empty if it holds nothing)."""
        state = RepositoryState(name)
        tags = TagStore(self.driver, name)
        try:
            tag_names = await tags.all()
            state.has_tags = True
        except NameUnknown:
            tag_names = []

        async def current(tag: str) -> tuple[str, Digest | None]:
            async with self._limit:
                try:
                    return tag, await tags.get(tag)
                except ManifestUnknown:
                    return tag, None

        for tag, digest in await asyncio.gather(*(current(t) for t in tag_names)):
            if digest is not None:
                state.tags[tag] = digest

        manifests = ManifestStore(self.driver, self.blobs, name)

        async def revision(digest: Digest) -> None:
            async with self._limit:
                try:
                    canonical = await manifests.linked(digest)
                    payload = await manifests.read(canonical)
                except (ManifestUnknown, PathNotFound, InvalidDigest):
                    return
            signatures = await self._digests(paths.manifest_signatures_path(name, digest))
            state.manifests[digest] = manifest_record(digest, payload, signatures=signatures)

        revisions = await self._digests(paths.manifest_revisions_root(name))
        await asyncio.gather(*(revision(d) for d in revisions))

        layers = await self._digests(paths.layers_root(name))
        linked = await asyncio.gather(
            *(self._linked(paths.layer_link_path(name, d)) for d in layers)
        )
        state.layers = {d for d, ok in zip(layers, linked, strict=True) if ok}
        wanted = sorted({*state.layers, *state.manifests}, key=str)
        sizes = await asyncio.gather(*(self._size(d) for d in wanted))
        state.sizes = {d: s for d, s in zip(wanted, sizes, strict=True) if s is not None}
        return state
