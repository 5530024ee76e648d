"""Expiry of cached content, persisted as distribution's ``/scheduler-state.json``.

The file sits at the root of the storage driver and keeps distribution's format,
so either registry can take over the other's cache::

    {"<repo>@sha256:<hex>": {"Key": "<repo>@sha256:<hex>",
                             "ExpiryData": "2026-12-11T15:04:05.999999999Z",
                             "EntryType": 0}}

``EntryType`` is 0 for a blob and 1 for a manifest. Entries are written at most
every few seconds and on stop; on start every entry gets a timer again, and one
already past its expiry is removed at once. Several workers share the file: each
merges its own additions and removals into what is stored when it saves. Only one
of them (``timers``) runs the timers, so content expires once, not once per worker:
the others only record what they cached, and that worker adopts their entries (or a
later expiry) from the file every few seconds. Merges take turns, across workers and
instances on one storage, under a claim in storage (:mod:`dockyard.storage.uploadclaims`,
as one download per blob does): two at once would each write what they read before
the other's write, and an entry lost so would never expire after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dockyard.digest import Digest, InvalidDigest
from dockyard.storage.drivers.base import PathNotFound, StorageDriver, StorageError
from dockyard.storage.uploadclaims import ChunkClaim, OffsetBusy

__all__ = ["BLOB", "MANIFEST", "STATE_PATH", "Entry", "TTLScheduler"]

log = logging.getLogger("dockyard.proxy")

STATE_PATH = "/scheduler-state.json"
# Who is merging into STATE_PATH (one claim file per merge, removed after it).
CLAIMS_PATH = "/scheduler-state.claims"
BLOB = 0
MANIFEST = 1
_SAVE_INTERVAL = 5.0
# Seconds between tries while another process merges.
_CLAIM_RETRY = 0.05
# Go writes nanoseconds; Python's datetime takes six fractional digits.
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True, slots=True)
class Entry:
    """Cached content of one repository that expires at ``expiry``."""

    repository: str
    digest: Digest
    kind: int
    expiry: datetime

    @property
    def key(self) -> str:
        return f"{self.repository}@{self.digest}"

    def to_json(self) -> dict[str, object]:
        stamp = self.expiry.astimezone(UTC).isoformat(timespec="microseconds")
        return {"Key": self.key, "ExpiryData": stamp.replace("+00:00", "Z"), "EntryType": self.kind}

    @classmethod
    def from_json(cls, value: object) -> Entry | None:
        """The entry ``value`` describes, or None when it is not one (logged, skipped)."""
        if not isinstance(value, dict):
            return None
        key, stamp, kind = value.get("Key"), value.get("ExpiryData"), value.get("EntryType")
        if not (isinstance(key, str) and isinstance(stamp, str) and kind in (BLOB, MANIFEST)):
            return None
        repository, _, digest = key.rpartition("@")
        try:
            expiry = datetime.fromisoformat(_FRACTION.sub(r"\1", stamp).replace("Z", "+00:00"))
            parsed = Digest.parse(digest)
        except (ValueError, InvalidDigest):
            return None
        if not repository:
            return None
        assert isinstance(kind, int)
        return cls(repository, parsed, kind, expiry)


ExpireFn = Callable[[Entry], Awaitable[None]]


class TTLScheduler:
    """Timers that call ``on_expire`` for each entry, and the state file behind them."""

    def __init__(
        self, driver: StorageDriver, on_expire: ExpireFn, *, timers: bool = True,
        shared: bool = False,
    ) -> None:
        """``timers``: this process expires content (one worker of several does).
        ``shared``: other processes of this instance write the file too, so the one
        with the timers reads their entries back."""
        self.driver = driver
        self._on_expire = on_expire
        self._timers_here = timers
        self._shared = shared
        self._entries: dict[str, Entry] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._added: dict[str, Entry] = {}
        self._removed: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._saver: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._saver = asyncio.get_running_loop().create_task(self._save_periodically())
        if not self._timers_here:
            return
        self._adopt(await self._read())
        log.info("proxy: TTL scheduler started with %d entries", len(self._entries))

    def _adopt(self, stored: dict[str, Entry]) -> None:
        """Arm a timer for each stored entry this process does not know, or knows
        with an earlier expiry (another worker cached the content again)."""
        for key, entry in stored.items():
            known = self._entries.get(key)
            if known is not None and known.expiry >= entry.expiry:
                continue
            old = self._timers.pop(key, None)
            if old is not None:
                old.cancel()
            self._entries[key] = entry
            self._arm(entry)

    async def stop(self) -> None:
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
        self._shared = False  # the last save only writes: no timers after the stop
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await self.save()

    def add(self, repository: str, digest: Digest, kind: int, ttl: float) -> None:
        """(Re)schedule the removal of ``repository@digest`` ``ttl`` seconds from now."""
        entry = Entry(repository, digest, kind, datetime.now(UTC) + timedelta(seconds=ttl))
        if not self._timers_here:  # the worker with the timers reads it from the file
            self._added[entry.key] = entry
            return
        old = self._timers.pop(entry.key, None)
        if old is not None:
            old.cancel()
        self._entries[entry.key] = entry
        self._added[entry.key] = entry
        self._removed.discard(entry.key)
        self._arm(entry)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def _arm(self, entry: Entry) -> None:
        loop = asyncio.get_running_loop()
        delay = max((entry.expiry - datetime.now(UTC)).total_seconds(), 0.0)
        self._timers[entry.key] = loop.call_later(delay, self._fire, entry)

    def _fire(self, entry: Entry) -> None:
        self._timers.pop(entry.key, None)
        task = asyncio.get_running_loop().create_task(self._expire(entry))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire(self, entry: Entry) -> None:
        if self._entries.get(entry.key) is not entry:
            return  # rescheduled meanwhile
        try:
            await self._on_expire(entry)
        except Exception as exc:  # an expiry that fails is logged and dropped, as distribution
            log.error("proxy: could not expire %s: %s", entry.key, exc)
        del self._entries[entry.key]
        self._added.pop(entry.key, None)
        self._removed.add(entry.key)

    async def _read(self) -> dict[str, Entry]:
        try:
            raw = await self.driver.get_content(STATE_PATH)
        except PathNotFound:
            return {}
        try:
            document = json.loads(raw)
        except ValueError:
            log.error("proxy: %s is not JSON; starting with an empty schedule", STATE_PATH)
            return {}
        found: dict[str, Entry] = {}
        for value in document.values() if isinstance(document, dict) else ():
            entry = Entry.from_json(value)
            if entry is None:
                log.warning("proxy: skipping a malformed entry of %s", STATE_PATH)
                continue
            found[entry.key] = entry
        return found

    async def save(self) -> None:
        """Merge this process's changes into the stored state (other workers write too)."""
        adopt = self._timers_here and self._shared
        if not self._added and not self._removed and not adopt:
            return
        added, removed = self._added, self._removed
        self._added, self._removed = {}, set()
        try:
            claim = await self._claim()
            try:
                await self._merge(added, removed, adopt)
            finally:
                await claim.finish()
        except (StorageError, asyncio.CancelledError) as exc:
            # Kept for the next save (a stop cancels the periodic one mid-merge).
            self._added = {**added, **self._added}
            self._removed |= removed - self._added.keys()
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.error("proxy: could not write %s: %s", STATE_PATH, exc)

    async def _claim(self) -> ChunkClaim:
        """This process's turn to merge (a claim another process's merge or its
        death releases; one left by a dead process on another host, after its lease)."""
        claim = ChunkClaim(self.driver, CLAIMS_PATH)
        while True:
            try:
                await claim.acquire()
                return claim
            except OffsetBusy:
                await asyncio.sleep(_CLAIM_RETRY)

    async def _merge(self, added: dict[str, Entry], removed: set[str], adopt: bool) -> None:
        stored = await self._read()
        if adopt:
            self._adopt({k: v for k, v in stored.items() if k not in removed})
        if not added and not removed:
            return
        for key in removed:
            stored.pop(key, None)
        stored.update(added)
        state = {key: entry.to_json() for key, entry in stored.items()}
        await self.driver.put_content(STATE_PATH, json.dumps(state).encode())

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(_SAVE_INTERVAL)
            await self.save()
