"""The pull-through cache as another Namespace, as distribution's ``proxyingRegistry``.

A :class:`ProxyRepository` is a :class:`~dockyard.registry.namespace.Repository`
whose reads fall back to the upstream on a miss and store what they fetch in the
normal layout, verified first:

* a blob is streamed from the upstream into an ordinary upload and committed under
  the digest asked for, so its bytes are hashed before it is linked; every client
  waiting for it is streamed the bytes meanwhile (:mod:`~.fill`: one download per
  blob across processes; a client that leaves does not stop it); a ``HEAD`` asks the
  upstream's ``HEAD`` and downloads nothing;
* a tag is resolved upstream with ``HEAD`` (Docker Hub does not count those); the
  manifest is fetched with ``GET`` by digest only when that digest is not cached,
  checked against the digest, stored without waiting for its blobs (as
  distribution's ``SkipLayerVerification``), and tagged locally;
* tags and the catalog are listed by the upstream; when it cannot answer, the
  cached copy answers instead.

Pushes, mounts and deletes are refused with ``UNSUPPORTED``, as in distribution.
On read-only storage (``maintenance.readonly``) the cache writes nothing: misses are
served from the upstream, verified the same way, and not kept; nothing expires.
(distribution's proxy would go on writing: its read-only mode only refuses requests.)
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from dockyard.cache.base import BlobDescriptorCache
from dockyard.digest import CANONICAL_ALGORITHM, Digest, InvalidDigest
from dockyard.errors import (
    BlobUnknown,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestInvalid,
    ManifestUnknown,
    ManifestUnverified,
    NameUnknown,
    RegistryFault,
    SizeInvalid,
    TagInvalid,
    Unsupported,
)
from dockyard.manifest import Manifest, parse_manifest
from dockyard.metadata import MetadataIndex, Page
from dockyard.names import is_valid_repository_name, is_valid_tag
from dockyard.proxy.fill import BlobFill, FillingBlob, claim_fill, release_claim, verify
from dockyard.proxy.remote import CHUNK, RemoteManifest, UpstreamNotFound, UpstreamUnavailable
from dockyard.proxy.routes import Upstream, mark_stale, proxy_middleware, route, warn_if_stale
from dockyard.proxy.scheduler import BLOB, MANIFEST, Entry, TTLScheduler
from dockyard.registry.namespace import BlobContent, Namespace, RegistryOptions, Repository
from dockyard.storage.drivers.base import PathNotFound, StorageDriver
from dockyard.storage.manifests import ManifestStore
from dockyard.storage.tags import TagStore
from dockyard.storage.uploadlocks import UploadLocks
from dockyard.storage.uploads import UploadStore
from dockyard.types import BlobDescriptor, StoredManifest, UploadStatus

__all__ = ["ProxyNamespace", "ProxyRepository"]

log = logging.getLogger("dockyard.proxy")

_READ_ONLY_CACHE = "this registry is a pull-through cache: pushes and deletes are not supported"


class ProxyNamespace(Namespace):
    """Repositories that are caches of an upstream (all of them with ``remoteurl``),
    beside hosted ones (with ``upstreams``)."""

    def __init__(
        self,
        driver: StorageDriver,
        options: RegistryOptions,
        upstreams: Sequence[Upstream],
        metadata: MetadataIndex | None = None,
        cache: BlobDescriptorCache | None = None,
        locks: UploadLocks | None = None,
        *,
        primary: bool = True,
        workers: int = 1,
    ) -> None:
        """``primary``: the one worker of ``workers`` (of this instance) that expires content."""
        super().__init__(driver, options, metadata, cache, locks)
        self.upstreams = tuple(upstreams)
        # With remoteurl the whole registry is the cache: a blob expires globally,
        # as in distribution. Beside hosted repositories, only the cache's link goes.
        self.caches_everything = len(self.upstreams) == 1 and not self.upstreams[0].prefix
        # Read-only storage (maintenance.readonly): nothing is cached, nothing expires;
        # the stored schedule waits untouched until writes are allowed again.
        self.scheduler = (
            TTLScheduler(driver, self._expire, timers=primary, shared=workers > 1)
            if any(u.ttl > 0 for u in upstreams) and not options.read_only
            else None
        )
        # Blob downloads in flight, shared by every request that misses the same blob.
        self.fills: dict[tuple[str, Digest], BlobFill] = {}

    def install(self, app: web.Application) -> None:
        """Hook the cache into the application (before it starts)."""
        app.cleanup_ctx.append(self._lifespan)
        app.middlewares.append(proxy_middleware(self.upstreams))
        app.on_response_prepare.append(warn_if_stale)

    async def _lifespan(self, _app: web.Application) -> AsyncIterator[None]:
        """The scheduler runs, and upstream connections stay open, while the app does."""
        if self.scheduler is not None:
            await self.scheduler.start()
        try:
            yield
        finally:
            for fill in list(self.fills.values()):
                fill.task.cancel()
            if self.scheduler is not None:
                await self.scheduler.stop()
            for upstream in self.upstreams:
                await upstream.remote.aclose()

    async def catalog(self, n: int, last: str) -> Page:
        if not self.caches_everything:
            return await super().catalog(n, last)
        try:
            return await self.upstreams[0].remote.catalog(n, last)
        except (UpstreamUnavailable, UpstreamNotFound) as exc:
            log.warning("proxy: catalog from the cache, the upstream failed: %s", exc)
            mark_stale()
            return await super().catalog(n, last)

    def repository(self, name: str) -> Repository:
        hosted = super().repository(name)  # validates the name
        upstream = route(self.upstreams, name)
        return hosted if upstream is None else ProxyRepository(self, name, upstream)

    def schedule(self, upstream: Upstream, repository: str, digest: Digest, kind: int) -> None:
        if self.scheduler is not None and upstream.ttl > 0:
            self.scheduler.add(repository, digest, kind, upstream.ttl)

    async def _expire(self, entry: Entry) -> None:
        """Remove expired content; content already gone is no error."""
        if not is_valid_repository_name(entry.repository):
            return
        name, digest = entry.repository, entry.digest
        if entry.kind == BLOB:
            layers = Repository(self, name).layers  # the hosted view: no upstream asked
            with contextlib.suppress(BlobUnknown, PathNotFound):
                canonical = await layers.resolve(digest)
                await layers.unlink(digest)
                if self.caches_everything:
                    await self.blobs.delete(canonical)
        else:
            tags = TagStore(self.driver, name)
            for tag in await tags.lookup(digest):
                with contextlib.suppress(ManifestUnknown, PathNotFound):
                    await tags.untag(tag)
            with contextlib.suppress(ManifestUnknown, BlobUnknown, PathNotFound):
                await ManifestStore(self.driver, self.blobs, name).delete(digest)
            self.manifest_cache.remove(digest)
        log.info("proxy: expired %s", entry.key)


class ProxyRepository(Repository):
    """One repository of the cache: local content first, the upstream on a miss."""

    namespace: ProxyNamespace

    def __init__(self, namespace: ProxyNamespace, name: str, upstream: Upstream) -> None:
        super().__init__(namespace, name)
        self.upstream = upstream
        self.remote = upstream.remote
        self.remote_name = upstream.remote_name(name)
        self._cached_manifests = ManifestStore(namespace.driver, namespace.blobs, name)
        self._cached_tags = TagStore(namespace.driver, name)

    # -- blobs ---------------------------------------------------------------------------

    async def stat_blob(self, digest: Digest) -> BlobDescriptor:
        """Local first; on a miss the upstream's ``HEAD`` (nothing downloaded)."""
        try:
            return await super().stat_blob(digest)
        except BlobUnknown:
            pass
        try:
            size = await self.remote.blob_size(self.remote_name, digest)
        except UpstreamNotFound:
            raise BlobUnknown(str(digest)) from None
        return BlobDescriptor(digest, size)

    async def open_blob(self, digest: Digest) -> BlobContent:
        """Local first; on a miss the bytes of the fill, streamed while it downloads."""
        try:
            return await super().open_blob(digest)
        except BlobUnknown:
            pass
        fill = self._fill(digest)
        # A client that disconnects stops waiting here; the fill others share goes on.
        if await fill.streaming():
            assert fill.size is not None
            descriptor = BlobDescriptor(digest, fill.size)
            return FillingBlob(descriptor, digest, self.namespace.blobs, fill)
        return await super().open_blob(digest)  # another process stored it

    def _fill(self, digest: Digest) -> BlobFill:
        """The blob's download in this process, started unless one is in flight."""
        fills = self.namespace.fills
        key = (self.name, digest)
        fill = fills.get(key)
        if fill is None:
            fill = BlobFill(lambda started: self._download(started, digest))
            fills[key] = fill
            fill.task.add_done_callback(lambda _: fills.pop(key, None))
        return fill

    async def _download(self, fill: BlobFill, digest: Digest) -> None:
        try:
            if self.namespace.options.read_only:
                await self._pass_through(fill, digest)
                return
            claim = await claim_fill(
                self.namespace.driver, self.name, digest, lambda: self._stored(digest)
            )
            if claim is None:
                return  # another process downloaded it meanwhile
            stored = False
            try:
                await self._store_blob(fill, digest)
                stored = True
            finally:
                await release_claim(claim, stored=stored)
        except UpstreamNotFound:
            raise BlobUnknown(str(digest)) from None
        except (DigestInvalid, SizeInvalid) as exc:
            log.error("proxy: upstream sent a wrong %s/%s: %s", self.name, digest, exc)
            raise UpstreamUnavailable(f"the upstream's copy of {digest} is corrupt") from None
        self.namespace.schedule(self.upstream, self.name, digest, BLOB)

    async def _store_blob(self, fill: BlobFill, digest: Digest) -> None:
        """Download into an upload committed under ``digest`` (hashed before it is linked)."""
        uploads = UploadStore(
            self.namespace.driver, self.name, self.layers, self.namespace.background
        )
        status = await uploads.create()
        try:
            async with self.remote.blob(self.remote_name, digest) as blob:
                # Without a size the response cannot announce one: clients wait for the end.
                chunks = blob.chunks if blob.size is None else fill.tee(blob.chunks, blob.size)
                # Written as the download's chunks come (no gathering into bigger
                # batches): the fill's memory stays a few chunks.
                await uploads.commit(
                    status.upload_id, digest, chunks, claimed=0, length=blob.size, batch=CHUNK
                )
        except BaseException:
            await _cancel(uploads, status)
            raise

    async def _pass_through(self, fill: BlobFill, digest: Digest) -> None:
        """Read-only storage: stream the upstream's bytes, verified, and store nothing."""
        async with self.remote.blob(self.remote_name, digest) as blob:
            if blob.size is None:
                raise UpstreamUnavailable(f"the upstream names no size for blob {digest}")
            await verify(fill.tee(blob.chunks, blob.size), digest, blob.size)

    async def _stored(self, digest: Digest) -> bool:
        try:
            await self.layers.stat(digest)
        except BlobUnknown:
            return False
        return True

    # -- manifests and tags --------------------------------------------------------------

    async def get_manifest(self, reference: str) -> StoredManifest:
        if ":" in reference:
            digest = _parse_digest(reference)
            try:
                return await super().get_manifest(reference)
            except ManifestUnknown:
                pass
            fetched = await self._fetch(str(digest))
            if self.namespace.options.read_only:
                return _served(self._check(fetched, digest), fetched, digest)
            await self._store(fetched, digest)
            self.namespace.schedule(self.upstream, self.name, digest, MANIFEST)
            return await super().get_manifest(reference)
        if not is_valid_tag(reference):
            raise TagInvalid(f"invalid tag {reference[:200]!r}")
        try:
            head = await self.remote.manifest(self.remote_name, reference, head=True)
        except UpstreamNotFound:
            raise ManifestUnknown(f"unknown tag {reference}") from None
        except UpstreamUnavailable as exc:
            try:
                stored = await super().get_manifest(reference)
            except ManifestUnknown:
                raise exc from None
            log.warning(
                "proxy: %s:%s from the cache, the upstream failed: %s", self.name, reference, exc
            )
            mark_stale()
            return stored
        if self.namespace.options.read_only:
            return await self._pass_through_manifest(reference, head.digest)
        if head.digest is None:  # an upstream that does not name digests: fetch by tag
            fetched = await self._fetch(reference)
            digest = await self._store(fetched, fetched.digest or Digest.of(fetched.body))
            fresh = True
        else:
            digest = head.digest
            try:
                await super().get_manifest(str(digest))
                fresh = False
            except ManifestUnknown:
                await self._store(await self._fetch(str(digest)), digest)
                fresh = True
        try:
            moved = await self._cached_tags.get(reference) != digest
        except ManifestUnknown:
            moved = True
        if moved:  # the tag is written only when it changed upstream (no write per pull)
            await self._cached_tags.tag(reference, digest)
        if fresh or moved:
            self.namespace.schedule(self.upstream, self.name, digest, MANIFEST)
        return await super().get_manifest(str(digest))

    async def _pass_through_manifest(self, tag: str, digest: Digest | None) -> StoredManifest:
        """Read-only storage: the cached revision if there is one, else the upstream's,
        checked and not stored (nor tagged)."""
        if digest is not None:
            with contextlib.suppress(ManifestUnknown):
                return await super().get_manifest(str(digest))
        fetched = await self._fetch(str(digest) if digest is not None else tag)
        expected = digest or fetched.digest or Digest.of(fetched.body)
        return _served(self._check(fetched, expected), fetched, expected)

    async def _fetch(self, reference: str) -> RemoteManifest:
        try:
            return await self.remote.manifest(self.remote_name, reference, head=False)
        except UpstreamNotFound:
            raise ManifestUnknown(f"unknown manifest {reference}") from None

    def _check(self, fetched: RemoteManifest, expected: Digest) -> Manifest:
        """The upstream's manifest, parsed and checked against ``expected``."""
        try:
            manifest = parse_manifest(fetched.body, fetched.media_type or None)
        except (ManifestInvalid, ManifestUnverified, ValueError, RegistryFault) as exc:
            raise UpstreamUnavailable(f"the upstream sent an invalid manifest: {exc}") from None
        actual = (
            manifest.digest
            if expected.algorithm == CANONICAL_ALGORITHM
            else Digest(
                expected.algorithm, hashlib.new(expected.algorithm, manifest.payload).hexdigest()
            )
        )
        if actual != expected or (fetched.digest is not None and fetched.digest != expected):
            log.error("proxy: upstream manifest %s/%s has digest %s", self.name, expected, actual)
            raise UpstreamUnavailable(f"the upstream's manifest {expected} does not match")
        return manifest

    async def _store(self, fetched: RemoteManifest, expected: Digest) -> Digest:
        """Check the upstream's manifest against ``expected``, then store it as a revision."""
        manifest = self._check(fetched, expected)
        canonical = await self._cached_manifests.put(manifest.payload, manifest.signatures)
        if expected != canonical:
            await self._cached_manifests.revisions.link(canonical, expected)
        if manifest.subject is not None:
            await self._cached_manifests.add_referrer(manifest.subject.digest, canonical)
        return expected

    async def tags(self, n: int | None, last: str) -> Page:
        try:
            return await self.remote.tags(self.remote_name, n, last)
        except UpstreamNotFound:
            raise NameUnknown(self.name) from None
        except UpstreamUnavailable as exc:
            log.warning("proxy: tags of %s from the cache, the upstream failed: %s", self.name, exc)
            try:
                page = await super().tags(n, last)
            except NameUnknown:
                raise exc from None
            mark_stale()
            return page

    # -- writes: refused ------------------------------------------------------------------

    async def delete_blob(self, digest: Digest) -> None:
        raise Unsupported(_READ_ONLY_CACHE)

    async def mount_blob(self, digest: Digest, source: Repository | None) -> BlobDescriptor | None:
        raise Unsupported(_READ_ONLY_CACHE)

    async def start_upload(self) -> UploadStatus:
        raise Unsupported(_READ_ONLY_CACHE)

    async def push_blob(
        self, digest: Digest, body: AsyncIterator[bytes] | None, length: int | None
    ) -> BlobDescriptor:
        raise Unsupported(_READ_ONLY_CACHE)

    async def write_upload(
        self,
        upload_id: str,
        body: AsyncIterator[bytes],
        *,
        claimed: int | None,
        start: int | None = None,
        length: int | None = None,
    ) -> UploadStatus:
        raise Unsupported(_READ_ONLY_CACHE)

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
        raise Unsupported(_READ_ONLY_CACHE)

    async def cancel_upload(self, upload_id: str) -> None:
        raise Unsupported(_READ_ONLY_CACHE)

    async def put_manifest(self, reference: str, body: bytes, content_type: str | None) -> Manifest:
        raise Unsupported(_READ_ONLY_CACHE)

    async def delete_manifest(self, reference: str) -> tuple[str, ...]:
        raise Unsupported(_READ_ONLY_CACHE)


def _served(manifest: Manifest, fetched: RemoteManifest, digest: Digest) -> StoredManifest:
    """A checked upstream manifest as served without storing it."""
    return StoredManifest(digest, fetched.media_type or manifest.media_type, fetched.body)


def _parse_digest(reference: str) -> Digest:
    try:
        return Digest.parse(reference)
    except InvalidDigest as exc:
        raise DigestInvalid(str(exc)) from None


async def _cancel(uploads: UploadStore, status: UploadStatus) -> None:
    with contextlib.suppress(BlobUploadUnknown, PathNotFound):
        await uploads.cancel(status.upload_id)
