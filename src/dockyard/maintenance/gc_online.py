"""Online garbage collection: the mark from the metadata index, the sweep fenced
against manifest PUTs, while the registry serves (``dockyard garbage-collect --online``
and ``storage.maintenance.garbagecollect``).

Mark
    Every repository the index knows: its manifests (with their blobs, children and
    subjects) and tags come from the index. Without ``delete_untagged`` every
    manifest is kept; with it, a manifest is kept when a tag names it, when a kept
    list or index names it as a child, when its subject is kept (a referrer), or when
    it was pushed less than ``grace`` ago. A kept manifest keeps its payload, config,
    layers and children, its schema1 signature blobs, and the blobs its sha512
    references resolve to (through the repository's ``_layers`` links).

Untagged manifests
    Each repository's doomed manifests are fenced (:meth:`BlobFence.begin_manifest_sweep`):
    one that a PUT claims, a tag names, or a manifest pushed since lists as a child is
    kept; the rest lose their revision link, tag ``index/`` entries and referrer link
    (as offline), and the index forgets them.

Sweep
    The content store is walked one ``blobs/<alg>/<hh>/`` prefix at a time. A blob that
    is not marked and whose data is older than ``grace`` is a candidate; each prefix's
    candidates are fenced (:meth:`BlobFence.begin_sweep`): one that a PUT claims or
    that an indexed manifest references by now is kept; the rest are deleted, dropped
    from the index and the blob descriptor cache, and the fence is lifted.

    Unlike offline, the ``_layers`` links to deleted blobs stay (as distribution 2.8
    leaves them): a link is rewritten by an upload of the same blob at any moment, so
    deleting it could drop a link just written. A link to a missing blob is harmless:
    the repository answers 404 for the blob, a mount from it falls back to an upload,
    a manifest naming it is refused until the blob is pushed again. The offline
    command removes them.

One collector at a time: the caller holds the ``gc`` lease (:mod:`~.jobs`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dockyard.cache.base import BlobDescriptorCache
from dockyard.digest import Digest
from dockyard.index.base import ManifestRecord
from dockyard.index.fence import SWEEP_GIVE_UP, BlobFence
from dockyard.index.sql import SqlIndex
from dockyard.maintenance.gc_base import blobs_in_prefix, bounded
from dockyard.maintenance.gc_mark import Marker, _Node, _Repository
from dockyard.maintenance.gc_report import GCSummary, plural
from dockyard.maintenance.gc_sweep import Sweeper
from dockyard.maintenance.purge import format_size
from dockyard.manifest import SCHEMA1_SIGNED, SCHEMA1_UNSIGNED
from dockyard.storage import paths
from dockyard.storage.drivers.base import PathNotFound, StorageDriver, StorageError

__all__ = ["online_garbage_collect"]

_SCHEMA1 = frozenset({SCHEMA1_SIGNED, SCHEMA1_UNSIGNED})


class _OnlineCollector(Marker, Sweeper):
    def __init__(
        self,
        driver: StorageDriver,
        index: SqlIndex,
        fence: BlobFence,
        cache: BlobDescriptorCache | None,
        *,
        grace: float,
        dry_run: bool,
        delete_untagged: bool,
        progress: Callable[[str], None] | None,
    ) -> None:
        super().__init__(driver, index, cache, dry_run=dry_run,
                         delete_untagged=delete_untagged, progress=progress)
        self.index = index
        self.fence = fence
        self.grace = grace
        self.started = time.time()
        self.deleted: set[Digest] = set()
        self.summary.online = True

    async def run(self) -> GCSummary:
        if not self.dry_run:
            await self.fence.reset()
        await self.mark_indexed()
        if self.mark_failed:
            self.report("not sweeping: marking was incomplete, so no blob is deleted")
            return self.summary
        self.report(f"{len(self.marked)} blobs marked in {self.summary.repositories} "
                    f"repositories; sweeping blobs older than {self.grace:g}s")
        self.summary.swept = True
        await self.sweep_blobs()
        return self.summary

    # -- mark ------------------------------------------------------------------------

    async def mark_indexed(self) -> None:
        try:
            names = await self.index.all_repositories()
        except Exception as exc:  # the index is the mark: without it, nothing is swept
            self.mark_failed = True
            self.error(f"reading the index: {exc}")
            return
        for name in names:
            self.summary.repositories += 1
            try:
                await self.mark_indexed_repository(name)
            except StorageError as exc:
                self.mark_failed = True
                self.error(f"{name}: {exc}")
        self.summary.blobs_marked = len(self.marked)

    async def mark_indexed_repository(self, name: str) -> None:
        records = {r.digest: r for r in await self.index.manifest_records(name)}
        tags = await self.index.tag_records(name)
        kept = self.kept_indexed(records, {t.digest for t in tags})

        async def node(record: ManifestRecord) -> _Node:
            signatures = tuple(record.signatures)
            if not signatures and record.media_type in _SCHEMA1:  # indexed before they were
                signatures = await self.signatures(name, record.digest)
            blobs = record.blobs + await self.canonical_forms(name, record.blobs)
            return _Node(record.digest, record.digest, False, blobs, record.children,
                         record.subject, signatures)

        for n in await bounded(node, [records[d] for d in sorted(kept, key=str)]):
            self.mark_node(n)
        self.summary.manifests_marked += len(kept)
        doomed = [records[d] for d in records if d not in kept]
        deleted = await self.delete_untagged_manifests(name, doomed) if doomed else 0
        line = f"{name}: {len(kept)} manifest{plural(len(kept))} marked"
        if self.delete_untagged:
            line += f", {self.would} {deleted} untagged"
        self.report(line)

    def kept_indexed(self, records: dict[Digest, ManifestRecord], tagged: set[Digest]
                     ) -> set[Digest]:
        if not self.delete_untagged:
            return set(records)
        referrers: dict[Digest, list[Digest]] = {}
        for r in records.values():
            if r.subject is not None:
                referrers.setdefault(r.subject, []).append(r.digest)
        young = self.started - self.grace
        stack = [d for d in records if d in tagged
                 or (records[d].pushed_at is not None and records[d].pushed_at > young)]  # type: ignore[operator]
        kept: set[Digest] = set()
        while stack:
            digest = stack.pop()
            if digest in kept or digest not in records:
                continue
            kept.add(digest)
            stack.extend(records[digest].children)
            stack.extend(referrers.get(digest, ()))
        return kept

    async def delete_untagged_manifests(self, name: str, doomed: list[ManifestRecord]) -> int:
        digests = {r.digest for r in doomed}
        if self.dry_run:
            for r in doomed:
                self.summary.manifests_deleted += 1
                self.report(f"{name}: {self.would} manifest {r.digest}")
            return len(doomed)
        safe = await self.fence.begin_manifest_sweep(name, digests)
        try:
            for r in doomed:
                if r.digest not in safe:
                    self.report(f"{name}: kept manifest {r.digest}: referenced since the mark")
                    self.mark_node(_Node(r.digest, r.digest, False, r.blobs, r.children,
                                         r.subject, ()))
            if not safe:
                return 0
            repo = _Repository(name)
            await self.read_tags(repo)  # for the tags' index/ entries of what goes
            before = self.summary.manifests_deleted
            for r in doomed:
                if r.digest in safe:
                    await self.delete_manifest(repo, _Node(r.digest, r.digest, False, r.blobs,
                                                           r.children, r.subject, ()))
                    await self.index.manifest_deleted(name, r.digest)
            return self.summary.manifests_deleted - before
        finally:
            await self.fence.end_sweep(digests)

    # -- sweep -----------------------------------------------------------------------

    async def sweep_prefix(self, algorithm: str, prefix: str) -> None:
        """One ``blobs/<alg>/<hh>``: unmarked blobs older than the grace, fenced."""
        candidates: dict[Digest, int] = {}
        old = self.started - self.grace
        try:
            async for digest, info in blobs_in_prefix(self.driver, algorithm, prefix):
                self.summary.blobs_examined += 1
                if digest not in self.marked and info.mod_time < old:
                    candidates[digest] = info.size
        except PathNotFound:
            return
        except StorageError as exc:
            self.error(f"walking {prefix}: {exc}")
            return
        if not candidates:
            return
        if self.dry_run:
            for digest, size in candidates.items():
                self.summary.blobs_deleted += 1
                self.summary.bytes_freed += size
                self.report(f"{self.would} blob {digest} ({format_size(size)})")
            return
        safe, since = await self.fence.begin_sweep(candidates)
        try:
            if time.time() - since > SWEEP_GIVE_UP:
                self.report(f"{prefix}: fencing took too long; its blobs are kept this time")
                return

            async def delete(digest: Digest) -> Digest | None:
                try:
                    await self.driver.delete(paths.blob_dir_path(digest))
                except PathNotFound:
                    return None
                except StorageError as exc:
                    self.error(f"deleting blob {digest}: {exc}")
                    return None
                return digest

            gone = [d for d in await bounded(delete, sorted(safe, key=str)) if d is not None]
            if gone:
                await self.index.blobs_deleted(gone)
            for digest in gone:
                self.deleted.add(digest)
                self.summary.blobs_deleted += 1
                self.summary.bytes_freed += candidates[digest]
                self.report(f"{self.would} blob {digest} ({format_size(candidates[digest])})")
                await self.clear_cache(None, digest)
        finally:
            await self.fence.end_sweep(candidates)


async def online_garbage_collect(
    driver: StorageDriver,
    index: SqlIndex,
    fence: BlobFence,
    *,
    grace: float,
    dry_run: bool = False,
    delete_untagged: bool = False,
    cache: BlobDescriptorCache | None = None,
    progress: Callable[[str], None] | None = None,
) -> GCSummary:
    """Collect while the registry serves (see the module docstring); the index must be
    migrated and the fence prepared; the caller holds the collection lease."""
    collector = _OnlineCollector(driver, index, fence, cache, grace=grace, dry_run=dry_run,
                                 delete_untagged=delete_untagged, progress=progress)
    return await collector.run()
