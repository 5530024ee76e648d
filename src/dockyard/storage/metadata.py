"""The metadata index answered from the storage layout itself.

The catalog walks ``repositories/`` depth first with children sorted, which is
distribution's order (names compared with ``/`` as the lowest character). A page
after ``last`` skips every subtree that lies wholly before it, and a walk never
enters ``_layers``/``_manifests``/``_uploads``: one listing per directory on the
way to the ``n`` names of the page, never a walk of blobs or tags.
"""

from __future__ import annotations

from dockyard.digest import Digest
from dockyard.metadata import Page
from dockyard.storage import paths
from dockyard.storage.blobs import BlobStore
from dockyard.storage.drivers.base import PathNotFound, StorageDriver
from dockyard.storage.manifests import ManifestStore
from dockyard.storage.tags import TagStore

__all__ = ["StorageMetadataIndex", "catalog_key", "paginate"]

_REPOSITORY_MARKERS = frozenset({"_layers", "_manifests"})


def catalog_key(name: str) -> str:
    """Sort key of the catalog: ``/`` sorts before every other character."""
    return name.replace("/", "\x00")


def paginate(items: list[str], n: int | None, last: str) -> Page:
    """The sorted ``items`` after ``last``, at most ``n`` (None: all)."""
    if last:
        items = [i for i in items if i > last]
    if n is None or len(items) <= n:
        return Page(items, False)
    return Page(items[:n], True)


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

        async def visit(directory: str, prefix: str) -> bool:
            """Collect names below ``directory``; True once n+1 are found."""
            try:
                children = sorted(await self.driver.list(directory))
            except PathNotFound:
                return False
            for child in children:
                name_part = child.rsplit("/", 1)[1]
                if name_part.startswith("_"):
                    continue
                name = f"{prefix}{name_part}"
                # Everything below `name` sorts before `name` + "\x01".
                if last and catalog_key(name) + "\x01" <= last_key:
                    continue
                try:
                    grandchildren = await self.driver.list(child)
                except PathNotFound:
                    continue
                markers = {g.rsplit("/", 1)[1] for g in grandchildren}
                if markers & _REPOSITORY_MARKERS and (not last or catalog_key(name) > last_key):
                    found.append(name)
                    if len(found) > n:
                        return True
                if any(not m.startswith("_") for m in markers) and await visit(child, f"{name}/"):
                    return True
            return False

        await visit(paths.REPOSITORIES_ROOT, "")
        return Page(found[:n], len(found) > n)

    async def tags(self, repository: str, n: int | None, last: str) -> Page:
        return paginate(await TagStore(self.driver, repository).all(), n, last)

    async def referrers(self, repository: str, subject: Digest) -> list[Digest]:
        store = ManifestStore(self.driver, self.blobs, repository)
        return await store.referrers(subject, may_index=not self.read_only)
