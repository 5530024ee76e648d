"""Namespace -> Repository: what the HTTP layer calls, one method per operation.

Policy lives here (deletes enabled, read-only mode, name validation); the
mechanics of the storage layout live in :mod:`dockyard.storage`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field

from dockyard.cache.base import BlobDescriptorCache, CachedBlobStatter
from dockyard.cache.manifests import CachedManifestReader, ManifestLRU
from dockyard.digest import CANONICAL_ALGORITHM, Digest, InvalidDigest
from dockyard.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    ReadOnly,
    TagImmutable,
    TagInvalid,
    Unsupported,
)
from dockyard.index.base import Index, RepositoryUsage
from dockyard.index.fence import BlobFence
from dockyard.index.records import manifest_record
from dockyard.manifest import (
    Manifest,
    foreign_layer_check,
    parse_manifest,
    referenced_blobs,
    referenced_manifests,
)
from dockyard.metadata import MetadataIndex, Page
from dockyard.names import is_valid_repository_name, is_valid_tag
from dockyard.policy import ImmutableTags
from dockyard.registry.manifests import StoredManifestReader
from dockyard.storage.blobs import BlobStatter, BlobStore, LinkedBlobStatter, LinkedBlobStore
from dockyard.storage.drivers.base import StorageDriver
from dockyard.storage.manifests import ManifestStore
from dockyard.storage.metadata import StorageMetadataIndex
from dockyard.storage.repositories import delete_repository_files
from dockyard.storage.tags import TagStore
from dockyard.storage.uploadlocks import UploadLocks
from dockyard.storage.uploads import UploadStore
from dockyard.types import BlobDescriptor, BlobDescriptorService, StoredManifest, UploadStatus

__all__ = [
    "BlobContent",
    "Namespace",
    "RegistryOptions",
    "Repository",
]

log = logging.getLogger("dockyard.index")

# Fault injection for the crash tests: SIGKILL this process after a storage write,
# before its index update (the window verify/rebuild must repair).
_KILL_BEFORE_INDEX = "DOCKYARD_FAULT_KILL_BEFORE_INDEX"

# The allow list distribution uses when validation.manifests.urls sets no pattern.
_ALLOW_NO_URL = re.compile("^$")


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """Policies from config.yml's ``storage`` and ``validation`` sections.

    ``validation_disabled`` turns off the ``urls`` allow/deny patterns only, as in
    distribution; manifests are always checked for the blobs they reference.
    """

    delete_enabled: bool = False
    read_only: bool = False
    validation_disabled: bool = False
    urls_allow: Sequence[re.Pattern[str]] = field(default_factory=tuple)
    urls_deny: Sequence[re.Pattern[str]] = field(default_factory=tuple)
    immutable_tags: ImmutableTags = field(default_factory=ImmutableTags)
    """``immutabletags``: tags that never move or go once they exist."""


@dataclass(frozen=True, slots=True)
class BlobContent:
    """A blob ready to be served: its descriptor and where its bytes are."""

    descriptor: BlobDescriptor
    canonical: Digest
    store: BlobStore

    def local_path(self) -> str | None:
        return self.store.local_path(self.canonical)

    def reader(self, offset: int = 0) -> AsyncIterator[bytes]:
        return self.store.reader(self.canonical, offset)

    async def redirect_url(self, method: str) -> str | None:
        return await self.store.redirect_url(self.canonical, method)


class Namespace:
    """Every repository of one registry, over one storage driver."""

    def __init__(
        self,
        driver: StorageDriver,
        options: RegistryOptions,
        metadata: MetadataIndex | None = None,
        cache: BlobDescriptorCache | None = None,
        locks: UploadLocks | None = None,
        index: Index | None = None,
        fence: BlobFence | None = None,
    ) -> None:
        self.driver = driver
        self.options = options
        self.cache = cache
        self.fence = fence
        """Online garbage collection's fence (``storage.maintenance.garbagecollect``):
        manifest PUTs claim what they reference and check blobs uncached."""
        # Upload writers hold a lease here when instances share a lock service (Redis).
        self.locks = locks
        self.blobs = BlobStore(driver, self.cached(BlobStatter(driver), None))
        self.index = index
        """The metadata index kept beside storage (None: listings walk storage)."""
        self._kill_before_index = os.environ.get(_KILL_BEFORE_INDEX) == "1"
        self.metadata: MetadataIndex = metadata or index or StorageMetadataIndex(
            driver, self.blobs, read_only=options.read_only
        )
        self.manifest_cache = ManifestLRU()
        # Work that finishes after a response (removing a finished upload's files).
        self.background: set[asyncio.Task[None]] = set()

    async def catalog(self, n: int, last: str) -> Page:
        return await self.metadata.repositories(n, last)

    async def usages(self, n: int, last: str) -> tuple[list[RepositoryUsage], bool]:
        """A catalog page with each repository's counts and sizes (needs the index)."""
        if self.index is None:
            raise Unsupported("repository usage needs the metadata index (storage.index)")
        return await self.index.usages(n, last)

    async def indexed(self, what: str, update: Awaitable[None]) -> None:
        """Run an index update after a storage write; a failure is logged, not raised.

        Storage already holds the write (the truth); the index is repaired by
        ``dockyard index verify``/``rebuild``, so the client is not failed for it.
        """
        if self._kill_before_index:
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            await update
        except Exception as exc:
            log.error("index: %s not recorded (%s); run `dockyard index rebuild`", what, exc)

    def cached(
        self, statter: BlobDescriptorService, repository: str | None
    ) -> BlobDescriptorService:
        """``statter`` behind the blob-descriptor cache, when one is configured."""
        return statter if self.cache is None else CachedBlobStatter(statter, self.cache, repository)

    def repository(self, name: str) -> Repository:
        """The repository ``name``; raises :class:`NameInvalid` before any path is built."""
        if not is_valid_repository_name(name):
            raise NameInvalid(f"invalid repository name {name[:300]!r}")
        return Repository(self, name)


class Repository:
    """Blobs and uploads of one repository."""

    def __init__(self, namespace: Namespace, name: str) -> None:
        self.namespace = namespace
        self.name = name
        links = LinkedBlobStatter(namespace.driver, namespace.blobs, name)
        self._links = links
        self.layers = LinkedBlobStore(links, namespace.cached(links, name))
        self._uploads = UploadStore(
            namespace.driver, name, self.layers, namespace.background, namespace.locks
        )
        self._manifests = ManifestStore(namespace.driver, namespace.blobs, name)
        self._tags = TagStore(namespace.driver, name)

    def _manifest_reader(self) -> CachedManifestReader:
        # Built when used: most requests (blobs, uploads) read no manifest.
        return CachedManifestReader(
            StoredManifestReader(self._manifests), self.namespace.manifest_cache
        )

    def _writable(self) -> None:
        if self.namespace.options.read_only:
            raise ReadOnly()

    def _deletable(self) -> None:
        if not self.namespace.options.delete_enabled:
            raise Unsupported("deletes are disabled (storage.delete.enabled)")
        self._writable()

    async def stat_blob(self, digest: Digest) -> BlobDescriptor:
        return await self.layers.stat(digest)

    async def open_blob(self, digest: Digest) -> BlobContent:
        """The blob's descriptor (from the cache when it has it) and where its bytes are."""
        desc = await self.layers.stat(digest)
        canonical = (
            digest if digest.algorithm == CANONICAL_ALGORITHM
            else await self.layers.resolve(digest)
        )
        return BlobContent(desc, canonical, self.namespace.blobs)

    async def delete_blob(self, digest: Digest) -> None:
        self._deletable()
        await self.layers.unlink(digest)
        if self.namespace.index is not None:
            await self.namespace.indexed(
                f"{self.name}: unlink of {digest}",
                self.namespace.index.layer_unlinked(self.name, digest),
            )

    async def mount_blob(self, digest: Digest, source: Repository | None) -> BlobDescriptor | None:
        """Link a blob from ``source`` (or, with no source, from anywhere in the registry).

        Returns None when it cannot be mounted, so the caller starts a normal upload.
        """
        self._writable()
        try:
            if source is not None:
                canonical = await source.layers.resolve(digest)
            elif digest.algorithm == CANONICAL_ALGORITHM:
                canonical = digest
            else:
                return None
            desc = await self.namespace.blobs.stat(canonical)
        except BlobUnknown:
            return None
        await self.layers.link(canonical, digest)
        await self._layers_linked({canonical, digest}, desc.size)
        return BlobDescriptor(digest, desc.size)

    async def _layers_linked(self, digests: set[Digest], size: int) -> None:
        index = self.namespace.index
        if index is not None:
            await self.namespace.indexed(
                f"{self.name}: link of {min(map(str, digests))}",
                index.layers_linked(self.name, digests, size),
            )

    async def _committed(self, desc: BlobDescriptor) -> BlobDescriptor:
        """Index the link an upload commit wrote (and its canonical twin)."""
        if self.namespace.index is not None:
            digests = {desc.digest}
            if desc.digest.algorithm != CANONICAL_ALGORITHM:
                digests.add(await self.layers.resolve(desc.digest))
            await self._layers_linked(digests, desc.size)
        return desc

    async def start_upload(self) -> UploadStatus:
        self._writable()
        return await self._uploads.create()

    async def push_blob(
        self, digest: Digest, body: AsyncIterator[bytes] | None, length: int | None
    ) -> BlobDescriptor:
        """A monolithic upload: the whole blob in one request."""
        self._writable()
        return await self._committed(await self._uploads.push(digest, body, length))

    async def upload_status(self, upload_id: str) -> UploadStatus:
        """Where the upload stands, whatever offset an older token names."""
        return await self._uploads.status(upload_id, check_data=True)

    async def write_upload(
        self,
        upload_id: str,
        body: AsyncIterator[bytes],
        *,
        claimed: int | None,
        start: int | None = None,
        length: int | None = None,
    ) -> UploadStatus:
        self._writable()
        return await self._uploads.write(
            upload_id, body, claimed=claimed, start=start, length=length
        )

    async def finish_upload(
        self,
        upload_id: str,
        digest: Digest,
        body: AsyncIterator[bytes] | None,
        *,
        claimed: int | None,
        start: int | None = None,
        length: int | None = None,
    ) -> BlobDescriptor:
        self._writable()
        return await self._committed(await self._uploads.commit(
            upload_id, digest, body, claimed=claimed, start=start, length=length
        ))

    async def cancel_upload(self, upload_id: str) -> None:
        self._writable()
        await self._uploads.cancel(upload_id)

    # -- manifests and tags -------------------------------------------------------------

    async def get_manifest(self, reference: str) -> StoredManifest:
        """The manifest a tag or digest names; ManifestUnknown if the repository lacks it.

        A reference that is not a valid tag names nothing: ManifestUnknown too
        (distribution's router never matches it; clients and the conformance suite
        expect 404). A malformed digest (it has a ``:``) stays DigestInvalid.
        """
        if ":" in reference:
            # The revision link is checked every time (a delete elsewhere removes it);
            # the content behind it never changes, so it may come from the cache.
            digest = _digest(reference)
            canonical = await self._manifests.linked(digest)
        else:
            if not is_valid_tag(reference):
                raise ManifestUnknown(f"no manifest {reference[:200]!r}")
            digest = await self._tags.get(reference)
            canonical = None
        stored = await self._manifest_reader().read(digest, canonical)
        if self.namespace.index is not None:
            self.namespace.index.record_pull(self.name, stored.digest)
        return stored

    async def put_manifest(
        self, reference: str, body: bytes, content_type: str | None
    ) -> Manifest:
        """Validate and store a manifest, then tag it when ``reference`` is a tag."""
        self._writable()
        tag: str | None = None
        expected: Digest | None = None
        if ":" in reference:
            expected = _digest(reference)
        else:
            _check_tag(reference)
            tag = reference
        manifest = parse_manifest(body, content_type)
        # The revision is stored under its sha256 digest: a reference in another
        # algorithm could not be fetched back, so (as distribution) it does not match.
        if expected is not None and expected != manifest.digest:
            raise DigestInvalid(f"manifest digest {manifest.digest} does not match {expected}")
        async with self._fenced(manifest):
            await self._verify(manifest)
            if tag is not None:
                await self._guard_tag(tag, manifest.digest)
            # The tag's links follow the revision in one batch of writes (one thread hop
            # and two disk flushes on the filesystem), never ahead of it.
            tag_writes = self._tags.tag_writes(tag, manifest.digest) if tag is not None else []
            await self._manifests.put(manifest.payload, manifest.signatures, tag_writes)
            if manifest.subject is not None:
                await self._manifests.add_referrer(manifest.subject.digest, manifest.digest)
            index = self.namespace.index
            if index is not None:
                # Inside the fence: the sweep sees these references once the claim goes.
                record = manifest_record(manifest.digest, manifest.payload, signatures=(
                    Digest.of(signature) for signature in manifest.signatures
                ), parsed=manifest)
                await self.namespace.indexed(
                    f"{self.name}@{manifest.digest}", index.manifest_put(self.name, record, tag)
                )
        return manifest

    def _fenced(self, manifest: Manifest) -> contextlib.AbstractAsyncContextManager[None]:
        """With online garbage collection, the claim on everything ``manifest``
        references, held until it is stored and indexed (:mod:`dockyard.index.fence`)."""
        fence = self.namespace.fence
        if fence is None:
            return contextlib.nullcontext()
        digests = {manifest.digest}
        digests.update(d.digest for d in referenced_blobs(manifest))
        digests.update(d.digest for d in referenced_manifests(manifest))
        return fence.hold(digests)

    async def _verify(self, manifest: Manifest) -> None:
        """Every blob and child manifest it references must be in this repository.

        As in distribution, ``validation.disabled`` only drops the URL patterns of
        foreign layers; references are checked whatever the configuration.
        """
        options = self.namespace.options
        allow, deny = options.urls_allow, options.urls_deny
        if options.validation_disabled:
            allow, deny = (), ()
        elif not allow and not deny:
            # distribution: with validation on and neither list set, allow nothing.
            allow = (_ALLOW_NO_URL,)
        foreign_layer_check(manifest, allow, deny)

        fenced = self.namespace.fence is not None

        async def blob_present(digest: Digest) -> Digest | None:
            try:
                if fenced:
                    # Collected blobs may still be in another worker's cache: ask storage.
                    canonical = await self._links.resolve(digest)
                    await BlobStatter(self.namespace.driver).stat(canonical)
                else:
                    await self.layers.stat(digest)
            except BlobUnknown:
                if fenced and self.namespace.cache is not None:
                    # So that the client's next HEAD says 404 and it uploads the blob again.
                    await self.namespace.cache.clear(self.name, digest)
                    await self.namespace.cache.clear(None, digest)
                return digest
            return None

        async def manifest_present(digest: Digest) -> Digest | None:
            return None if await self._manifests.exists(digest) else digest

        blobs = [d.digest for d in referenced_blobs(manifest)]
        if fenced:
            absent = [d for d in await asyncio.gather(*map(blob_present, blobs)) if d is not None]
        else:
            # The layer links read in one batch (one thread hop on the filesystem).
            present = await self.layers.present(blobs)
            absent = [b for b, here in zip(blobs, present, strict=True) if not here]
        missing = await asyncio.gather(
            *(manifest_present(d.digest) for d in referenced_manifests(manifest))
        )
        for digest in absent + [m for m in missing if m is not None]:
            raise ManifestBlobUnknown(f"unknown blob {digest}", detail=str(digest))

    async def delete_manifest(self, reference: str) -> tuple[str, ...]:
        """By tag: remove that tag. By digest: the revision, its tags, its referrer link.

        Returns the tags removed along with a revision (for their delete events).
        """
        self._deletable()
        if ":" not in reference:
            _check_tag(reference)
            await self._guard_tag(reference, None)
            await self._tags.untag(reference)
            if self.namespace.index is not None:
                await self.namespace.indexed(
                    f"{self.name}: delete of tag {reference}",
                    self.namespace.index.tag_deleted(self.name, reference),
                )
            return ()
        digest = _digest(reference)
        payload = await self._manifests.get_payload(digest)
        tags = await self._tags.lookup(digest)
        for tag in tags:  # deleting the revision would remove them too
            await self._guard_tag(tag, None)
        await self._manifests.delete(digest)
        self._manifest_reader().forget(digest)
        for tag in tags:
            await self._tags.untag(tag)
        try:
            subject = parse_manifest(payload, None).subject
        except (ManifestInvalid, ValueError):
            subject = None
        if subject is not None:
            await self._manifests.remove_referrer(subject.digest, digest)
        if self.namespace.index is not None:
            await self.namespace.indexed(
                f"{self.name}: delete of {digest}",
                self.namespace.index.manifest_deleted(self.name, digest),
            )
        return tuple(tags)

    async def delete(self) -> None:
        """Delete the whole repository: its tags, manifests, links and uploads.

        Blobs stay in the content store for garbage collection (other repositories
        may use them); repositories nested below this one are untouched.
        """
        self._deletable()
        unlinked = await delete_repository_files(self.namespace.driver, self.name)
        if self.namespace.cache is not None:
            for digest in unlinked:
                await self.namespace.cache.clear(self.name, digest)
        if self.namespace.index is not None:
            await self.namespace.indexed(
                f"{self.name}: repository delete",
                self.namespace.index.repository_deleted(self.name),
            )

    async def usage(self) -> RepositoryUsage:
        """Counts and sizes (needs the index); NameUnknown if the repository is not known."""
        index = self.namespace.index
        if index is None:
            raise Unsupported("repository usage needs the metadata index (storage.index)")
        usage = await index.usage(self.name)
        if usage is None:
            raise NameUnknown(self.name)
        return usage

    async def _guard_tag(self, tag: str, new: Digest | None) -> None:
        """Refuse to move ``tag`` to ``new`` (or remove it: None) when a rule of
        ``immutabletags`` protects it and it exists; re-pushing its digest is fine.

        Two concurrent first pushes of one immutable tag are not serialized: the
        last one to write ``current`` wins, as without the rule.
        """
        rules = self.namespace.options.immutable_tags
        if not rules:
            return
        rule = rules.rule_for(self.name, tag)
        if rule is None:
            return
        try:
            current = await self._tags.get(tag)
        except ManifestUnknown:
            return
        if current == new:
            return
        action = "deleted" if new is None else "moved"
        raise TagImmutable(
            f"tag {tag} of {self.name} is immutable by {rule.describe()}: it cannot be {action}",
            detail={"rule": f"immutabletags[{rule.index}]",
                    "repositories": list(rule.repositories), "tags": list(rule.tags),
                    "repository": self.name, "tag": tag, "digest": str(current)},
        )

    async def index_referrers(self) -> int:
        """Derive referrer links from the stored revisions (see ``dockyard index-referrers``)."""
        return await self._manifests.index_referrers()

    async def tags(self, n: int | None, last: str) -> Page:
        return await self.namespace.metadata.tags(self.name, n, last)

    async def referrers(
        self, subject: Digest, artifact_type: str | None
    ) -> list[dict[str, object]]:
        """Descriptors of the manifests that name ``subject``, as the referrers API lists them."""

        async def describe(digest: Digest) -> dict[str, object] | None:
            try:
                stored = await self.get_manifest(str(digest))
                manifest = parse_manifest(stored.body, stored.media_type)
            except (ManifestUnknown, ManifestInvalid):
                return None
            if manifest.subject is None or manifest.subject.digest != subject:
                return None
            desc: dict[str, object] = {
                "mediaType": stored.media_type,
                "digest": str(digest),
                "size": len(stored.body),
            }
            if manifest.artifact_type:
                desc["artifactType"] = manifest.artifact_type
            if manifest.annotations:
                desc["annotations"] = dict(manifest.annotations)
            return desc

        index = self.namespace.index
        if index is not None:
            return [
                {
                    "mediaType": r.media_type, "digest": str(r.digest), "size": r.size,
                    **({"artifactType": r.artifact_type} if r.artifact_type else {}),
                    **({"annotations": dict(r.annotations)} if r.annotations else {}),
                }
                for r in await index.referrer_records(self.name, subject, artifact_type)
            ]
        digests = await self.namespace.metadata.referrers(self.name, subject)
        found = [d for d in await asyncio.gather(*(describe(d) for d in digests)) if d]
        if artifact_type is not None:
            found = [d for d in found if d.get("artifactType") == artifact_type]
        return found


def _digest(reference: str) -> Digest:
    try:
        return Digest.parse(reference)
    except InvalidDigest as exc:
        raise DigestInvalid(str(exc)) from None


def _check_tag(tag: str) -> None:
    if not is_valid_tag(tag):
        raise TagInvalid(f"invalid tag {tag[:200]!r}")
