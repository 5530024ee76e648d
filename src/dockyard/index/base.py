"""The metadata index interface (registry layer side) and the records it holds.

Storage stays the source of truth: every implementation is updated after the
storage write it describes succeeded, and can be verified against the layout
and rebuilt from it (:mod:`dockyard.index.maintain`). The read side extends the
root :class:`dockyard.metadata.MetadataIndex` (catalog, tags, referrers), so the
walking implementation (``storage.index.driver: none``) and the database ones
answer the HTTP layer alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from dockyard.digest import Digest
from dockyard.metadata import MetadataIndex

__all__ = [
    "Index",
    "ManifestRecord",
    "ReferrerRecord",
    "RepositoryState",
    "RepositoryUsage",
    "TagRecord",
]


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    """One manifest revision of a repository, as the index keeps it."""

    digest: Digest
    media_type: str
    size: int
    """Bytes of the stored payload (the revision blob)."""
    blobs: tuple[Digest, ...] = ()
    """Config and layers it names (schema1: ``fsLayers``), sorted."""
    children: tuple[Digest, ...] = ()
    """Manifests a list or index names, sorted."""
    subject: Digest | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] | None = field(default=None, hash=False)
    signatures: tuple[Digest, ...] = ()
    """Blobs holding its schema1 signatures (kept apart from the payload), sorted."""
    pushed_at: float | None = field(default=None, compare=False)
    last_pull: float | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class TagRecord:
    """A tag, the manifest it names, and when it was last moved (None: unknown)."""

    tag: str
    digest: Digest
    pushed_at: float | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ReferrerRecord:
    """A manifest whose ``subject`` is the asked digest (a referrers API entry)."""

    digest: Digest
    media_type: str
    size: int
    artifact_type: str | None
    annotations: Mapping[str, str] | None


@dataclass(slots=True)
class RepositoryState:
    """Everything the index holds about one repository; what rebuild and verify compare.

    ``has_tags``: the layout has a ``_manifests/tags`` directory (``tags/list`` of a
    repository without one is NAME_UNKNOWN, even when it has blobs).
    """

    name: str
    has_tags: bool = False
    tags: dict[str, Digest] = field(default_factory=dict)
    manifests: dict[Digest, ManifestRecord] = field(default_factory=dict)
    layers: set[Digest] = field(default_factory=set)
    """Digests linked under ``_layers``."""
    sizes: dict[Digest, int] = field(default_factory=dict)
    """Content-store size of every blob it links or holds a revision of."""


@dataclass(frozen=True, slots=True)
class RepositoryUsage:
    """What ``GET /dockyard/v1/repositories/<name>`` and ``dockyard usage`` report.

    ``blobs`` counts the distinct content-store blobs the repository references
    (linked layers and configs, and manifest payloads); ``size`` is their total
    bytes, each counted once; ``exclusive_size`` the part no other repository
    references, which deleting the repository (and a garbage collection) frees.
    """

    name: str
    tags: int
    manifests: int
    blobs: int
    size: int
    exclusive_size: int
    pushed_at: float | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "tags": self.tags,
            "manifests": self.manifests,
            "blobs": self.blobs,
            "size": self.size,
            "exclusive_size": self.exclusive_size,
            "pushed_at": self.pushed_at,
        }


@runtime_checkable
class Index(MetadataIndex, Protocol):
    """A database of the layout's metadata: the listings plus write hooks and queries.

    Write hooks are called by :class:`dockyard.registry.namespace.Repository` after
    the storage write succeeded; each is one transaction. Read methods answer from
    the database only.
    """

    # -- lifecycle -------------------------------------------------------------------
    async def migrate(self) -> int:
        """Apply the schema migrations not applied yet; returns the schema version."""
        ...

    async def is_empty(self) -> bool:
        """No repository is indexed (a start on content then builds the index)."""
        ...

    async def aclose(self) -> None:
        """Flush batched pull times and release connections."""
        ...

    # -- write hooks (after the storage write) ---------------------------------------
    async def manifest_put(self, repository: str, record: ManifestRecord, tag: str | None) -> None:
        """A revision stored (and ``tag`` pointed at it)."""
        ...

    async def tag_deleted(self, repository: str, tag: str) -> None: ...

    async def manifest_deleted(self, repository: str, digest: Digest) -> None:
        """A revision unlinked, with every tag that named it."""
        ...

    async def layers_linked(self, repository: str, digests: Iterable[Digest], size: int) -> None:
        """Blob links written under ``_layers`` (upload commit, mount); same content."""
        ...

    async def layer_unlinked(self, repository: str, digest: Digest) -> None: ...

    async def repository_deleted(self, repository: str) -> None: ...

    async def blobs_deleted(self, digests: Iterable[Digest]) -> None:
        """Content-store blobs removed (garbage collection): their sizes are dropped."""
        ...

    def record_pull(self, repository: str, digest: Digest) -> None:
        """Note a manifest pull; written later in a batch, never on the request path."""
        ...

    # -- queries ----------------------------------------------------------------------
    async def referrer_records(
        self, repository: str, subject: Digest, artifact_type: str | None
    ) -> list[ReferrerRecord]:
        """Manifests of ``repository`` whose subject is ``subject``, sorted by digest."""
        ...

    async def tag_records(self, repository: str) -> list[TagRecord]:
        """Every tag of ``repository`` with its digest and push time, sorted by tag."""
        ...

    async def manifest_records(self, repository: str) -> list[ManifestRecord]:
        """Every revision of ``repository`` with references and times, sorted by digest."""
        ...

    async def referenced_blobs(self) -> set[Digest]:
        """Every digest some repository links under ``_layers`` or holds as a revision."""
        ...

    async def usage(self, repository: str) -> RepositoryUsage | None:
        """Counts and sizes of ``repository``; None if the index does not know it."""
        ...

    async def usages(self, n: int, last: str) -> tuple[list[RepositoryUsage], bool]:
        """A catalog page (``n`` after ``last``) with each repository's usage; and more?"""
        ...

    # -- maintenance --------------------------------------------------------------------
    async def repository_state(self, repository: str) -> RepositoryState | None:
        """Everything held about ``repository`` (None: not indexed)."""
        ...

    async def replace_repository(self, state: RepositoryState) -> None:
        """Make the index hold exactly ``state`` for its repository (rebuild, repair)."""
        ...

    async def all_repositories(self) -> list[str]:
        """Every indexed repository name, in catalog order."""
        ...

