"""Tags under ``_manifests/tags/<tag>/``: ``current/link`` plus an ``index`` of every revision."""

from __future__ import annotations

import asyncio

from dockyard.digest import Digest, InvalidDigest
from dockyard.errors import ManifestUnknown, NameUnknown
from dockyard.storage import paths
from dockyard.storage.drivers.base import PathNotFound, StorageDriver, put_many

__all__ = ["TagStore"]


class TagStore:
    """The tags of one repository."""

    def __init__(self, driver: StorageDriver, repository: str) -> None:
        self.driver = driver
        self.repository = repository

    async def get(self, tag: str) -> Digest:
        try:
            raw = await self.driver.get_content(paths.tag_current_link_path(self.repository, tag))
            return Digest.parse(raw.decode("ascii", "replace").strip())
        except (PathNotFound, InvalidDigest):
            raise ManifestUnknown(f"unknown tag {tag}") from None

    def tag_writes(self, tag: str, digest: Digest) -> list[tuple[str, bytes]]:
        """The files that point ``tag`` at ``digest``: index entry first, then ``current``
        (as distribution), for :func:`~dockyard.storage.drivers.base.put_many`."""
        link = str(digest).encode()
        return [
            (paths.tag_index_entry_link_path(self.repository, tag, digest), link),
            (paths.tag_current_link_path(self.repository, tag), link),
        ]

    async def tag(self, tag: str, digest: Digest) -> None:
        """Point ``tag`` at ``digest``."""
        await put_many(self.driver, self.tag_writes(tag, digest))

    async def untag(self, tag: str) -> None:
        try:
            await self.driver.delete(paths.tag_path(self.repository, tag))
        except PathNotFound:
            raise ManifestUnknown(f"unknown tag {tag}") from None

    async def all(self) -> list[str]:
        """Every tag, sorted; :class:`NameUnknown` if the repository has no tag directory."""
        root = paths.tags_root(self.repository)
        try:
            entries = await self.driver.list(root)
        except PathNotFound:
            raise NameUnknown(self.repository) from None
        skip = len(root) + 1
        tags = [p[skip:] for p in entries]
        tags.sort()  # drivers list in order already: a check in one pass
        return tags

    async def lookup(self, digest: Digest) -> list[str]:
        """The tags whose ``current`` link points at ``digest``."""
        try:
            tags = await self.all()
        except NameUnknown:
            return []

        async def points_here(tag: str) -> bool:
            try:
                return await self.get(tag) == digest
            except ManifestUnknown:
                return False

        found = await asyncio.gather(*(points_here(t) for t in tags))
        return [t for t, hit in zip(tags, found, strict=True) if hit]
