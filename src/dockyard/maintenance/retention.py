"""Applying retention policies (``retention``) to a registry: ``dockyard retention`` and
the server's interval job.

For every repository a policy matches (:func:`dockyard.policy.policy_for`), the job
reads what the rules need, asks :func:`dockyard.policy.plan_repository` what goes and
why, reports each decision and, unless it is a dry run, deletes through the registry
layer (:class:`~dockyard.registry.namespace.Repository`), so that whatever wraps the
repository (the metadata index, caches) sees the deletes. Blobs are left to garbage
collection.

What is read
    With the metadata index (``storage.index``): tags, manifests, their children and
    subjects, push times and pull times (a tag's pull time is the last pull of the
    manifest it names), all from the index. A time the index does not know (after a
    rebuild) is read from storage as below.

    Without it, from storage: tags and the manifest each names (``current`` links); a
    tag's push time is the modification time of its ``current`` link, a manifest's
    that of its revision link (the time of the last PUT, on every driver); each
    revision is read to learn its children and subject (a repository with an
    unreadable revision is skipped: what it references cannot be known). Pulls are
    not recorded without the index: ``pulledwithin`` keeps only recent pushes and
    ``mostrecentlypulledcount`` sees no pulls.

While the registry serves
    Before a tag is deleted its ``current`` link is read again, and a tag that moved
    since the plan is kept; a manifest that a tag names again is kept too (deleting
    it would take the tag along). A manifest pushed less than ``delay`` ago is never
    deleted, so an image being pushed is not touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dockyard.digest import Digest
from dockyard.errors import ManifestUnknown, NameUnknown
from dockyard.maintenance.gc_base import Collection, bounded
from dockyard.maintenance.gc_mark import stored_references
from dockyard.maintenance.gc_report import plural
from dockyard.policy import (
    ImmutableTags,
    ManifestFacts,
    RetentionPlan,
    RetentionPolicy,
    TagFacts,
    plan_repository,
    policy_for,
)
from dockyard.registry.namespace import Namespace
from dockyard.storage import paths
from dockyard.storage.drivers.base import PathNotFound, StorageError
from dockyard.storage.tags import TagStore

__all__ = ["RetentionSummary", "apply_retention"]

@dataclass(slots=True)
class RetentionSummary:
    """What one run did (or, in a dry run, would have done)."""

    repositories: int = 0
    tags_kept: int = 0
    tags_deleted: int = 0
    manifests_deleted: int = 0
    skipped: int = 0
    """Deletions given up because the repository changed since the plan."""
    errors: int = 0
    dry_run: bool = False

    def __str__(self) -> str:
        would = "would delete" if self.dry_run else "deleted"
        return (
            f"retention{' (dry run)' if self.dry_run else ''}: "
            f"{self.repositories} repositor{'y' if self.repositories == 1 else 'ies'} "
            f"under a policy, {self.tags_kept} tag{plural(self.tags_kept)} kept, "
            f"{would} {self.tags_deleted} tag{plural(self.tags_deleted)} and "
            f"{self.manifests_deleted} manifest{plural(self.manifests_deleted)}, "
            f"{self.skipped} skipped (changed meanwhile), "
            f"{self.errors} error{plural(self.errors)}"
        )


class _Unreadable(Exception):
    """A revision of the repository cannot be read: its plan cannot be made."""


class _Job(Collection):
    """One run over every repository."""

    def __init__(
        self,
        namespace: Namespace,
        policies: Sequence[RetentionPolicy],
        *,
        delay: float,
        dry_run: bool,
        immutable: ImmutableTags | None,
        now: float,
        progress: Callable[[str], None] | None,
    ) -> None:
        super().__init__(namespace.driver, namespace.metadata, None, dry_run=dry_run,
                         delete_untagged=False, progress=progress)
        self.namespace = namespace
        self.policies = policies
        self.delay = delay
        self.immutable = immutable
        self.now = now
        self.result = RetentionSummary(dry_run=dry_run)

    def fail(self, message: str) -> None:
        self.result.errors += 1
        self.report(f"error: {message}")

    async def run(self) -> RetentionSummary:
        try:
            async for name in self.repositories():
                policy = policy_for(self.policies, name)
                if policy is None:
                    continue
                self.result.repositories += 1
                try:
                    await self.repository(name, policy)
                except StorageError as exc:
                    self.fail(f"{name}: {exc}")
                except _Unreadable as exc:
                    self.fail(f"{name}: {exc}; repository skipped")
        except StorageError as exc:
            self.fail(f"listing repositories: {exc}")
        return self.result

    async def repository(self, name: str, policy: RetentionPolicy) -> None:
        if self.namespace.index is not None:
            tags, manifests = await self.indexed_facts(name)
        else:
            tags = await self.tag_facts(name)
            manifests = await self.manifest_facts(name)
        plan = plan_repository(policy, name, tags, manifests, now=self.now, delay=self.delay,
                               immutable=self.immutable)
        self.result.tags_kept += sum(1 for t in plan.tags if t.keep)
        self.report(f"{name}: {plan.policy}: keeps {len(plan.tags) - len(plan.doomed_tags)} "
                    f"of {len(plan.tags)} tags; {self.would} {len(plan.doomed_tags)} tags and "
                    f"{len(plan.doomed_manifests)} manifests")
        await self.apply(name, plan, {m.digest for m in manifests if m.children})

    async def indexed_facts(self, name: str) -> tuple[list[TagFacts], list[ManifestFacts]]:
        index = self.namespace.index
        assert index is not None
        records = await index.manifest_records(name)
        pulls = {r.digest: r.last_pull for r in records}

        async def pushed(path: str) -> float | None:
            try:
                return (await self.driver.stat(path)).mod_time
            except PathNotFound:
                return None

        tags = []
        for t in await index.tag_records(name):
            when = t.pushed_at
            if when is None:
                when = await pushed(paths.tag_current_link_path(name, t.tag))
            tags.append(TagFacts(t.tag, t.digest, when, pulls.get(t.digest)))
        manifests = []
        for r in records:
            when = r.pushed_at
            if when is None:
                when = await pushed(paths.manifest_revision_link_path(name, r.digest))
            # Unknown even in storage: as if pushed now, so the delay protects it.
            manifests.append(ManifestFacts(r.digest, self.now if when is None else when,
                                           r.children, r.subject))
        return tags, manifests

    async def tag_facts(self, name: str) -> list[TagFacts]:
        try:
            tags = await TagStore(self.driver, name).all()
        except NameUnknown:
            return []

        async def read(tag: str) -> TagFacts | None:
            link = paths.tag_current_link_path(name, tag)
            digest = await self.read_link(link)
            if digest is None:
                return None
            try:
                pushed: float | None = (await self.driver.stat(link)).mod_time
            except PathNotFound:
                return None
            return TagFacts(tag, digest, pushed)

        return [t for t in await bounded(read, tags) if t is not None]

    async def manifest_facts(self, name: str) -> list[ManifestFacts]:
        revisions = await self.list_digests(paths.manifest_revisions_root(name))

        async def read(digest: Digest) -> ManifestFacts | None:
            link = paths.manifest_revision_link_path(name, digest)
            canonical = await self.read_link(link)
            if canonical is None:
                return None  # a revision directory without link: nothing to delete
            try:
                pushed = (await self.driver.stat(link)).mod_time
                payload = await self.read_payload(canonical)
            except PathNotFound:
                return None
            references = None if payload is None else stored_references(payload)
            if references is None:
                raise _Unreadable(f"revision {digest} is not a readable manifest")
            return ManifestFacts(digest, pushed, references.children, references.subject)

        return [m for m in await bounded(read, revisions) if m is not None]

    async def apply(self, name: str, plan: RetentionPlan, parents: set[Digest]) -> None:
        repo = self.namespace.repository(name)
        tags = TagStore(self.driver, name)
        for t in plan.doomed_tags:
            if not self.dry_run:
                if await self.read_link(paths.tag_current_link_path(name, t.tag)) != t.digest:
                    self.result.skipped += 1
                    self.report(f"{name}: kept tag {t.tag}: it moved since the plan")
                    continue
                try:
                    await repo.delete_manifest(t.tag)
                except ManifestUnknown:
                    continue
            self.result.tags_deleted += 1
            self.report(f"{name}: {self.would} tag {t.tag} ({t.digest}): {t.reason}")
        # Lists and indexes before their children: no index ever names a missing child.
        doomed = sorted(plan.doomed_manifests, key=lambda m: m.digest not in parents)
        for m in doomed:
            if not self.dry_run:
                if await tags.lookup(m.digest):
                    self.result.skipped += 1
                    self.report(f"{name}: kept manifest {m.digest}: a tag names it again")
                    continue
                try:
                    await repo.delete_manifest(str(m.digest))
                except ManifestUnknown:
                    continue
            self.result.manifests_deleted += 1
            self.report(f"{name}: {self.would} manifest {m.digest}: {m.reason}")


async def apply_retention(
    namespace: Namespace,
    policies: Sequence[RetentionPolicy],
    *,
    delay: float,
    dry_run: bool = False,
    immutable: ImmutableTags | None = None,
    now: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> RetentionSummary:
    """Apply ``policies`` to every repository of ``namespace`` (deletes must be enabled
    in its options); see the module docstring. ``progress`` gets one line per decision."""
    job = _Job(namespace, policies, delay=delay, dry_run=dry_run, immutable=immutable,
               now=time.time() if now is None else now, progress=progress)
    return await job.run()
