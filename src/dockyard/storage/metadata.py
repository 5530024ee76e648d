"""The metadata index answered from the storage layout itself.

The catalog walks ``repositories/`` depth first with children sorted, which is
distribution's order (names compared with ``/`` as the lowest character). A page
after ``last`` skips every subtree that lies wholly before it, and a walk never
enters ``_layers``/``_manifests``/``_uploads``: one listing per directory on the
way to the ``n`` names of the page, never a walk of blobs or tags. Sibling
directories are listed in batches (:func:`~dockyard.storage.drivers.base.list_many`).
"""

from __future__ import annotations

import bisect

from dockyard.digest import Digest
from dockyard.metadata import Page
from dockyard.storage import paths
from dockyard.storage.blobs import BlobStore
from dockyard.storage.drivers.base import PathNotFound, StorageDriver, list_many
from dockyard.storage.manifests import ManifestStore
from dockyard.storage.tags import TagStore

__all__ = ["StorageMetadataIndex", "catalog_key", "paginate"]

_REPOSITORY_MARKERS = frozenset({"_layers", "_manifests"})
# Directories listed together by the catalog walk: the first batch of a directory's
# children, doubling up to the last.
_MIN_BATCH = 8
_MAX_BATCH = 1024


def catalog_key(name: str) -> str:
    """Sort key of the catalog: ``/`` sorts before every other character."""
    return name.replace("/", "\x00")


def paginate(items: list[str], n: int | None, last: str) -> Page:
    """The sorted ``items`` after ``last``, at most ``n`` (None: all)."""
    start = bisect.bisect_right(items, last) if last else 0
    end = len(items) if n is None else min(start + n, len(items))
    return Page(items[start:end] if start or end < len(items) else items, end < len(items))


class StorageMetadataIndex:
    """Listings by reading the layout (the original's way, pruned)."""

    def __init__(self, driver: StorageDriver, blobs: BlobStore, *, read_only: bool = False) -> None:
        self.driver = driver
        self.blobs = blobs
        # Listing referrers of a repository written without referrer links indexes
        # it (a write), unless the registry is read-only.
        self.read_only = read_only

    async def repositories(self, n: int, last: str) -> Page:
        found: list[str] = []
        last_key = catalog_key(last)

        async def visit(prefix: str, children: list[str]) -> bool:
            """Collect names below the directory of ``children``; True once n+1 are found.

            The children's own listings are fetched a batch at a time (one thread hop
            on the filesystem, concurrent round trips on an object store), batches
            doubling from a few and never bigger than the names the page still needs,
            so a page reads about as many directories as it shows names (at most twice
            as many), as the one-by-one walk did.
            """
            wanted: list[tuple[str, str]] = []
            for child in children:
                name_part = child.rsplit("/", 1)[1]
                if name_part.startswith("_"):
                    continue
                name = f"{prefix}{name_part}"
                # Everything below `name` sorts before `name` + "\x01".
                if last and catalog_key(name) + "\x01" <= last_key:
                    continue
                wanted.append((child, name))
            at, size = 0, _MIN_BATCH
            while at < len(wanted):
                # Doubling: a directory may hold one repository or a namespace of
                # thousands, so the first batch is small, the next ones grow.
                size = min(size, max(n + 1 - len(found), 1), _MAX_BATCH)
                batch = wanted[at:at + size]
                at += size
                size *= 2
                listings = await list_many(self.driver, [child for child, _ in batch])
                for (_, name), grandchildren in zip(batch, listings, strict=True):
                    if grandchildren is None:
                        continue
                    markers = {g.rsplit("/", 1)[1] for g in grandchildren}
                    if markers & _REPOSITORY_MARKERS and (
                        not last or catalog_key(name) > last_key
                    ):
                        found.append(name)
                        if len(found) > n:
                            return True
                    if any(not m.startswith("_") for m in markers) and await visit(
                        f"{name}/", grandchildren
                    ):
                        return True
            return False

        try:
            top = await self.driver.list(paths.REPOSITORIES_ROOT)
        except PathNotFound:
            top = []
        await visit("", sorted(top))
        return Page(found[:n], len(found) > n)

    async def tags(self, repository: str, n: int | None, last: str) -> Page:
        return paginate(await TagStore(self.driver, repository).all(), n, last)

    async def referrers(self, repository: str, subject: Digest) -> list[Digest]:
        store = ManifestStore(self.driver, self.blobs, repository)
        return await store.referrers(subject, may_index=not self.read_only)
