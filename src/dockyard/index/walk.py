"""Reading a repository's metadata from the storage layout (what the index must equal)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence

from dockyard.digest import Digest, InvalidDigest
from dockyard.errors import ManifestUnknown
from dockyard.index.base import RepositoryState
from dockyard.index.records import manifest_record
from dockyard.storage import paths
from dockyard.storage.blobs import BlobStore
from dockyard.storage.drivers.base import FileInfo, PathNotFound, StorageDriver
from dockyard.storage.manifests import ManifestStore
from dockyard.storage.metadata import StorageMetadataIndex
from dockyard.storage.tags import TagStore

__all__ = ["RepositoryListing", "StorageWalker"]

_PAGE = 1000
_CONCURRENCY = 16
_SIZES_KEPT = 200_000
_TAG_READS = 1000
"""Current links read in one batch (one thread hop on the filesystem)."""
_REPOSITORY_MARKERS = frozenset({"_layers", "_manifests"})
"""What makes a directory a repository (as the catalog walk decides)."""


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

    async def listings(self) -> AsyncIterator[RepositoryListing]:
        """Every repository's entries, from one walk of the whole ``repositories/``
        tree: on S3 one flat, paged listing (a thousand keys a request) instead of a
        listing per directory on the way to each repository and three in it.

        A repository's entries all lie below ``<name>/``, and a depth-first walk (key
        order on an object store) yields that subtree without a break: a repository is
        complete once an entry outside it comes. Names nest (``a`` and ``a/b``), so the
        open ones form a stack.
        """
        root = paths.REPOSITORIES_ROOT
        skip = len(root) + 1
        open_: list[RepositoryListing] = []
        try:
            async for info in self.driver.walk(root):
                rel = info.path[skip:]
                while open_ and not rel.startswith(open_[-1].prefix):
                    yield open_.pop()
                parts = rel.split("/")
                # The repository is what precedes its first "_" component, as the
                # catalog walk never enters one (_uploads and others are not listed).
                at = next((i for i, p in enumerate(parts) if p.startswith("_")), 0)
                if at == 0 or parts[at] not in _REPOSITORY_MARKERS:
                    continue
                name = "/".join(parts[:at])
                if not open_ or open_[-1].name != name:
                    open_.append(RepositoryListing(name))
                open_[-1].add(parts[at:], info)
        except PathNotFound:
            pass
        while open_:
            yield open_.pop()

    async def repository(self, name: str) -> RepositoryState:
        """What the layout holds for ``name`` (empty if it holds nothing)."""
        listing = RepositoryListing(name)
        where = {paths.layers_root(name): ("_layers",),
                 paths.manifest_revisions_root(name): ("_manifests", "revisions"),
                 paths.tags_root(name): ("_manifests", "tags")}
        trees = await asyncio.gather(*(self._tree(root) for root in where))
        for above, tree in zip(where.values(), trees, strict=True):
            for parts, info in tree:
                listing.add((*above, *parts), info)
        if not listing.has_tags:
            try:
                await self.driver.list(paths.tags_root(name))
                listing.has_tags = True  # an empty tag directory (filesystem)
            except PathNotFound:
                pass
        return await self.state(listing)

    async def state(self, listing: RepositoryListing) -> RepositoryState:
        """The repository ``listing`` found: its revisions read, tags resolved, sizes."""
        name = listing.name
        state = RepositoryState(name, has_tags=listing.has_tags)
        manifests = ManifestStore(self.driver, self.blobs, name)
        # Revisions and their schema1 signatures: <alg>/<hex>[/signatures/<alg>/<hex>].
        revisions: dict[Digest, list[Digest]] = {}
        for parts, _ in listing.revisions:
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
            d for parts, _ in listing.layers
            if len(parts) == 3 and parts[2] == "link" and (d := _digest(parts[0:2])) is not None
        }
        await self._tags(state, listing.tags)
        wanted = sorted({*state.layers, *state.manifests}, key=str)
        sizes = await asyncio.gather(*(self._size(d) for d in wanted))
        state.sizes = {d: s for d, s in zip(wanted, sizes, strict=True) if s is not None}
        return state

    async def _tags(self, state: RepositoryState,
                    entries: list[tuple[tuple[str, ...], FileInfo]]) -> None:
        """Tags from the listing of the tags directory. Where the listing has entity
        tags (S3), a current link whose entity tag is the MD5 of one of the tag's
        ``index/`` digests names that digest; any other (the filesystem's, multipart,
        encrypted, other content) is read."""
        tags = TagStore(self.driver, state.name)
        current: dict[str, str | None] = {}
        candidates: dict[str, dict[str, Digest]] = {}
        for parts, info in entries:
            tag = parts[0]
            if parts[1:] == ("current", "link") and not info.is_dir:
                current[tag] = info.etag
            elif len(parts) == 5 and parts[1] == "index" and parts[4] == "link" and info.etag:
                digest = _digest(parts[2:4])
                if digest is not None:
                    link = str(digest).encode()
                    md5 = hashlib.md5(link, usedforsecurity=False).hexdigest()
                    candidates.setdefault(tag, {})[md5] = digest
        unread: list[str] = []
        for tag, etag in current.items():
            known = candidates.get(tag, {}).get(etag) if etag else None
            if known is not None:
                state.tags[tag] = known
            else:
                unread.append(tag)

        # In batches: a read per tag costs a thread hop (filesystem) or a request each.
        for at in range(0, len(unread), _TAG_READS):
            batch = unread[at:at + _TAG_READS]
            for tag, digest in zip(batch, await tags.get_many(batch), strict=True):
                if digest is not None:
                    state.tags[tag] = digest


class RepositoryListing:
    """One repository's entries found by a walk, split by where they lie: components
    below ``_manifests/revisions``, ``_layers`` and ``_manifests/tags``."""

    __slots__ = ("has_tags", "layers", "name", "prefix", "revisions", "tags")

    def __init__(self, name: str) -> None:
        self.name = name
        self.prefix = f"{name}/"
        self.has_tags = False
        self.revisions: list[tuple[tuple[str, ...], FileInfo]] = []
        self.layers: list[tuple[tuple[str, ...], FileInfo]] = []
        self.tags: list[tuple[tuple[str, ...], FileInfo]] = []

    def add(self, parts: Sequence[str], info: FileInfo) -> None:
        """An entry at ``parts`` below the repository (``_layers/...``, ``_manifests/...``)."""
        if parts[0] == "_layers":
            if len(parts) > 1:
                self.layers.append((tuple(parts[1:]), info))
        elif len(parts) > 1 and parts[1] == "revisions":
            if len(parts) > 2:
                self.revisions.append((tuple(parts[2:]), info))
        elif len(parts) > 1 and parts[1] == "tags":
            self.has_tags = True
            if len(parts) > 2:
                self.tags.append((tuple(parts[2:]), info))


def _digest(parts: tuple[str, ...]) -> Digest | None:
    """``(<alg>, <hex>)`` of a layout path as a digest; None if it is not one."""
    if len(parts) < 2:
        return None
    try:
        return Digest.parse(f"{parts[0]}:{parts[1]}")
    except InvalidDigest:
        return None
