"""Garbage collection: delete the blobs no manifest needs (``dockyard garbage-collect``).

What distribution's ``registry garbage-collect`` does, on any driver. It must run
offline: stop the registry or put it in ``storage.maintenance.readonly`` first, as
the original requires. A blob pushed while the mark runs is referenced by nothing
yet, so the sweep deletes it.

Mark
    Every repository of the catalog (read through the metadata index, page by
    page) is examined on its own. Its manifests are every revision linked under
    ``_manifests/revisions/``, plus the manifests its tags name (``current`` and the
    ``index/`` history) and the children of its lists and indexes, wherever
    :class:`~dockyard.storage.manifests.ManifestStore` finds them: a revision link
    or, where distribution 2.1.0 put them, a link under ``_layers``. Each manifest
    is read once. Marking one keeps its payload, its config and layers (every
    descriptor, also those with ``urls``, as distribution's ``References()``: a
    blob that is present stays; a sha512 reference through its ``_layers`` link to
    the sha256 blob that holds it), its children and its schema1 signature blobs
    (``signatures/`` below the revision). The mark set holds digests only; the
    manifests of one repository are held while it is examined.

With ``delete_untagged``
    A manifest is kept when a tag's ``current`` link names it, when a kept list or
    index names it as a child, or when its ``subject`` is kept (an OCI referrer:
    signature, SBOM, attestation...). Any other manifest of the repository has its
    revision link (its ``signatures/`` too), its ``index/`` entries under every tag
    and its link under its subject's ``referrers/`` deleted instead of being
    marked; this happens right after the repository is examined, and only if it
    was examined without error. Differences from distribution 2.8 on purpose:

    - 2.8 decides manifest by manifest with ``Lookup``, so the children of a
      tagged manifest list, untagged themselves, lose their revisions and layers:
      the list is broken (a bug distribution 3 fixed). Children of a kept list or
      index are kept here, however deeply nested.
    - 2.8 knows no referrers: it deletes every untagged signature, SBOM or
      attestation of a tagged image. A referrer whose subject is kept is kept
      here (and so are its own referrers); distribution 3.0 does not do this
      either.

Sweep
    Only after every repository was marked without error (anything unreadable
    could name blobs still needed, so an incomplete mark deletes no blob). The
    content store is walked one ``blobs/<alg>/<hh>/`` prefix at a time (never held
    whole in memory); each ``data`` whose digest is not marked loses its blob
    directory. Then every repository's ``_layers`` links whose target is not
    marked are deleted, so no repository claims a blob that is gone: 2.8 leaves
    those links dangling (distribution 3 removes them too). A link is read only
    when its own name is not a kept digest.

Errors and dry runs
    Errors are counted and reported, never raised; the summary says whether the
    blobs were swept. A dry run deletes nothing and reports what it would delete,
    computed exactly as a real run would (untagged manifests are not marked).
    With a metadata index (``storage.index``) every manifest, layer link and blob
    deleted is dropped from it right after the storage delete, so ``dockyard index
    verify`` finds no drift afterwards.
    With a shared blob-descriptor cache (Redis) the entries of deleted blobs and
    links are cleared, so that no instance keeps answering for them.
"""

from __future__ import annotations

from collections.abc import Callable

from dockyard.cache.base import BlobDescriptorCache
from dockyard.index.base import Index
from dockyard.maintenance.gc_mark import Marker
from dockyard.maintenance.gc_report import GCSummary
from dockyard.maintenance.gc_sweep import Sweeper
from dockyard.metadata import MetadataIndex
from dockyard.storage import paths
from dockyard.storage.blobs import BlobStore
from dockyard.storage.drivers.base import StorageDriver
from dockyard.storage.metadata import StorageMetadataIndex

__all__ = ["GCSummary", "garbage_collect"]


class _Collector(Marker, Sweeper):
    """Mark, then sweep only if every repository was marked."""

    async def run(self) -> GCSummary:
        await self.mark()
        if self.mark_failed:
            self.report("not sweeping: marking was incomplete, so no blob is deleted")
            return self.summary
        self.report(f"{len(self.marked)} blobs marked in {self.summary.repositories} "
                    f"repositories; sweeping {paths.blobs_root()}")
        self.summary.swept = True
        await self.sweep_blobs()
        await self.sweep_layer_links()
        return self.summary


async def garbage_collect(
    driver: StorageDriver,
    *,
    dry_run: bool = False,
    delete_untagged: bool = False,
    metadata: MetadataIndex | None = None,
    cache: BlobDescriptorCache | None = None,
    index: Index | None = None,
    progress: Callable[[str], None] | None = None,
) -> GCSummary:
    """Mark and sweep the storage behind ``driver`` (see the module docstring).

    ``metadata`` lists the repositories (default: read from the layout);
    ``cache`` is the blob-descriptor cache the registry shares, cleared of what is
    deleted; ``index`` is the metadata index (migrated), told of every manifest,
    layer link and blob deleted right after storage lost it; ``progress`` receives
    one line per repository and per deletion.
    """
    metadata = metadata or StorageMetadataIndex(driver, BlobStore(driver))
    collector = _Collector(
        driver, metadata, cache,
        dry_run=dry_run, delete_untagged=delete_untagged, progress=progress,
    )
    collector.hooks = index
    return await collector.run()
