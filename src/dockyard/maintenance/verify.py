"""Re-hash every stored blob (``dockyard verify-blobs``); quarantine those that lie.

The content store is trusted to hold, under ``blobs/<alg>/<hh>/<hex>/data``,
bytes that hash to ``<alg>:<hex>``: every repository that links the digest is
served those bytes, and a push of the true bytes keeps an existing blob. This
walks the store one ``<alg>/<hh>/`` prefix at a time, streams each blob through
its hash, and reports every mismatch. With ``repair`` a mismatched blob is moved
to :func:`quarantine_path`, outside the layout (``docker-registry`` and garbage
collection never look there), so its digest becomes unknown and the next honest
push stores it afresh; the bytes are kept for inspection, never deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import posixpath
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dockyard.digest import Digest, InvalidDigest
from dockyard.storage import paths
from dockyard.storage.drivers.base import PathNotFound, StorageDriver, StorageError

__all__ = ["QUARANTINE_ROOT", "VerifySummary", "quarantine_path", "verify_blobs"]

QUARANTINE_ROOT = "/docker/registry/quarantine"
_HEARTBEAT = 1000  # a progress line every this many blobs


def quarantine_path(digest: Digest, when: datetime) -> str:
    """``/docker/registry/quarantine/<alg>/<hex>-<UTC time>``: one file per repair."""
    return f"{QUARANTINE_ROOT}/{digest.algorithm}/{digest.hex}-{when:%Y%m%dT%H%M%SZ}"


@dataclass
class VerifySummary:
    """What a verification found; ``mismatched`` and ``errors`` make it fail."""

    verified: int = 0
    bytes: int = 0
    mismatched: list[Digest] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.errors

    def __str__(self) -> str:
        parts = [f"verified {self.verified} blobs ({self.bytes} bytes)",
                 f"{len(self.mismatched)} mismatched"]
        if self.quarantined:
            parts.append(f"{len(self.quarantined)} quarantined under {QUARANTINE_ROOT}")
        if self.errors:
            parts.append(f"{len(self.errors)} could not be read")
        return ", ".join(parts)


async def verify_blobs(
    driver: StorageDriver,
    *,
    repair: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> VerifySummary:
    """Hash every blob of ``driver``'s content store; with ``repair``, quarantine liars."""
    summary = VerifySummary()
    async for digest in _stored_digests(driver, summary):
        try:
            actual, size = await _hash(driver, paths.blob_data_path(digest), digest.algorithm)
        except PathNotFound:
            continue  # a directory without data (a blob being deleted): nothing served
        except (StorageError, ValueError) as exc:  # ValueError: an algorithm hashlib lacks
            summary.errors.append(f"{digest}: {exc}")
            progress(f"error: {digest}: {exc}")
            continue
        summary.verified += 1
        summary.bytes += size
        if actual != digest.hex:
            summary.mismatched.append(digest)
            progress(f"MISMATCH: {digest} holds {size} bytes hashing to "
                     f"{digest.algorithm}:{actual}")
            if repair:
                await _quarantine(driver, digest, summary, progress)
        if summary.verified % _HEARTBEAT == 0:
            progress(f"{summary.verified} blobs verified, {len(summary.mismatched)} mismatched")
    return summary


async def _stored_digests(driver: StorageDriver, summary: VerifySummary) -> AsyncIterator[Digest]:
    """The digests under ``blobs/``, one ``<alg>/<hh>`` listing at a time."""
    for alg_dir in await _list(driver, paths.blobs_root()):
        algorithm = posixpath.basename(alg_dir)
        for prefix_dir in await _list(driver, alg_dir):
            for entry in await _list(driver, prefix_dir):
                try:
                    digest = Digest.parse(f"{algorithm}:{posixpath.basename(entry)}")
                except InvalidDigest:
                    summary.errors.append(f"{entry}: not a digest")
                    continue
                yield digest


async def _list(driver: StorageDriver, path: str) -> list[str]:
    try:
        return sorted(await driver.list(path))
    except PathNotFound:
        return []


async def _hash(driver: StorageDriver, path: str, algorithm: str) -> tuple[str, int]:
    """The hex digest and size of the file at ``path``, streamed (constant memory)."""
    h = hashlib.new(algorithm)
    size = 0
    async for chunk in driver.reader(path):
        size += len(chunk)
        await asyncio.to_thread(h.update, chunk)
    return h.hexdigest(), size


async def _quarantine(
    driver: StorageDriver, digest: Digest, summary: VerifySummary, progress: Callable[[str], None]
) -> None:
    target = quarantine_path(digest, datetime.now(UTC))
    try:
        await driver.move(paths.blob_data_path(digest), target)
        with contextlib.suppress(PathNotFound):  # object stores have no empty directories
            await driver.delete(paths.blob_dir_path(digest))
    except StorageError as exc:
        summary.errors.append(f"{digest}: quarantine failed: {exc}")
        progress(f"error: {digest}: quarantine failed: {exc}")
        return
    summary.quarantined.append(target)
    progress(f"quarantined {digest} at {target}")
