"""The repository wrapper that emits events (distribution's ``notifications.Listen``).

:class:`NotifyingRepository` has the interface of the repository it wraps and
delegates every operation to it; after an operation succeeds it records the event
(push, pull, mount, delete) with the request that caused it. Only the API wraps a
repository, once per request, and only when an endpoint is configured.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from dockyard.digest import Digest
from dockyard.index.base import RepositoryUsage
from dockyard.manifest import Manifest
from dockyard.metadata import Page
from dockyard.notifications.events import Lazy, RequestRecord
from dockyard.notifications.notifier import Notifier
from dockyard.registry.namespace import BlobContent, Repository
from dockyard.types import BlobDescriptor, StoredManifest, UploadStatus

__all__ = ["NotifyingRepository"]


class NotifyingRepository(Repository):
    """``inner`` with events; every method delegates to it."""

    # Repository.__init__ is not called: the wrapped repository's stores do the work.
    def __init__(  # pylint: disable=super-init-not-called
        self, inner: Repository, notifier: Notifier, request: RequestRecord | Lazy
    ) -> None:
        self._inner = inner
        self._notifier = notifier
        self._request = request
        self.namespace = inner.namespace
        self.name = inner.name
        self.layers = inner.layers

    def _emit(
        self,
        action: str,
        kind: str = "blob",
        *,
        digest: str = "",
        size: int = -1,
        media_type: str = "",
        tag: str = "",
        from_repository: str = "",
        payload: bytes | None = None,
    ) -> None:
        self._notifier.emit((action, self.name, self._request, kind, digest, size,
                             media_type, tag, from_repository, payload, time.time_ns()))

    def _blob(self, action: str, desc: BlobDescriptor, from_repository: str = "") -> None:
        self._notifier.emit((action, self.name, self._request, "blob", str(desc.digest),
                             desc.size, desc.media_type, "", from_repository, None,
                             time.time_ns()))

    # -- blobs ------------------------------------------------------------------------

    # Pulls, the most frequent requests, queue their event here, inline
    # (Notifier.emit's work), rather than through _blob and emit: two calls fewer.
    # Events are plain tuples of EventRecord's layout (dockyard.notifications.events.Event).

    async def stat_blob(self, digest: Digest) -> BlobDescriptor:
        # The API stats a blob only to answer a HEAD, which distribution counts as a pull.
        desc = await self._inner.stat_blob(digest)
        notifier = self._notifier
        queue = notifier.queue
        if not queue:
            notifier.wake()
        queue.append(("pull", self.name, self._request, "blob", str(desc.digest),
                      desc.size, desc.media_type, "", "", None, time.time_ns()))
        return desc

    async def open_blob(self, digest: Digest) -> BlobContent:
        content = await self._inner.open_blob(digest)
        desc = content.descriptor
        notifier = self._notifier
        queue = notifier.queue
        if not queue:
            notifier.wake()
        queue.append(("pull", self.name, self._request, "blob", str(desc.digest),
                      desc.size, desc.media_type, "", "", None, time.time_ns()))
        return content

    async def delete_blob(self, digest: Digest) -> None:
        await self._inner.delete_blob(digest)
        self._emit("delete", digest=str(digest))

    async def mount_blob(self, digest: Digest, source: Repository | None) -> BlobDescriptor | None:
        desc = await self._inner.mount_blob(digest, source)
        if desc is not None:
            self._blob("mount", desc, from_repository=source.name if source else "")
        return desc

    async def start_upload(self) -> UploadStatus:
        return await self._inner.start_upload()

    async def push_blob(
        self, digest: Digest, body: AsyncIterator[bytes] | None, length: int | None
    ) -> BlobDescriptor:
        desc = await self._inner.push_blob(digest, body, length)
        self._blob("push", desc)
        return desc

    async def upload_status(self, upload_id: str) -> UploadStatus:
        return await self._inner.upload_status(upload_id)

    async def write_upload(
        self,
        upload_id: str,
        body: AsyncIterator[bytes],
        *,
        claimed: int | None,
        start: int | None = None,
        length: int | None = None,
    ) -> UploadStatus:
        return await self._inner.write_upload(
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
        desc = await self._inner.finish_upload(
            upload_id, digest, body, claimed=claimed, start=start, length=length
        )
        self._blob("push", desc)
        return desc

    async def cancel_upload(self, upload_id: str) -> None:
        await self._inner.cancel_upload(upload_id)

    # -- manifests and tags -----------------------------------------------------------

    async def get_manifest(self, reference: str) -> StoredManifest:
        stored = await self._inner.get_manifest(reference)
        notifier = self._notifier  # as _manifest does, inlined for the pull
        queue = notifier.queue
        if not queue:
            notifier.wake()
        queue.append((
            "pull", self.name, self._request, "manifest", stored.digest_text, len(stored.body),
            stored.media_type, "" if ":" in reference else reference, "",
            stored.body if notifier.include_references else None, time.time_ns()))
        return stored

    async def put_manifest(
        self, reference: str, body: bytes, content_type: str | None
    ) -> Manifest:
        manifest = await self._inner.put_manifest(reference, body, content_type)
        self._manifest("push", manifest.digest, manifest.media_type, manifest.payload, reference)
        return manifest

    def _manifest(
        self, action: str, digest: Digest, media_type: str, payload: bytes, reference: str
    ) -> None:
        self._notifier.emit((
            action, self.name, self._request, "manifest", str(digest), len(payload), media_type,
            "" if ":" in reference else reference, "",
            payload if self._notifier.include_references else None, time.time_ns()))

    async def delete_manifest(self, reference: str) -> tuple[str, ...]:
        tags = await self._inner.delete_manifest(reference)
        if ":" in reference:
            # As distribution: the revision, then each tag that went with it.
            self._emit("delete", "manifest", digest=reference)
        else:
            self._emit("delete", "manifest", tag=reference)
        for tag in tags:
            self._emit("delete", "manifest", tag=tag)
        return tags

    async def delete(self) -> None:
        await self._inner.delete()
        # distribution 3's repository delete event: the repository alone.
        self._emit("delete", "repository")

    async def usage(self) -> RepositoryUsage:
        return await self._inner.usage()

    async def index_referrers(self) -> int:
        return await self._inner.index_referrers()

    async def tags(self, n: int | None, last: str) -> Page:
        return await self._inner.tags(n, last)

    async def referrers(
        self, subject: Digest, artifact_type: str | None
    ) -> list[dict[str, object]]:
        return await self._inner.referrers(subject, artifact_type)
