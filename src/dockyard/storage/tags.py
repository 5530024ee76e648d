"""Tags under ``_manifests/tags/<tag>/``: ``current/link`` plus an ``index`` of every revision."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from dockyard.digest import Digest, InvalidDigest
from dockyard.errors import ManifestUnknown, NameUnknown
from dockyard.storage import paths
from dockyard.storage.drivers.base import PathNotFound, StorageDriver, get_many, put_many

__all__ = ["TagStore"]


class TagStore:
    """The tags of one repository."""

    def __init__(self, driver: StorageDriver, repository: str) -> None:
        self.driver = driver
        self.repository = repository

    async def get(self, tag: str) -> Digest:
        try:
            raw = await self.driver.get_content(paths.tag_current_link_path(self.repository, tag))
        except PathNotFound:
            raise ManifestUnknown(f"unknown tag {tag}") from None
        digest = _link_digest(raw)
        if digest is None:
            raise ManifestUnknown(f"unknown tag {tag}")
        return digest

    async def get_many(self, tags: Sequence[str]) -> list[Digest | None]:
        """What :meth:`get` answers for each of ``tags`` (None: unknown), read together
        (one thread hop on the filesystem, concurrent requests on object stores)."""
        raws = await get_many(
            self.driver, [paths.tag_current_link_path(self.repository, t) for t in tags])
        return [None if raw is None else _link_digest(raw) for raw in raws]

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


def _link_digest(raw: bytes) -> Digest | None:
    """The digest a ``current`` link holds (trailing whitespace allowed); None if none."""
    try:
        return Digest.parse(raw.decode("ascii", "replace").strip())
    except InvalidDigest:
        return None
