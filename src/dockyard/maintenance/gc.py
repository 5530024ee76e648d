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
    With a shared blob-descriptor cache (Redis) the entries of deleted blobs and
    links are cleared, so that no instance keeps answering for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import posixpath
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
)
from dataclasses import dataclass, field
from typing import TypeVar

from dockyard.cache.base import BlobDescriptorCache, CacheFailure
from dockyard.digest import CANONICAL_ALGORITHM, Digest, InvalidDigest
from dockyard.errors import NameUnknown, RegistryFault
from dockyard.maintenance.purge import format_size
from dockyard.manifest import (
    DOCKER_MANIFEST_LIST,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    Descriptor,
    parse_manifest,
)
from dockyard.metadata import MetadataIndex
from dockyard.storage import paths
from dockyard.storage.blobs import BlobStore
from dockyard.storage.drivers.base import PathNotFound, StorageDriver, StorageError
from dockyard.storage.metadata import StorageMetadataIndex
from dockyard.storage.tags import TagStore

__all__ = ["GCSummary", "garbage_collect"]

T = TypeVar("T")
U = TypeVar("U")

_CATALOG_PAGE = 1000
_CONCURRENCY = 16  # storage requests in flight (manifest reads, deletes)
_HEARTBEAT = 10_000  # a progress line every this many blobs examined
# A revision blob larger than this is not read (a manifest is at most 4 MiB; some
# registries took larger ones): a link that resolves to a layer must not fill memory.
_READ_LIMIT = 8 * MAX_MANIFEST_SIZE
_INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})


@dataclass(slots=True)
class GCSummary:
    """What one collection did (or, in a dry run, would have done)."""

    repositories: int = 0
    manifests_marked: int = 0
    """Manifests kept (counted once per repository)."""
    manifests_deleted: int = 0
    """Untagged manifests deleted (``delete_untagged``)."""
    blobs_marked: int = 0
    """Distinct digests in the mark set."""
    blobs_examined: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0
    layer_links_deleted: int = 0
    errors: int = 0
    swept: bool = False
    """Whether the blob sweep ran (it does not after an error while marking)."""
    dry_run: bool = False
    delete_untagged: bool = False

    def __str__(self) -> str:
        would = "would delete" if self.dry_run else "deleted"
        parts = [
            f"{self.repositories} repositor{'y' if self.repositories == 1 else 'ies'}",
            f"{self.manifests_marked} manifest{_s(self.manifests_marked)} marked",
        ]
        if self.delete_untagged:
            parts.append(
                f"{would} {self.manifests_deleted} untagged manifest{_s(self.manifests_deleted)}"
            )
        parts.append(f"{self.blobs_marked} blob{_s(self.blobs_marked)} marked")
        if self.swept:
            parts.append(
                f"{self.blobs_examined} examined, {would} {self.blobs_deleted} "
                f"({format_size(self.bytes_freed)}) and {self.layer_links_deleted} "
                f"layer link{_s(self.layer_links_deleted)}"
            )
        else:
            parts.append("blobs not swept (errors while marking)")
        parts.append(f"{self.errors} error{_s(self.errors)}")
        return f"garbage collection{' (dry run)' if self.dry_run else ''}: " + ", ".join(parts)


def _s(n: int) -> str:
    return "" if n == 1 else "s"


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
class _References:
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


def _references(payload: bytes) -> _References | None:
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
    return _References(
        _digests((*config, *manifest.layers)),
        _digests(children),
        manifest.subject.digest if manifest.subject is not None else None,
    )


def _lenient_references(payload: bytes) -> _References | None:
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None

    def found(value: object, key: str = "digest") -> list[Digest]:
        items = value if isinstance(value, list) else [value]
        out = []
        for item in items:
            if isinstance(item, dict) and isinstance(item.get(key), str):
                with contextlib.suppress(InvalidDigest):
                    out.append(Digest.parse(item[key]))
        return out

    blobs = [
        *found(document.get("config")),
        *found(document.get("layers")),
        *found(document.get("blobs")),  # OCI 1.1-rc artifact manifest
        *found(document.get("fsLayers"), "blobSum"),  # schema1
    ]
    subject = found(document.get("subject"))
    return _References(
        tuple(dict.fromkeys(blobs)),
        tuple(dict.fromkeys(found(document.get("manifests")))),
        subject[0] if subject else None,
    )


async def _bounded(work: Callable[[U], Awaitable[T]], items: Sequence[U]) -> list[T]:
    """``work`` on every item, at most ``_CONCURRENCY`` at a time; results in order.

    A few workers share one iterator, so a repository of a million revisions costs a
    million results, not a million tasks. After an exception the workers stop taking
    items; once they are all done, the first exception is raised.
    """
    results: dict[int, T] = {}
    pending = iter(enumerate(items))
    failed = False

    async def worker() -> None:
        nonlocal failed
        for index, item in pending:
            if failed:
                return
            try:
                results[index] = await work(item)
            except BaseException:
                failed = True
                raise

    outcomes = await asyncio.gather(
        *(worker() for _ in range(min(_CONCURRENCY, len(items)))), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return [results[i] for i in range(len(items))]


class _Collector:
    def __init__(
        self,
        driver: StorageDriver,
        metadata: MetadataIndex,
        cache: BlobDescriptorCache | None,
        *,
        dry_run: bool,
        delete_untagged: bool,
        progress: Callable[[str], None] | None,
    ) -> None:
        self.driver = driver
        self.metadata = metadata
        self.cache = cache
        self.dry_run = dry_run
        self.delete_untagged = delete_untagged
        self._progress = progress
        self.summary = GCSummary(dry_run=dry_run, delete_untagged=delete_untagged)
        self.marked: set[Digest] = set()
        self.undeleted: set[Digest] = set()
        """Unmarked blobs whose deletion failed: still there, so links to them stay."""
        self.mark_failed = False
        self.would = "would delete" if dry_run else "deleted"

    # -- reporting ------------------------------------------------------------------

    def report(self, message: str) -> None:
        if self._progress is not None:
            self._progress(message)

    def error(self, message: str) -> None:
        self.summary.errors += 1
        self.report(f"error: {message}")

    async def clear_cache(self, repository: str | None, digest: Digest) -> None:
        if self.cache is None or self.dry_run:
            return
        try:
            await self.cache.clear(repository, digest)
        except CacheFailure as exc:
            self.cache = None
            self.error(
                f"blob descriptor cache: {exc}; it may still describe deleted blobs: "
                "flush it before the registry serves again"
            )

    # -- reading the layout ---------------------------------------------------------

    async def list_digests(self, root: str) -> list[Digest]:
        """The digests of ``<root>/<alg>/<hex>`` directories, sorted; [] if ``root`` is absent."""
        try:
            algorithms = sorted(await self.driver.list(root))
        except PathNotFound:
            return []
        found: list[Digest] = []
        for alg_dir in algorithms:
            algorithm = posixpath.basename(alg_dir)
            try:
                entries = sorted(await self.driver.list(alg_dir))
            except PathNotFound:
                continue
            for entry in entries:
                with contextlib.suppress(InvalidDigest):  # not a digest: not ours to judge
                    found.append(Digest.parse(f"{algorithm}:{posixpath.basename(entry)}"))
        return found

    async def read_link(self, path: str) -> Digest | None:
        """The digest a link file holds; None if it is missing or does not hold one."""
        try:
            raw = await self.driver.get_content(path)
        except PathNotFound:
            return None
        try:
            return Digest.parse(raw.decode("ascii").strip())
        except (UnicodeDecodeError, InvalidDigest):
            return None

    async def read_payload(self, digest: Digest) -> bytes | None:
        """A blob of at most ``_READ_LIMIT`` bytes; None if it is larger."""
        data = bytearray()
        reader = self.driver.reader(paths.blob_data_path(digest))
        try:
            async for chunk in reader:
                data += chunk
                if len(data) > _READ_LIMIT:
                    return None
        finally:
            if isinstance(reader, AsyncGenerator):
                await reader.aclose()
        return bytes(data)

    # -- mark -----------------------------------------------------------------------

    async def repositories(self) -> AsyncIterator[str]:
        last = ""
        while True:
            page = await self.metadata.repositories(_CATALOG_PAGE, last)
            for name in page.entries:
                yield name
            if not page.more or not page.entries:
                return
            last = page.entries[-1]

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
            nodes = await _bounded(lambda d: self.load(repo, d, d in listed), batch)
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
        line = f"{name}: {len(kept)} manifest{_s(len(kept))} marked"
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

        for tag, current, history in await _bounded(read, tags):
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
            references = None if payload is None else _references(payload)
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

    # -- sweep ----------------------------------------------------------------------

    async def sweep_blobs(self) -> None:
        root = paths.blobs_root()
        try:
            algorithms = sorted(await self.driver.list(root))
        except PathNotFound:
            return
        except StorageError as exc:
            self.error(f"listing {root}: {exc}")
            return
        for alg_dir in algorithms:
            try:
                prefixes = sorted(await self.driver.list(alg_dir))
            except PathNotFound:
                continue
            except StorageError as exc:
                self.error(f"listing {alg_dir}: {exc}")
                continue
            for prefix in prefixes:
                await self.sweep_prefix(posixpath.basename(alg_dir), prefix)

    async def sweep_prefix(self, algorithm: str, prefix: str) -> None:
        """One ``blobs/<alg>/<hh>``: walked whole first, then its unmarked blobs deleted."""
        doomed: list[tuple[Digest, int]] = []
        hh = posixpath.basename(prefix)
        try:
            async for info in self.driver.walk(prefix):
                parts = info.path[len(prefix) + 1 :].split("/")
                if info.is_dir or len(parts) != 2 or parts[1] != "data":
                    continue
                try:
                    digest = Digest.parse(f"{algorithm}:{parts[0]}")
                except InvalidDigest:
                    continue  # not a blob of this layout: leave it alone
                if digest.hex[:2] != hh:
                    continue
                self.summary.blobs_examined += 1
                if self.summary.blobs_examined % _HEARTBEAT == 0:
                    self.report(f"... {self.summary.blobs_examined} blobs examined, "
                                f"{self.summary.blobs_deleted + len(doomed)} unmarked")
                if digest not in self.marked:
                    doomed.append((digest, info.size))
        except PathNotFound:
            return
        except StorageError as exc:
            self.error(f"walking {prefix}: {exc}")
            return  # what was not examined is not deleted

        async def delete(digest: Digest, size: int) -> None:
            if not self.dry_run:
                try:
                    await self.driver.delete(paths.blob_dir_path(digest))
                except PathNotFound:
                    return
                except StorageError as exc:
                    self.undeleted.add(digest)
                    self.error(f"deleting blob {digest}: {exc}")
                    return
            self.summary.blobs_deleted += 1
            self.summary.bytes_freed += size
            self.report(f"{self.would} blob {digest} ({format_size(size)})")
            await self.clear_cache(None, digest)

        await _bounded(lambda item: delete(*item), doomed)

    def gone(self, digest: Digest) -> bool:
        """Whether the sweep deleted (or, in a dry run, would delete) ``digest``."""
        return digest not in self.marked and digest not in self.undeleted

    async def sweep_layer_links(self) -> None:
        try:
            async for name in self.repositories():
                try:
                    await self.sweep_repository_links(name)
                except StorageError as exc:
                    self.error(f"{name}: layer links: {exc}")
        except StorageError as exc:
            self.error(f"listing repositories: {exc}")

    async def sweep_repository_links(self, name: str) -> None:
        async def check(digest: Digest) -> None:
            if digest in self.marked:
                return  # named after a kept blob: not worth reading
            link = paths.layer_link_path(name, digest)
            target = await self.read_link(link)
            if target is None or not self.gone(target):
                return  # missing, unreadable (not ours to judge) or still there
            if not self.dry_run:
                try:
                    await self.driver.delete(paths.link_dir(link))
                except PathNotFound:
                    return
            self.summary.layer_links_deleted += 1
            self.report(f"{name}: {self.would} layer link {digest}")
            await self.clear_cache(name, digest)

        digests = await self.list_digests(paths.layers_root(name))
        await _bounded(check, digests)

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
    progress: Callable[[str], None] | None = None,
) -> GCSummary:
    """Mark and sweep the storage behind ``driver`` (see the module docstring).

    ``metadata`` lists the repositories (default: read from the layout);
    ``cache`` is the blob-descriptor cache the registry shares, cleared of what is
    deleted; ``progress`` receives one line per repository and per deletion.
    """
    metadata = metadata or StorageMetadataIndex(driver, BlobStore(driver))
    collector = _Collector(
        driver, metadata, cache,
        dry_run=dry_run, delete_untagged=delete_untagged, progress=progress,
    )
    return await collector.run()
