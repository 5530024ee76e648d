"""A shared lock service for uploads: one writer per upload, held under a renewed lease.

Without one, writers claim offsets in storage (:mod:`uploadclaims`), which works on
every driver but costs a write, a list and a delete per request. When instances
share a Redis (``redis.addr``), :class:`~dockyard.storage.redislocks.RedisUploadLocks`
takes its place: a lock per upload with a lease, renewed while the request runs.

The contract is the claims': :meth:`UploadLocks.acquire` either returns a lease, or
raises :class:`LockBusy` (another live request holds the upload: the caller answers
416 with the current offset) or :class:`LockUnavailable` (the lock service failed:
the caller falls back to storage claims and taints the upload, since a request on
an instance that still reaches the service may be writing without a claim). A
lease whose holder died or froze without releasing it expires; the next holder is
told (:attr:`UploadLease.abandoned`) and taints the upload, so the commit re-hashes
the data instead of trusting the hash states.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["LockBusy", "LockUnavailable", "UploadLease", "UploadLocks"]


class LockBusy(Exception):
    """Another live request holds the upload."""


class LockUnavailable(Exception):
    """The lock service could not be asked."""


class UploadLease(Protocol):
    """One request's hold on one upload."""

    @property
    def abandoned(self) -> bool:
        """Whether the previous holder lost its lease without releasing it."""
        ...

    async def finish(self) -> None:
        """Release the upload (best effort: an unreleased lease expires)."""
        ...


class UploadLocks(Protocol):
    """Locks on uploads, shared by every worker and instance."""

    async def acquire(self, upload: str) -> UploadLease:
        """Hold ``upload`` (``<repository>/<uuid>``); raises LockBusy or LockUnavailable."""
        ...

    async def aclose(self) -> None:
        """Release connections at shutdown."""
        ...
