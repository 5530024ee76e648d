"""The mark: every repository's manifests, what they keep, untagged ones unlinked."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field

from dockyard.digest import CANONICAL_ALGORITHM, Digest
from dockyard.errors import NameUnknown, RegistryFault
from dockyard.maintenance.gc_base import Collection, bounded
from dockyard.maintenance.gc_report import plural
from dockyard.manifest import (
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    Descriptor,
    lenient_references,
    parse_manifest,
)
from dockyard.storage import paths
from dockyard.storage.drivers.base import PathNotFound, StorageError
from dockyard.storage.tags import TagStore

__all__ = ["Marker", "References", "stored_references"]

_INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})


@dataclass(frozen=True, slots=True)
class _Node:
    """One manifest of a repository and everything it keeps alive."""

    digest: Digest
    """As its link names it."""
    canonical: Digest
    """The blob holding its payload."""
    legacy: bool
    """Linked only under ``_layers`` (distribution 2.1.0)."""
    blobs: tuple[Digest, ...]
    children: tuple[Digest, ...]
    subject: Digest | None
    signatures: tuple[Digest, ...]


@dataclass(frozen=True, slots=True)
class References:
    blobs: tuple[Digest, ...]
    children: tuple[Digest, ...]
    subject: Digest | None


@dataclass(slots=True)
class _Repository:
    """What the mark learns about one repository."""

    name: str
    revisions: list[Digest] = field(default_factory=list)
    current: set[Digest] = field(default_factory=set)
    """Digests a tag's ``current`` link names."""
    history: dict[Digest, list[str]] = field(default_factory=dict)
    """Digest -> the tags whose ``index/`` names it."""
    nodes: dict[Digest, _Node] = field(default_factory=dict)
    failed: bool = False


def _digests(descriptors: Iterable[Descriptor]) -> tuple[Digest, ...]:
    return tuple(dict.fromkeys(d.digest for d in descriptors))


def stored_references(payload: bytes) -> References | None:
    """What a stored manifest names; None if it is not a manifest at all.

    Parsed as on a push; a payload the parser refuses (a type it does not know,
    such as OCI's withdrawn artifact manifest, or something another registry
    accepted) is read leniently, so that nothing it names is lost.
    """
    try:
        manifest = parse_manifest(payload, None)
    except (RegistryFault, ValueError, RecursionError):
        return _lenient_references(payload)
    config = () if manifest.config is None else (manifest.config,)
    children = manifest.manifests if manifest.media_type in _INDEX_TYPES else ()
    return References(
        _digests((*config, *manifest.layers)),
        _digests(children),
        manifest.subject.digest if manifest.subject is not None else None,
    )


def _lenient_references(payload: bytes) -> References | None:
    refs = lenient_references(payload)
    if refs is None:
        return None
    return References(refs.blobs, refs.children, refs.subject)


class Marker(Collection):
    """Marks what the manifests of every repository keep."""

    async def mark(self) -> None:
        try:
            async for name in self.repositories():
                self.summary.repositories += 1
                repo = _Repository(name)
                try:
                    await self.mark_repository(repo)
                except StorageError as exc:
                    repo.failed = True
                    self.error(f"{name}: {exc}")
                if repo.failed:
                    self.mark_failed = True
        except StorageError as exc:
            self.mark_failed = True
            self.error(f"listing repositories: {exc}")
        self.summary.blobs_marked = len(self.marked)

    async def mark_repository(self, repo: _Repository) -> None:
        name = repo.name
        repo.revisions = await self.list_digests(paths.manifest_revisions_root(name))
        await self.read_tags(repo)
        listed = set(repo.revisions)
        named = [d for d in (*sorted(repo.current, key=str), *repo.history) if d not in listed]
        seen = set(repo.revisions) | set(named)
        queue = [*repo.revisions, *dict.fromkeys(named)]
        while queue:
            batch, queue = queue, []
            nodes = await bounded(lambda d: self.load(repo, d, d in listed), batch)
            for node in nodes:
                if node is None:
                    continue
                repo.nodes[node.digest] = node
                for child in node.children:
                    if child not in seen:
                        seen.add(child)
                        queue.append(child)
        kept = self.kept(repo)
        for digest, node in repo.nodes.items():
            if digest in kept:
                self.mark_node(node)
        self.summary.manifests_marked += len(kept)
        doomed = [n for d, n in repo.nodes.items() if d not in kept]
        for node in doomed:
            await self.delete_manifest(repo, node)
        line = f"{name}: {len(kept)} manifest{plural(len(kept))} marked"
        if self.delete_untagged:
            line += f", {self.would} {len(doomed)} untagged"
        self.report(line)

    async def read_tags(self, repo: _Repository) -> None:
        try:
            tags = await TagStore(self.driver, repo.name).all()
        except NameUnknown:
            return

        async def read(tag: str) -> tuple[str, Digest | None, list[Digest]]:
            current = await self.read_link(paths.tag_current_link_path(repo.name, tag))
            return tag, current, await self.list_digests(paths.tag_index_path(repo.name, tag))

        for tag, current, history in await bounded(read, tags):
            if current is not None:
                repo.current.add(current)
            for digest in history:
                repo.history.setdefault(digest, []).append(tag)

    async def resolve(self, name: str, digest: Digest) -> tuple[Digest, bool] | None:
        """The payload blob of manifest ``digest`` and whether only ``_layers`` links it."""
        target = await self.read_link(paths.manifest_revision_link_path(name, digest))
        if target is not None:
            return target, False
        target = await self.read_link(paths.layer_link_path(name, digest))
        if target is not None:
            return target, True
        return None

    async def load(self, repo: _Repository, digest: Digest, listed: bool) -> _Node | None:
        """The manifest ``digest`` of ``repo``, or None if there is none to mark.

        A revision link (``listed``) whose blob is no manifest is an error: what it
        names cannot be known. A digest that resolves only under ``_layers`` to
        something that is no manifest is just a blob.
        """
        name = repo.name
        try:
            resolved = await self.resolve(name, digest)
            if resolved is None:
                return None  # a revision directory without link, or a tag of nothing
            canonical, legacy = resolved
            try:
                payload = await self.read_payload(canonical)
            except PathNotFound:
                self.report(f"{name}: warning: manifest {digest} links {canonical}, "
                            "which is missing: nothing to mark")
                return None
            references = None if payload is None else stored_references(payload)
            if references is None:
                if listed and not legacy:
                    repo.failed = True
                    self.error(f"{name}: revision {digest} links {canonical}, which is not "
                               "a readable manifest: cannot tell what it references")
                return None
            signatures: tuple[Digest, ...] = ()
            if not legacy:
                signatures = await self.signatures(name, digest)
            blobs = references.blobs + await self.canonical_forms(name, references.blobs)
        except StorageError as exc:
            repo.failed = True
            self.error(f"{name}: manifest {digest}: {exc}")
            return None
        return _Node(digest, canonical, legacy, blobs, references.children,
                     references.subject, signatures)

    async def canonical_forms(self, name: str, digests: Iterable[Digest]) -> tuple[Digest, ...]:
        """Where blobs named in another algorithm (sha512) are stored: their ``_layers``
        link holds the canonical digest (distribution 2.8 marks only the alias, and so
        deletes such blobs)."""
        found = []
        for digest in digests:
            if digest.algorithm != CANONICAL_ALGORITHM:
                target = await self.read_link(paths.layer_link_path(name, digest))
                if target is not None:
                    found.append(target)
        return tuple(found)

    async def signatures(self, name: str, revision: Digest) -> tuple[Digest, ...]:
        found = []
        for entry in await self.list_digests(paths.manifest_signatures_path(name, revision)):
            link = paths.manifest_signature_link_path(name, revision, entry)
            found.append(await self.read_link(link) or entry)
        return tuple(found)

    def kept(self, repo: _Repository) -> set[Digest]:
        """The manifests of ``repo`` to mark (all of them without ``delete_untagged``)."""
        if not self.delete_untagged or repo.failed:
            return set(repo.nodes)
        referrers: dict[Digest, list[Digest]] = {}
        for node in repo.nodes.values():
            if node.subject is not None:
                referrers.setdefault(node.subject, []).append(node.digest)
        kept: set[Digest] = set()
        stack = [d for d in repo.current if d in repo.nodes]
        while stack:
            digest = stack.pop()
            if digest in kept or digest not in repo.nodes:
                continue
            kept.add(digest)
            stack.extend(repo.nodes[digest].children)
            stack.extend(referrers.get(digest, ()))
        return kept

    def mark_node(self, node: _Node) -> None:
        self.marked.add(node.digest)
        self.marked.add(node.canonical)
        self.marked.update(node.blobs)
        self.marked.update(node.children)
        self.marked.update(node.signatures)

    async def delete_manifest(self, repo: _Repository, node: _Node) -> None:
        """Unlink an untagged manifest: revision (or 2.1.0 layer link), tag index, referrer."""
        name, digest = repo.name, node.digest
        self.summary.manifests_deleted += 1
        self.report(f"{name}: {self.would} manifest {digest}")
        if self.dry_run:
            return
        try:
            if node.legacy:
                await self.driver.delete(paths.link_dir(paths.layer_link_path(name, digest)))
            else:
                await self.delete_revision(name, digest)
        except PathNotFound:
            pass
        except StorageError as exc:
            # Still linked: what it references must stay.
            self.mark_node(node)
            self.summary.manifests_deleted -= 1
            self.error(f"{name}: deleting manifest {digest}: {exc}")
            return
        if self.hooks is not None:
            await self.keep_index(f"{name}@{digest}", self.hooks.manifest_deleted(name, digest))
            if node.legacy:
                await self.keep_index(f"{name}@{digest}",
                                      self.hooks.layer_unlinked(name, digest))
        links = [
            paths.tag_index_entry_link_path(name, tag, digest)
            for tag in repo.history.get(digest, ())
        ]
        if node.subject is not None:
            links.append(paths.manifest_referrer_link_path(name, node.subject, digest))
        for link in links:
            try:
                await self.driver.delete(paths.link_dir(link))
            except PathNotFound:
                pass
            except StorageError as exc:
                self.error(f"{name}: deleting {link}: {exc}")

    async def delete_revision(self, name: str, digest: Digest) -> None:
        """The revision's link and signatures; its ``referrers/`` stay for kept referrers."""
        revision = paths.manifest_revision_path(name, digest)
        children = {posixpath.basename(p) for p in await self.driver.list(revision)}
        if children <= {"link", "signatures"}:
            await self.driver.delete(revision)
            return
        await self.driver.delete(paths.manifest_revision_link_path(name, digest))
        if "signatures" in children:
            await self.driver.delete(paths.manifest_signatures_path(name, digest))
