"""One writer at a time per upload, across processes and hosts, on any driver.

An upload's hash states are trusted at commit without re-reading its data, so
the bytes in ``data`` must be exactly the bytes those states hashed. Two
requests writing from the same offset at once (one token used twice, a retry
racing the request it retries, a PATCH racing the final PUT) would break that.
Drivers offer no lock that works on every backend, so each request *claims* the
offset it writes from: it writes ``claims/<offset>/<request id>`` (who and
when), then lists ``claims/<offset>/``. Of two requests that claim the same
offset, the later to list always sees the other (listing is strongly
consistent on the filesystem, S3, Azure and GCS), so at most one goes on; the
other is refused and may retry from the upload's current offset. Requests that
all saw each other withdraw and try again a few times after a random pause, so
one of them usually gets through.

A request refreshes its claim while it runs and removes it when it ends; the
caller re-checks the upload's progress after claiming, so a request that
arrives after another one's chunk was acknowledged stops there, claim or not.
A claim left behind is judged by who made it: one of this process's finished
requests is ignored; one whose process is gone from this host, or that was not
refreshed for :data:`LEASE` seconds (a request that died or froze elsewhere),
no longer blocks the offset, so an interrupted upload stays resumable, but the
upload is marked *tainted*, and committing a tainted upload re-hashes its data
instead of trusting the hash states.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import os
import random
import socket
import time
import uuid

from dockyard.storage.drivers.base import PathNotFound, StorageDriver, put_unsynced

__all__ = ["LEASE", "ChunkClaim", "OffsetBusy"]

# Seconds without a refresh after which a claim's request is presumed dead. Long
# enough for clock skew between hosts and a slow storage round trip.
LEASE = 60.0
_REFRESH = LEASE / 4
# Tries before a busy offset is refused (a request writing a chunk holds it longer).
_ATTEMPTS = 4

# The claims of this process's requests that are still running.
_RUNNING: set[str] = set()


def _host() -> str:
    """This host (and pid namespace: containers may share a hostname)."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return f"{socket.gethostname()}/{namespace}"


_HOST = _host()


class _Owner(enum.Enum):
    RUNNING = "running"  # may be writing: the offset is busy
    FINISHED = "finished"  # known to write no more: ignore
    LOST = "lost"  # died or froze: ignore, but taint the upload


def _owner(path: str, stamp: object) -> _Owner:
    """What became of the request that wrote ``stamp`` at ``path``."""
    if not isinstance(stamp, dict):
        return _Owner.LOST
    pid = stamp.get("pid")
    if stamp.get("host") == _HOST and isinstance(pid, int):
        if pid == os.getpid():
            return _Owner.RUNNING if path in _RUNNING else _Owner.FINISHED
        if not _alive(pid):
            return _Owner.LOST
    try:
        age = time.time() - float(stamp.get("time", 0))
    except (TypeError, ValueError):
        return _Owner.LOST
    return _Owner.RUNNING if age < LEASE else _Owner.LOST


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host can still write: it exists and is no zombie.

    A worker killed with its supervisor is reparented to init, and an init that does not
    reap leaves it a zombie for good: ``kill(pid, 0)`` still succeeds on it.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # exists, owned by someone else
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # The state follows the command name in parentheses, which may hold spaces.
            state = stat.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return True  # no procfs here: trust kill()
    return state not in (b"Z", b"X")


class OffsetBusy(Exception):
    """Another live request is writing from this offset."""


class ChunkClaim:
    """This request's claim on writing an upload from one offset."""

    def __init__(self, driver: StorageDriver, directory: str) -> None:
        self.driver = driver
        self.directory = directory
        self.path = f"{directory}/{uuid.uuid4().hex}"
        self._refresher: asyncio.Task[None] | None = None

    async def acquire(self) -> bool:
        """Claim the offset; True if a lost request had claimed it (taint the upload).

        Raises :class:`OffsetBusy` (after withdrawing) if a running request holds it.
        """
        try:
            for attempt in range(1, _ATTEMPTS):
                try:
                    return await self._try()
                except OffsetBusy:
                    await asyncio.sleep(random.uniform(0.005, 0.05) * attempt)
            return await self._try()
        except BaseException:
            await self.finish()
            raise

    async def _try(self) -> bool:
        _RUNNING.add(self.path)
        await self._stamp()
        try:
            others = await self.driver.list(self.directory)
        except PathNotFound:
            # Removed with this claim in it: the upload was finished or cancelled
            # meanwhile, which the caller's check of the upload under the claim finds.
            others = []
        lost = False
        for other in others:
            if other == self.path:
                continue
            try:
                stamp = json.loads(await self.driver.get_content(other))
            except PathNotFound:
                continue  # finished meanwhile
            except ValueError:
                stamp = None
            owner = _owner(other, stamp)
            if owner is _Owner.RUNNING:
                await self.finish()
                raise OffsetBusy(self.directory)
            lost = lost or owner is _Owner.LOST
        self._refresher = asyncio.get_running_loop().create_task(self._refresh())
        return lost

    async def finish(self) -> None:
        """This request writes no more: remove the claim (best effort)."""
        _RUNNING.discard(self.path)
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        # Left behind (storage unreachable), it still reads as finished here, and
        # elsewhere once its process is gone or its lease has run out.
        with contextlib.suppress(Exception):
            await self.driver.delete(self.path)

    async def _stamp(self) -> None:
        stamp = {"time": time.time(), "host": _HOST, "pid": os.getpid()}
        # A claim matters only while its process lives, and the page cache outlives a
        # kill -9: no wait for the disk. After a power cut a claim lost is a request
        # gone (true), one left empty reads as lost and taints the upload (safe).
        await put_unsynced(self.driver, [(self.path, json.dumps(stamp).encode())])

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(_REFRESH)
            with contextlib.suppress(Exception):  # a missed refresh only risks a taint
                await self._stamp()
