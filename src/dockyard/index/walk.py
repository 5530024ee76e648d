"""Reading a repository's metadata from the storage layout (what the index must equal)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

from dockyard.digest import Digest, InvalidDigest
from dockyard.errors import ManifestUnknown, NameUnknown
from dockyard.index.base import RepositoryState
from dockyard.index.records import manifest_record
from dockyard.storage import paths
from dockyard.storage.blobs import BlobStore
from dockyard.storage.drivers.base import FileInfo, PathNotFound, StorageDriver
from dockyard.storage.manifests import ManifestStore
from dockyard.storage.metadata import StorageMetadataIndex
from dockyard.storage.tags import TagStore

__all__ = ["StorageWalker"]

_PAGE = 1000
_CONCURRENCY = 16
_SIZES_KEPT = 200_000


class StorageWalker:
    """The layout's repositories, and each one's tags, revisions, links and sizes."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver
        self.blobs = BlobStore(driver)
        self._listing = StorageMetadataIndex(driver, self.blobs, read_only=True)
        self._limit = asyncio.Semaphore(_CONCURRENCY)
        self._sizes: dict[Digest, int | None] = {}

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

    async def _tree(self, root: str) -> list[tuple[tuple[str, ...], FileInfo]]:
        """The path components (below ``root``) and listing of every file and directory.

        One flat, paged listing on S3 (ListObjectsV2 without a delimiter); the other
        drivers walk directory by directory, as their ``walk`` does.
        """
        skip = len(root) + 1
        try:
            return [(tuple(info.path[skip:].split("/")), info)
                    async for info in self.driver.walk(root)]
        except PathNotFound:
            return []

    async def _size(self, digest: Digest) -> int | None:
        # Base layers and configs are shared by many repositories: each stat once.
        if digest in self._sizes:
            return self._sizes[digest]
        async with self._limit:
            try:
                size: int | None = (await self.driver.stat(paths.blob_data_path(digest))).size
            except (PathNotFound, InvalidDigest):
                size = None
        if len(self._sizes) >= _SIZES_KEPT:
            self._sizes.clear()  # bounded memory; a walk of that size re-stats a few
        self._sizes[digest] = size
        return size

    async def _tags_read(self, state: RepositoryState) -> None:
        """Tags from a listing of the tags directory and a read of each current link."""
        tags = TagStore(self.driver, state.name)
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

    async def _tags_listed(self, state: RepositoryState) -> None:
        """Tags from one flat listing of the tags directory: a current link whose entity
        tag is the MD5 of one of the tag's ``index/`` digests names that digest; any
        other (multipart, encrypted, other content) is read, as ``_tags_read`` does."""
        tags = TagStore(self.driver, state.name)
        entries = await self._tree(paths.tags_root(state.name))
        state.has_tags = bool(entries)
        current: dict[str, str | None] = {}
        candidates: dict[str, dict[str, Digest]] = {}
        for parts, info in entries:
            tag = parts[0]
            candidates.setdefault(tag, {})
            if parts[1:] == ("current", "link") and not info.is_dir:
                current[tag] = info.etag
            elif len(parts) == 5 and parts[1] == "index" and parts[4] == "link":
                digest = _digest(parts[2:4])
                if digest is not None:
                    link = str(digest).encode()
                    candidates[tag][hashlib.md5(link, usedforsecurity=False).hexdigest()] = digest
        unread: list[str] = []
        for tag, etag in current.items():
            known = candidates[tag].get(etag) if etag else None
            if known is not None:
                state.tags[tag] = known
            else:
                unread.append(tag)

        async def read(tag: str) -> tuple[str, Digest | None]:
            async with self._limit:
                try:
                    return tag, await tags.get(tag)
                except ManifestUnknown:
                    return tag, None

        for tag, digest in await asyncio.gather(*(read(t) for t in unread)):
            if digest is not None:
                state.tags[tag] = digest

    async def repository(self, name: str) -> RepositoryState:
        """What the layout holds for ``name`` (empty if it holds nothing)."""
        state = RepositoryState(name)
        manifests = ManifestStore(self.driver, self.blobs, name)
        # Revisions and their schema1 signatures: <alg>/<hex>[/signatures/<alg>/<hex>].
        revisions: dict[Digest, list[Digest]] = {}
        revision_tree = await self._tree(paths.manifest_revisions_root(name))
        layer_tree = await self._tree(paths.layers_root(name))
        for parts, _ in revision_tree:
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
            d for parts, _ in layer_tree
            if len(parts) == 3 and parts[2] == "link" and (d := _digest(parts[0:2])) is not None
        }
        # A listing with entity tags (S3) names each tag's candidates (its index/
        # entries) and the MD5 of its current link: no read per tag.
        if any(info.etag for _, info in (*revision_tree, *layer_tree)):
            await self._tags_listed(state)
        else:
            await self._tags_read(state)
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
