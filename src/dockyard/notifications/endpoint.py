"""One webhook endpoint: its filters, its spool, its delivery task and its counters.

Delivery follows distribution's ``retryingSink`` over an ``httpSink``: events go out
in order, one POST at a time; a 2xx or 3xx answer is success; on failure the same
events are sent again at once, and after ``threshold`` failures in a row once per
``backoff``, until the endpoint takes them. Events queued while a POST is in flight
go out together in the next envelope (distribution's envelope carries "one or more
events"), so a backlog drains in few requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from dockyard.notifications.events import ENVELOPE_MEDIA_TYPE, Event
from dockyard.notifications.spool import Spool

__all__ = ["Endpoint", "EndpointMetrics"]

T = TypeVar("T")

log = logging.getLogger("dockyard.notifications")

#: Events per POST when a backlog has built up.
BATCH = 500
#: Seconds a woken delivery task waits for more events to send in the same envelope
#: (less once a full envelope, :data:`BATCH` events, is queued).
LINGER = 0.25


@dataclass(slots=True)
class EndpointMetrics:
    """Counters of one endpoint (distribution's ``EndpointMetrics``), read by the metrics side.

    ``events`` were queued for it, ``successes``/``failures``/``errors`` count events
    in envelopes answered 2xx-3xx / answered otherwise / not answered (connection
    error, timeout); ``statuses`` counts answers by status line ("200 OK");
    ``pending`` are queued now; ``dropped`` were discarded by the spool's bound.
    """

    events: int = 0
    successes: int = 0
    failures: int = 0
    errors: int = 0
    pending: int = 0
    dropped: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


class Endpoint:
    """A configured, enabled endpoint and its delivery task."""

    def __init__(
        self,
        name: str,
        url: str,
        spools: Sequence[Spool],
        *,
        headers: Mapping[str, Sequence[str]] | None = None,
        timeout: float = 1.0,
        threshold: int = 10,
        backoff: float = 1.0,
        ignored_media_types: Sequence[str] = (),
        ignored_actions: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.url = url
        self.metrics = EndpointMetrics()
        # spools[-1] receives new events; earlier ones were adopted (a former
        # worker's queue) and are delivered first, then released.
        self._spools = list(spools)
        self._headers = [(k, v) for k, values in (headers or {}).items() for v in values]
        self._headers.append(("Content-Type", ENVELOPE_MEDIA_TYPE))
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._threshold = max(1, threshold)
        self._backoff = backoff
        self._ignored_media_types = frozenset(ignored_media_types)
        self._ignored_actions = frozenset(ignored_actions)
        self.filters = bool(self._ignored_media_types or self._ignored_actions)
        """False when :meth:`accepts` takes every event (no need to ask it)."""
        self._wake = asyncio.Event()
        self._full = asyncio.Event()  # a full envelope is queued: stop lingering
        self._failures = 0  # in a row, across batches (reset by a success)
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.metrics.pending = sum(s.pending for s in self._spools)

    def accepts(self, record: Event) -> bool:
        """False when an ``ignore`` filter (or ``ignoredmediatypes``) drops the event."""
        action, media_type = record[0], record[6]  # EventRecord's action and media_type
        if action in self._ignored_actions:
            return False
        return not (media_type and media_type in self._ignored_media_types)

    async def add(self, lines: Sequence[bytes]) -> None:
        """Queue serialized events (in a thread when the spool writes to disk)."""
        spool = self._spools[-1]
        dropped = await _call(spool, spool.append, lines)
        self.metrics.events += len(lines)
        if dropped:
            self.metrics.dropped += dropped
            log.warning(
                "notifications: endpoint %s: spool full, dropped the %d oldest event(s)",
                self.name, dropped,
            )
        self._count_pending()
        self._wake.set()
        if self.metrics.pending >= BATCH:
            self._full.set()

    def _count_pending(self) -> None:
        self.metrics.pending = sum(s.pending for s in self._spools)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"notifications-{self.name}"
        )

    async def close(self) -> None:
        """Stop delivering; what is queued stays in the spool for the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()
        for spool in self._spools:
            await _call(spool, spool.close)

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:  # the spool's disk, say: log, wait, try again
                log.exception("notifications: endpoint %s: delivery failed", self.name)
                await asyncio.sleep(self._backoff)

    async def _step(self) -> None:
        """Deliver one envelope, or wait for events."""
        spool = self._spools[0]
        if spool.pending == 0:
            if len(self._spools) > 1:
                self._spools.pop(0)
                await _call(spool, spool.close)
                return
            self._wake.clear()
            await self._wake.wait()
            # Let a burst of events share the envelope, but not past a full one: under
            # a steady stream, lingering the whole time would let the spool's memory
            # of recent events overflow, and each envelope be read back from disk.
            self._full.clear()
            if spool.pending < BATCH:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LINGER):
                        await self._full.wait()
            return
        # From the spool's memory when it has them: a thread hop (two hand-overs of the
        # GIL) per envelope cost more than the rest of taking them.
        found = spool.peek_nowait(BATCH)
        lines, position = found if found is not None else await asyncio.to_thread(
            spool.peek, BATCH)
        if not lines:  # counted, but not readable yet (or dropped meanwhile)
            self._count_pending()
            self._wake.clear()
            await self._wake.wait()
            return
        count = len(lines)
        # The envelope's ends go on the first and last line (copies of one line each),
        # so the batch is copied once, by the join: a copy of every byte of a large
        # batch costs more than the rest of sending it.
        lines[0] = b'{"events":[' + lines[0]
        lines[-1] += b"]}"
        body = b",".join(lines)
        if await self._deliver(body, count, spool):
            await _call(spool, spool.ack, position, count)
        self._count_pending()

    async def _deliver(self, body: bytes, count: int, spool: Spool) -> bool:
        """POST ``body`` until the endpoint takes it (distribution's retrying sink).

        False when the spool's bound dropped events meanwhile: the batch may hold
        some of them, so it is read again rather than delivered.
        """
        drops = spool.drops
        while True:
            if self._failures >= self._threshold:
                if self._failures == self._threshold:
                    log.warning(
                        "notifications: endpoint %s encountered too many errors, "
                        "backing off %gs between attempts", self.name, self._backoff,
                    )
                await asyncio.sleep(self._backoff)
            if spool.drops != drops:
                return False
            if await self._post(body, count):
                if self._failures:
                    log.info("notifications: endpoint %s accepts events again", self.name)
                self._failures = 0
                return True
            self._failures += 1

    async def _post(self, body: bytes, count: int) -> bool:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                self.url, data=body, headers=self._headers, allow_redirects=False
            ) as response:
                await response.read()
                status = f"{response.status} {response.reason or ''}".strip()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.metrics.errors += count
            log.warning("notifications: endpoint %s: %s", self.name, exc or type(exc).__name__)
            return False
        self.metrics.statuses[status] = self.metrics.statuses.get(status, 0) + 1
        if 200 <= response.status < 400:
            self.metrics.successes += count
            return True
        self.metrics.failures += count
        log.warning("notifications: endpoint %s answered %s", self.name, status)
        return False


async def _call(spool: Spool, method: Callable[..., T], *args: Any) -> T:
    """``method(*args)`` of ``spool``: in a thread if the spool may block, else at once."""
    if spool.blocking:
        return await asyncio.to_thread(method, *args)
    return method(*args)
