"""Manifest revisions of one repository, as distribution lays them out.

A revision is a blob (the payload) linked at ``_manifests/revisions/<alg>/<hex>/link``.
Signed schema1 signatures are blobs linked below the revision's ``signatures/``;
manifests with a ``subject`` are linked below the subject's ``referrers/`` so the
referrers API lists them without scanning every manifest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from dockyard.digest import Digest, InvalidDigest
from dockyard.errors import BlobUnknown, ManifestUnknown, RegistryFault
from dockyard.manifest import parse_manifest
from dockyard.storage import paths
from dockyard.storage.blobs import BlobStore, LinkedBlobStatter, LinkedBlobStore
from dockyard.storage.drivers.base import PathNotFound, StorageDriver, put_many

__all__ = ["ManifestStore"]


class ManifestStore:
    """Revisions, signatures and referrer links of one repository."""

    def __init__(self, driver: StorageDriver, blobs: BlobStore, repository: str) -> None:
        self.driver = driver
        self.blobs = blobs
        self.repository = repository
        # Manifests are also looked for under _layers, where distribution 2.1.0 linked them.
        self.revisions = LinkedBlobStore(LinkedBlobStatter(
            driver, blobs, repository,
            link_paths=(paths.manifest_revision_link_path, paths.layer_link_path),
        ))

    async def exists(self, digest: Digest) -> bool:
        try:
            await self.revisions.stat(digest)
        except BlobUnknown:
            return False
        return True

    async def linked(self, digest: Digest) -> Digest:
        """The canonical digest of a revision linked here (one link read)."""
        try:
            return await self.revisions.resolve(digest)
        except BlobUnknown:
            raise ManifestUnknown(str(digest)) from None

    async def read(self, canonical: Digest) -> bytes:
        """The payload of a revision already known to be linked."""
        try:
            return await self.blobs.get(canonical)
        except BlobUnknown:
            raise ManifestUnknown(str(canonical)) from None

    async def get_payload(self, digest: Digest) -> bytes:
        return await self.read(await self.linked(digest))

    def revision_writes(self, payload: bytes, digest: Digest) -> list[tuple[str, bytes]]:
        """The files that store ``payload`` (sha256 ``digest``) and link it as a revision,
        in the order they must appear (for :func:`~dockyard.storage.drivers.base.put_many`)."""
        return [
            (paths.blob_data_path(digest), payload),
            (paths.manifest_revision_link_path(self.repository, digest), str(digest).encode()),
        ]

    async def put(
        self,
        payload: bytes,
        signatures: tuple[bytes, ...] = (),
        then: Sequence[tuple[str, bytes]] = (),
    ) -> Digest:
        """Store the payload (and schema1 signatures), then link the revision, then
        write ``then`` (a tag's links: :meth:`TagStore.tag_writes`), all in one batch
        where the driver batches writes."""
        if not signatures:
            digest = Digest.of(payload)
            await put_many(self.driver, [*self.revision_writes(payload, digest), *then])
            return digest
        desc = await self.blobs.put(payload)
        for signature in signatures:
            sig = await self.blobs.put(signature)
            await self.driver.put_content(
                paths.manifest_signature_link_path(self.repository, desc.digest, sig.digest),
                str(sig.digest).encode(),
            )
        await self.revisions.link(desc.digest)
        await put_many(self.driver, then)
        return desc.digest

    async def signatures(self, digest: Digest) -> list[bytes]:
        """Stored schema1 signatures of a revision, in a stable order."""
        root = paths.manifest_signatures_path(self.repository, digest)
        found: list[bytes] = []
        try:
            algorithms = await self.driver.list(root)
        except PathNotFound:
            return found
        for alg_dir in sorted(algorithms):
            for entry in sorted(await self.driver.list(alg_dir)):
                with contextlib.suppress(PathNotFound, InvalidDigest, BlobUnknown):
                    link = await self.driver.get_content(paths.link_in(entry))
                    found.append(await self.blobs.get(Digest.parse(link.decode().strip())))
        return found

    async def delete(self, digest: Digest) -> None:
        """Remove the revision link; the payload stays for garbage collection."""
        try:
            await self.driver.delete(paths.manifest_revision_link_path(self.repository, digest))
        except PathNotFound:
            raise ManifestUnknown(str(digest)) from None

    async def add_referrer(self, subject: Digest, referrer: Digest) -> None:
        await self.driver.put_content(
            paths.manifest_referrer_link_path(self.repository, subject, referrer),
            str(referrer).encode(),
        )

    async def remove_referrer(self, subject: Digest, referrer: Digest) -> None:
        link = paths.manifest_referrer_link_path(self.repository, subject, referrer)
        with contextlib.suppress(PathNotFound):
            await self.driver.delete(paths.link_dir(link))

    async def derive_referrers(self) -> AsyncIterator[tuple[Digest, Digest]]:
        """(subject, referrer) for every stored revision that names a subject."""
        try:
            algorithms = await self.driver.list(paths.manifest_revisions_root(self.repository))
        except PathNotFound:
            algorithms = []
        for alg_dir in algorithms:
            algorithm = alg_dir.rsplit("/", 1)[1]
            for revision in await self.driver.list(alg_dir):
                try:
                    digest = Digest.parse(f"{algorithm}:{revision.rsplit('/', 1)[1]}")
                    payload = await self.get_payload(digest)
                except (InvalidDigest, ManifestUnknown):
                    continue
                if b"subject" not in payload.lower():
                    continue  # cheap pre-filter: most manifests have no subject
                try:
                    subject = parse_manifest(payload, None).subject
                except RegistryFault:
                    continue
                if subject is not None:
                    yield subject.digest, digest

    async def index_referrers(self) -> int:
        """Link every stored manifest that names a subject; returns how many.

        Registries that keep no referrer links (distribution 2.x) leave manifests
        with a ``subject`` unlisted; this derives the links from the revisions,
        once per repository, then marks the repository as indexed.
        """
        linked = 0
        async for subject, digest in self.derive_referrers():
            await self.add_referrer(subject, digest)
            linked += 1
        await self.driver.put_content(
            paths.referrers_indexed_path(self.repository), b"referrer links derived from revisions"
        )
        return linked

    async def referrers(self, subject: Digest, *, may_index: bool = True) -> list[Digest]:
        """Digests linked as referrers of ``subject`` (whether or not they still exist).

        A repository not indexed yet is indexed first; with ``may_index`` False
        (read-only mode) its revisions are scanned instead and nothing is written.
        """
        unindexed: list[Digest] = []
        try:
            await self.driver.stat(paths.referrers_indexed_path(self.repository))
        except PathNotFound:
            if may_index:
                await self.index_referrers()
            else:
                unindexed = [r async for s, r in self.derive_referrers() if s == subject]
        linked = await self._linked_referrers(subject)
        if unindexed:
            # The order the links would have been listed in once written.
            return sorted({*linked, *unindexed}, key=str)
        return linked

    async def _linked_referrers(self, subject: Digest) -> list[Digest]:
        root = paths.manifest_referrers_path(self.repository, subject)
        try:
            algorithms = await self.driver.list(root)
        except PathNotFound:
            return []
        entries: list[str] = []
        for alg_dir in sorted(algorithms):
            entries.extend(sorted(await self.driver.list(alg_dir)))

        async def read(entry: str) -> Digest | None:
            try:
                raw = await self.driver.get_content(paths.link_in(entry))
                return Digest.parse(raw.decode().strip())
            except (PathNotFound, InvalidDigest, UnicodeDecodeError):
                return None

        return [d for d in await asyncio.gather(*(read(e) for e in entries)) if d is not None]
