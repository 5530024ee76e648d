"""Resumable blob uploads under ``_uploads/<uuid>``, stateless between requests.

Each request resumes from storage alone: ``startedat`` proves the upload exists,
``data`` holds the bytes, and ``hashstates/<alg>/<offset>`` holds the running
SHA-256 and SHA-512 state after every acknowledged chunk, so finishing an upload
never re-reads its data. A request that dies mid-chunk leaves bytes past the last
acknowledged offset; the next request (which names that offset in its signed
state token) cuts them off and goes on from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from datetime import UTC, datetime

from dockyard.digest import CANONICAL_ALGORITHM, Digest
from dockyard.errors import (
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    RangeInvalid,
    SizeInvalid,
)
from dockyard.hashstate import SUPPORTED_ALGORITHMS, InvalidHashState, ResumableHash
from dockyard.storage import paths
from dockyard.storage.blobs import BlobStore, LinkedBlobStore
from dockyard.storage.bodies import (
    BATCH,
    INLINE,
    RunningHashes,
    empty_body,
    feed,
    prepend,
    read_up_to,
)
from dockyard.storage.drivers.base import (
    InvalidOffset,
    PathNotFound,
    StorageDriver,
    StorageError,
    put_many,
    put_unsynced,
    roll_back,
)
from dockyard.storage.uploadclaims import ChunkClaim, OffsetBusy
from dockyard.storage.uploadlocks import LockBusy, LockUnavailable, UploadLease, UploadLocks
from dockyard.types import BlobDescriptor, UploadStatus

__all__ = ["UPLOAD_ID_PATTERN", "UploadStore"]

log = logging.getLogger("dockyard.uploads")

# A subset of the driver path grammar (no "=": distribution's PathRegexp has none), so
# an odd id is an unknown upload (404), never an invalid storage path (5xx).
UPLOAD_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")


class UploadStore:
    """The uploads of one repository."""

    def __init__(
        self,
        driver: StorageDriver,
        repository: str,
        layers: LinkedBlobStore,
        background: set[asyncio.Task[None]] | None = None,
        locks: UploadLocks | None = None,
    ) -> None:
        self.driver = driver
        # One writer per upload: a shared lock service if configured, else storage claims.
        self.locks = locks
        self.repository = repository
        self.layers = layers
        self.blobs: BlobStore = layers.blobs
        # Clean-up tasks, held (by whoever outlives requests) until they finish.
        self._background = background if background is not None else set()

    def _path(
        self, upload_id: str, location: Callable[[str, str], str] = paths.upload_path
    ) -> str:
        """``location`` (a :mod:`~dockyard.storage.paths` function) of a checked upload id."""
        if not UPLOAD_ID_PATTERN.fullmatch(upload_id):
            raise BlobUploadUnknown(upload_id[:100])
        return location(self.repository, upload_id)

    async def create(self) -> UploadStatus:
        upload_id = str(uuid.uuid4())
        started = datetime.now(UTC).replace(microsecond=0)
        # Not waited onto the disk: lost in a power cut, the upload is unknown and
        # the client starts another (purging removes what is left by its age);
        # damaged, it reads as started now (see _started_at).
        await put_unsynced(self.driver, [(
            paths.upload_startedat_path(self.repository, upload_id),
            started.strftime("%Y-%m-%dT%H:%M:%SZ").encode(),
        )])
        return UploadStatus(upload_id, 0, started)

    async def _started_at(self, upload_id: str) -> datetime:
        try:
            raw = await self.driver.get_content(self._path(upload_id, paths.upload_startedat_path))
        except PathNotFound:
            raise BlobUploadUnknown(upload_id) from None
        try:
            return datetime.fromisoformat(raw.decode().strip().replace("Z", "+00:00"))
        except ValueError:
            return datetime.now(UTC)

    async def status(self, upload_id: str, *, check_data: bool = False) -> UploadStatus:
        """Where the upload stands: the last offset acknowledged to any client.

        With ``check_data`` (a client asking where to go on), acknowledged bytes whose
        data is gone mean a final PUT moved them into the blob store and the process
        died before retiring the upload: it is finished, so BlobUploadUnknown.
        """
        started, offset = await asyncio.gather(
            self._started_at(upload_id), self._progress(upload_id)
        )
        if check_data and offset and not await self._has_data(upload_id):
            raise BlobUploadUnknown(upload_id)
        return UploadStatus(upload_id, offset, started)

    async def _has_data(self, upload_id: str) -> bool:
        """Whether the upload's data exists (no: a final PUT published it).

        Asked while another request may be appending to it: on an object store the
        file changes form as it grows (S3: a multipart upload completed into an object,
        then copied into a new multipart upload), and ``stat`` is several requests
        (HeadObject, then the listings), so one look can fall between two forms and
        see neither. Only a second miss right after means the data is gone.
        """
        data = self._path(upload_id, paths.upload_data_path)
        for _ in range(2):
            try:
                await self.driver.stat(data)
            except PathNotFound:
                continue
            return True
        return False

    async def _progress(self, upload_id: str) -> int:
        """The highest offset with a saved hash state: the last one acknowledged.

        A state is saved only once its chunk is in place, and before the client is
        told, so bytes past it are a failed request's and are cut off by the next.
        """
        states = paths.upload_hashstates_path(self.repository, upload_id, CANONICAL_ALGORITHM)
        try:
            names = [p.rsplit("/", 1)[1] for p in await self.driver.list(states)]
        except PathNotFound:
            return 0
        return max((int(n) for n in names if n.isdigit() and len(n) < 20), default=0)

    async def _load_hashes(
        self, upload_id: str, offset: int, algorithms: tuple[str, ...] = SUPPORTED_ALGORITHMS
    ) -> RunningHashes:
        loaded = await asyncio.gather(
            *(self._load_hash(upload_id, alg, offset) for alg in algorithms)
        )
        return RunningHashes(dict(zip(algorithms, loaded, strict=True)))

    async def _load_hash(self, upload_id: str, algorithm: str, offset: int) -> ResumableHash:
        if offset == 0:
            return ResumableHash.new(algorithm)
        states = paths.upload_hashstates_path(self.repository, upload_id, algorithm)
        with contextlib.suppress(PathNotFound, InvalidHashState):
            state = await self.driver.get_content(f"{states}/{offset}")
            h = ResumableHash.restore(algorithm, state)
            if h.length == offset:
                return h
        # No state saved at this offset (a crash between data and state, or an
        # upload begun elsewhere): resume from the nearest earlier state and hash
        # the gap, as distribution does.
        start, h = 0, ResumableHash.new(algorithm)
        with contextlib.suppress(PathNotFound):
            known = sorted(
                (int(p.rsplit("/", 1)[1]) for p in await self.driver.list(states)
                 if p.rsplit("/", 1)[1].isdigit()),
                reverse=True,
            )
            for candidate in (k for k in known if k <= offset):
                with contextlib.suppress(PathNotFound, InvalidHashState):
                    state = await self.driver.get_content(f"{states}/{candidate}")
                    restored = ResumableHash.restore(algorithm, state)
                    if restored.length == candidate:
                        start, h = candidate, restored
                        break
        remaining = offset - start
        data = self._path(upload_id, paths.upload_data_path)
        try:
            async for chunk in self.driver.reader(data, start):
                piece = chunk[:remaining]
                await asyncio.to_thread(h.update, piece)
                remaining -= len(piece)
                if remaining <= 0:
                    break
        except PathNotFound:
            # Object stores cannot read an upload back before it is complete.
            raise BlobUploadInvalid(
                f"no hash state at offset {offset} and the data cannot be read back"
            ) from None
        if remaining:
            raise BlobUploadInvalid(f"upload data ends before offset {offset}")
        return h

    async def write(
        self,
        upload_id: str,
        body: AsyncIterator[bytes],
        *,
        claimed: int | None,
        start: int | None = None,
        length: int | None = None,
    ) -> UploadStatus:
        """Append a chunk. ``start`` (from Content-Range) must equal the current offset."""
        current, claim = await self._claim(upload_id, claimed, start)
        try:
            status, _ = await self._append(current, body, length, final=False)
        except BaseException:
            await claim.finish()
            raise
        if isinstance(claim, ChunkClaim):
            # The chunk's states are saved, so the next request goes on from its end,
            # under a claim of its own: this one (at the chunk's start) can go after
            # the response. A lease of the lock service is the whole upload's: let go.
            self._in_background(claim.finish())
        else:
            await claim.finish()
        return status

    async def _claim(
        self, upload_id: str, claimed: int | None, start: int | None
    ) -> tuple[UploadStatus, ChunkClaim | UploadLease]:
        """Where the upload stands, and this request's hold on writing from there.

        Held until the request ends (a commit's until its blob is published), so
        no other request writes the data meanwhile: a lease of the shared lock
        service (:mod:`uploadlocks`) when there is one, else a claim in storage
        (:mod:`uploadclaims`).
        """
        current = await self.status(upload_id)
        _check_resumes(current, claimed, start)
        hold, abandoned = await self._hold(upload_id, current.offset)
        try:
            # Again under the hold: a request that passed the first check just before
            # another's chunk was acknowledged (or its upload finished) must stop here.
            _check_resumes(await self.status(upload_id), current.offset, start)
            if abandoned:
                tainted = self._path(upload_id, paths.upload_tainted_path)
                await self.driver.put_content(tainted, b"")
        except BaseException:
            await hold.finish()
            raise
        return current, hold

    async def _hold(self, upload_id: str, offset: int) -> tuple[ChunkClaim | UploadLease, bool]:
        """This request's hold on the upload, and whether to taint it (see :mod:`uploadlocks`)."""
        busy = RangeInvalid(f"another request is writing from offset {offset}", offset)
        if self.locks is not None:
            try:
                lease = await self.locks.acquire(f"{self.repository}/{upload_id}")
                return lease, lease.abandoned
            except LockBusy:
                raise busy from None
            except LockUnavailable as exc:
                log.warning("upload lock service unavailable (%s): claiming upload %s in "
                            "storage and re-hashing it at commit", exc, upload_id)
        claim = ChunkClaim(
            self.driver, paths.upload_claims_path(self.repository, upload_id, offset)
        )
        try:
            abandoned = await claim.acquire()
        except OffsetBusy:
            raise busy from None
        return claim, abandoned or self.locks is not None

    async def _append(
        self,
        current: UploadStatus,
        body: AsyncIterator[bytes] | None,
        length: int | None,
        *,
        final: bool,
        algorithms: tuple[str, ...] = SUPPORTED_ALGORITHMS,
        batch: int = BATCH,
    ) -> tuple[UploadStatus, RunningHashes]:
        """Write ``body`` from ``current.offset`` (under the caller's claim), hashed
        with ``algorithms``, in batches of ``batch`` bytes (see :func:`feed`)."""
        upload_id = current.upload_id
        data_path = self._path(upload_id, paths.upload_data_path)
        # The states and the data are opened together (one wait instead of two).
        loaded, opened = await asyncio.gather(
            self._load_hashes(upload_id, current.offset, algorithms),
            self.driver.writer(data_path, current.offset),
            return_exceptions=True,
        )
        if isinstance(loaded, BaseException):
            if not isinstance(opened, BaseException):
                await opened.close()
            raise loaded
        hashes = loaded
        try:
            if isinstance(opened, BaseException):
                raise opened
            writer = opened
        except (InvalidOffset, PathNotFound):
            if not await self._has_data(upload_id):
                # Acknowledged bytes and no data: a final PUT published them and died
                # before retiring the upload (see status), so the upload is finished.
                raise BlobUploadUnknown(upload_id) from None
            raise BlobUploadInvalid(
                f"the upload's data ends before its acknowledged offset {current.offset}"
            ) from None
        try:
            received = await feed(writer, body, hashes, length, final=final, batch=batch)
        except BaseException:
            # Nothing past the acknowledged offset may count: cut it off now (the
            # next request would anyway, when it opens the data at that offset).
            with contextlib.suppress(Exception):
                await roll_back(self.driver, writer, data_path, current.offset)
            raise
        offset = current.offset + received
        if received and not final:  # a finished upload needs no state to resume from
            # feed() fsynced the data before this: a state never outlives, in a
            # power cut, the bytes it vouches for. The states themselves need no
            # wait for the disk: a state lost in a power cut only moves the upload
            # back to the previous one (the client resumes from there, told by a
            # 416), and a damaged one is passed over for an earlier one and the
            # gap re-hashed from the (durable) data (see _load_hash).
            await put_unsynced(self.driver, [
                (paths.upload_hashstate_path(self.repository, upload_id, alg, offset), h.state())
                for alg, h in hashes.by_algorithm.items()
            ])
        return UploadStatus(upload_id, offset, current.started_at), hashes

    async def commit(
        self,
        upload_id: str,
        digest: Digest,
        body: AsyncIterator[bytes] | None,
        *,
        claimed: int | None,
        start: int | None = None,
        length: int | None = None,
        batch: int = BATCH,
    ) -> BlobDescriptor:
        """Append the last chunk (if any), verify ``digest``, and publish the blob
        (``body`` written in batches of ``batch`` bytes, see :func:`feed`)."""
        if body is not None and claimed == 0 and not start and (length or 0) <= BATCH:
            # The whole blob in this one request: maybe small enough to skip the data file.
            head, rest = await read_up_to(body, BATCH)
            if rest is None:
                try:
                    return await self._publish(digest, head, length, upload_id)
                except DigestInvalid:
                    await self.cancel(upload_id)
                    raise
            body = prepend(head, rest)
        current, claim = await self._claim(upload_id, claimed, start)
        try:
            return await self._finish(current, digest, body, length, batch)
        finally:
            await claim.finish()

    async def _finish(
        self,
        current: UploadStatus,
        digest: Digest,
        body: AsyncIterator[bytes] | None,
        length: int | None,
        batch: int,
    ) -> BlobDescriptor:
        upload_id = current.upload_id
        # The last chunk saves no state to resume from: only the digests checked now are
        # needed (hashing sha512 too would halve the speed of a sha256 upload).
        needed = tuple(dict.fromkeys((CANONICAL_ALGORITHM, digest.algorithm)))
        status, hashes = await self._append(
            current, body, length, final=True, algorithms=needed, batch=batch
        )
        if hashes.hexdigest(digest.algorithm) != digest.hex:
            await self.cancel(upload_id)
            raise DigestInvalid(f"digest {digest} does not match the uploaded content")
        canonical = Digest(CANONICAL_ALGORITHM, hashes.hexdigest(CANONICAL_ALGORITHM))
        if not await self._stored_soundly(canonical, status.offset):
            if await self._exists(self._path(upload_id, paths.upload_tainted_path)):
                await self._publish_rehashed(upload_id, digest, canonical)
            else:
                await self._publish_data(upload_id, canonical, status.offset)
        await self.layers.link(canonical, digest)
        await self._retire(upload_id)
        return BlobDescriptor(digest, status.offset)

    async def _publish_data(self, upload_id: str, canonical: Digest, size: int) -> None:
        """Move the upload's data into the blob store (its hash states vouch for it)."""
        blob_path = paths.blob_data_path(canonical)
        try:
            await self.driver.move(self._path(upload_id, paths.upload_data_path), blob_path)
        except PathNotFound:
            if size:
                raise
            await self.driver.put_content(blob_path, b"")  # an empty blob has no data file
        await self._forget_cached(canonical)

    async def _publish_rehashed(self, upload_id: str, digest: Digest, canonical: Digest) -> None:
        """A tainted upload: copy its data aside while hashing it, publish only a match.

        The copy is written by this request alone, so a frozen writer that wakes
        up later can only touch the upload's own data, never the published blob.
        """
        copy_path = self._path(upload_id, paths.upload_rehashed_path)
        sums = {alg: hashlib.new(alg) for alg in {CANONICAL_ALGORITHM, digest.algorithm}}
        writer = await self.driver.writer(copy_path, 0)
        data = self._path(upload_id, paths.upload_data_path)
        try:
            with contextlib.suppress(PathNotFound):  # an empty upload has no data
                async for chunk in self.driver.reader(data):
                    await asyncio.to_thread(_update_all, sums.values(), chunk)
                    await writer.write(chunk)
            if (sums[CANONICAL_ALGORITHM].hexdigest() != canonical.hex
                    or sums[digest.algorithm].hexdigest() != digest.hex):
                raise DigestInvalid(f"digest {digest} does not match the uploaded content")
            await writer.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                await writer.cancel()
            with contextlib.suppress(Exception):
                await self.cancel(upload_id)
            raise
        await self.driver.move(copy_path, paths.blob_data_path(canonical))
        await self._forget_cached(canonical)

    async def _stored_soundly(self, canonical: Digest, size: int) -> bool:
        """Whether a blob already stored under ``canonical`` can be kept.

        A blob that exists may predate this registry's checks or have been
        damaged since, and the new upload carries verified bytes to repair it
        with: the stored size must match, and a blob of up to 1 MiB (configs,
        manifests, small layers) is re-hashed, which costs at most one small
        read. Larger blobs are trusted on their size; ``dockyard verify-blobs``
        re-hashes them all.
        """
        try:
            info = await self.driver.stat(paths.blob_data_path(canonical))
        except PathNotFound:
            return False
        if info.is_dir or info.size != size:
            return False
        if size > BATCH:
            return True
        try:
            data = await self.driver.get_content(paths.blob_data_path(canonical))
        except PathNotFound:
            return False
        return _digests(data, CANONICAL_ALGORITHM)[CANONICAL_ALGORITHM] == canonical.hex

    async def _forget_cached(self, canonical: Digest) -> None:
        """A blob replaced under the same digest may be cached with the old size."""
        await self.blobs.statter.clear(canonical)

    async def _exists(self, path: str) -> bool:
        try:
            await self.driver.stat(path)
        except PathNotFound:
            return False
        return True

    async def push(
        self, digest: Digest, body: AsyncIterator[bytes] | None, length: int | None
    ) -> BlobDescriptor:
        """A monolithic upload (``POST ?digest=``): small blobs never touch ``_uploads``."""
        if (length or 0) <= BATCH:
            head, rest = await read_up_to(body or empty_body(), BATCH)
            if rest is None:
                return await self._publish(digest, head, length)
            body = prepend(head, rest)
        status = await self.create()
        return await self.commit(status.upload_id, digest, body, claimed=0, length=length)

    async def _publish(
        self, digest: Digest, data: bytes, length: int | None, upload_id: str | None = None
    ) -> BlobDescriptor:
        """Verify a blob held in memory, then end its upload (if any) and store and link it.

        The upload ends first, in one ``delete`` of its directory (which holds only
        ``startedat``: no chunk was written), so an unknown upload is refused before
        anything is stored. A crash or a storage error after it leaves the upload
        cleanly abandoned: the client's retry is told it is unknown and starts again.
        Content and link go in one :func:`put_many`: one thread hop and one wait for
        the disk on the filesystem; a blob already stored is left alone if it holds
        exactly these bytes (a sound copy), else it is repaired.
        """
        if length is not None and len(data) != length:
            raise SizeInvalid(f"received {len(data)} bytes, expected {length}")
        if len(data) <= INLINE:
            sums = _digests(data, digest.algorithm)
        else:
            sums = await asyncio.to_thread(_digests, data, digest.algorithm)
        if sums[digest.algorithm] != digest.hex:
            raise DigestInvalid(f"digest {digest} does not match the uploaded content")
        canonical = Digest(CANONICAL_ALGORITHM, sums[CANONICAL_ALGORITHM])
        if upload_id is not None:
            try:
                await self.driver.delete(self._path(upload_id))
            except PathNotFound:
                raise BlobUploadUnknown(upload_id) from None
        await put_many(self.driver, [
            self.blobs.content_write(data, canonical), *self.layers.link_writes(canonical, digest)
        ])
        await self._forget_cached(canonical)
        return BlobDescriptor(digest, len(data))

    async def _retire(self, upload_id: str) -> None:
        """A finished upload: gone at once (no ``startedat``), its files removed after.

        The directory holds a hash state per chunk; removing it is left to a
        background task so the client's final PUT does not wait for it. Should
        the process die first, upload purging finds the directory.
        """
        try:
            await self.driver.delete(self._path(upload_id, paths.upload_startedat_path))
        except PathNotFound:
            pass
        except StorageError as exc:  # the blob is published: clean-up must not fail it
            log.warning("could not retire finished upload %s: %s", upload_id, exc)
        self._in_background(self._remove_quietly(upload_id))

    def _in_background(self, work: Coroutine[object, object, None]) -> None:
        """Run clean-up ``work`` after the response, held until it finishes."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _remove_quietly(self, upload_id: str) -> None:
        try:
            await self.driver.delete(self._path(upload_id))
        except PathNotFound:
            pass
        except Exception as exc:  # cleanup only: purging will retry
            log.warning("could not remove finished upload %s: %s", upload_id, exc)

    async def cancel(self, upload_id: str) -> None:
        try:
            await self.driver.delete(self._path(upload_id))
        except PathNotFound:
            raise BlobUploadUnknown(upload_id) from None


def _check_resumes(current: UploadStatus, claimed: int | None, start: int | None) -> None:
    """A request must continue the upload where it stands: no rewinds, no gaps.

    Rewinding to an earlier token's offset would leave hash states past it that
    no longer match the data, so a stale token is refused like an out-of-order
    chunk: 416 with the current offset, from which the client can resume.
    """
    for what, offset in (("upload state token", claimed), ("chunk", start)):
        if offset is not None and offset != current.offset:
            raise RangeInvalid(
                f"{what} starts at {offset}, upload is at {current.offset}", current.offset
            )


def _update_all(hashes: Iterable[hashlib._Hash], data: bytes) -> None:
    for h in hashes:
        h.update(data)


def _digests(data: bytes, algorithm: str) -> dict[str, str]:
    """Hex digests of ``data`` for the canonical algorithm and ``algorithm``."""
    return {a: hashlib.new(a, data).hexdigest() for a in {CANONICAL_ALGORITHM, algorithm}}
