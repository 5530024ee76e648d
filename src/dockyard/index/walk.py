"""Reading a repository's metadata from the storage layout (what the index must equal)."""

from __future__ import annotations

import asyncio
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

    async def _tree(self, root: str) -> list[tuple[str, ...]]:
        """The path components of every file and directory below ``root``.

        One flat, paged listing on S3 (ListObjectsV2 without a delimiter); the other
        drivers walk directory by directory, as their ``walk`` does.
        """
        skip = len(root) + 1
        try:
            return [tuple(info.path[skip:].split("/")) async for info in self.driver.walk(root)]
        except PathNotFound:
            return []

    async def _size(self, digest: Digest) -> int | None:
        async with self._limit:
            try:
                return (await self.driver.stat(paths.blob_data_path(digest))).size
            except (PathNotFound, InvalidDigest):
                return None

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
        # Revisions and their schema1 signatures: <alg>/<hex>[/signatures/<alg>/<hex>].
        revisions: dict[Digest, list[Digest]] = {}
        for parts in await self._tree(paths.manifest_revisions_root(name)):
            found = _digest(parts[0:2])
            if found is None:
                continue
            signatures = revisions.setdefault(found, [])
            if len(parts) >= 5 and parts[2] == "signatures":
                signature = _digest(parts[3:5])
                if signature is not None and signature not in signatures:
                    signatures.append(signature)

        async def revision(digest: Digest, signatures: list[Digest]) -> None:
            async with self._limit:
                try:
                    canonical = await manifests.linked(digest)
                    payload = await manifests.read(canonical)
                except (ManifestUnknown, PathNotFound, InvalidDigest):
                    return
            state.manifests[digest] = manifest_record(digest, payload, signatures=signatures)

        await asyncio.gather(*(revision(d, s) for d, s in revisions.items()))

        # A layer counts when its directory holds a ``link`` file.
        state.layers = {
            d for parts in await self._tree(paths.layers_root(name))
            if len(parts) == 3 and parts[2] == "link" and (d := _digest(parts[0:2])) is not None
        }
        wanted = sorted({*state.layers, *state.manifests}, key=str)
        sizes = await asyncio.gather(*(self._size(d) for d in wanted))
        state.sizes = {d: s for d, s in zip(wanted, sizes, strict=True) if s is not None}
        return state


def _digest(parts: tuple[str, ...]) -> Digest | None:
    """``(<alg>, <hex>)`` of a layout path as a digest; None if it is not one."""
    if len(parts) < 2:
        return None
    try:
        return Digest.parse(f"{parts[0]}:{parts[1]}")
    except InvalidDigest:
        return None
