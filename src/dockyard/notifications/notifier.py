"""The notifier of one worker process: takes events from requests, hands them to endpoints.

A request only appends an :data:`~.events.Event` (a tuple) to a list and sets a flag
(:meth:`Notifier.emit`, or inline: :attr:`Notifier.queue`); the notifier's task then
formats the events (ids, timestamps, JSON: the costly part, off the request path),
writes them to each endpoint's spool and wakes the endpoint's delivery task. A slow or
dead endpoint therefore never delays a request. The spool of each endpoint lives in
``<directory>/<endpoint>/w<slot>``: one per worker, owned by it alone, so with
``--workers N`` no event is delivered by two workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

from dockyard.manifest import parse_manifest
from dockyard.notifications.endpoint import Endpoint, EndpointMetrics
from dockyard.notifications.events import (
    Event,
    EventIds,
    EventRecord,
    SourceRecord,
    event_lines,
    source_json,
)
from dockyard.notifications.spool import DiskSpool, MemorySpool, Spool, SpoolBusy

__all__ = ["Notifier", "open_spools", "references"]

log = logging.getLogger("dockyard.notifications")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: Seconds events wait to be queued with those that follow (and then to be sent).
LINGER = 0.1


def open_spools(
    directory: str | None, endpoint: str, slot: int, workers: int, max_events: int
) -> list[Spool]:
    """The spools an endpoint delivers from: adopted ones first, then its own.

    Without ``directory`` one in-memory spool. With it, this worker's ``w<slot>``
    (or, if another process holds it, ``w<slot>.<pid>``); worker 0 also adopts the
    queues no live worker owns (``w<n>`` for n >= ``workers``, and ``w<n>.<pid>``), so
    events queued before a restart with fewer workers are still delivered.
    """
    if directory is None:
        return [MemorySpool(max_events)]
    base = Path(directory) / (_UNSAFE.sub("_", endpoint) or "_")
    base.mkdir(parents=True, exist_ok=True)
    adopted: list[Spool] = []
    if slot == 0:
        for entry in sorted(os.listdir(base)):
            name, _, suffix = entry.partition(".")
            index = name[1:]
            if not (name.startswith("w") and index.isdigit()):
                continue
            if int(index) < workers and not suffix:
                continue
            with contextlib.suppress(SpoolBusy):
                spool = DiskSpool(base / entry, max_events)
                if spool.pending:
                    adopted.append(spool)
                else:
                    spool.close()
    try:
        own: Spool = DiskSpool(base / f"w{slot}", max_events)
    except SpoolBusy:
        own = DiskSpool(base / f"w{slot}.{os.getpid()}", max_events)
    return [*adopted, own]


def references(media_type: str, payload: bytes) -> list[dict[str, object]]:
    """The descriptors a manifest references (distribution's ``References()``)."""
    manifest = parse_manifest(payload, media_type)
    found = []
    for d in (*([manifest.config] if manifest.config else []), *manifest.layers,
              *manifest.manifests):
        desc: dict[str, object] = {"mediaType": d.media_type, "digest": str(d.digest),
                                   "size": d.size}
        if d.urls:
            desc["urls"] = list(d.urls)
        if d.annotations:
            desc["annotations"] = dict(d.annotations)
        if d.platform:
            desc["platform"] = dict(d.platform)
        found.append(desc)
    return found


class Notifier:
    """Every enabled endpoint of this process and the task that feeds them."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        source: SourceRecord,
        *,
        include_references: bool = False,
    ) -> None:
        self.endpoints = list(endpoints)
        self.source = source
        self.include_references = include_references
        self.queue: list[Event] = []
        """Events not yet spooled: :meth:`emit` appends to it. Read it anew for each
        event (the notifier replaces it), and :meth:`wake` it before adding to it empty."""
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._source = source_json(source)
        self._ids = EventIds()

    def metrics(self) -> dict[str, EndpointMetrics]:
        """Each endpoint's counters by endpoint name (this worker's; read, don't change)."""
        return {e.name: e.metrics for e in self.endpoints}

    def emit(self, record: Event) -> None:
        """Queue an event (on the event loop's thread; returns at once)."""
        if not self.queue:  # the feeder empties the queue as it clears the flag
            self._ready.set()
        self.queue.append(record)

    def wake(self) -> None:
        """Tell the feeder that events are coming (before the first goes in :attr:`queue`)."""
        self._ready.set()

    def start(self) -> None:
        """Start the feeding task and every endpoint's delivery task."""
        for endpoint in self.endpoints:
            endpoint.start()
        self._task = asyncio.get_running_loop().create_task(self._feed(), name="notifications")

    async def close(self) -> None:
        """Spool what requests queued, then stop: the next start delivers the rest."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._flush()
        for endpoint in self.endpoints:
            await endpoint.close()

    async def _feed(self) -> None:
        while True:
            await self._ready.wait()
            # Events come in bursts (a push, a pull): gathering them for a moment turns
            # a thread hop and a write per event into one per burst.
            await asyncio.sleep(LINGER)
            self._ready.clear()
            try:
                await self._flush()
            except Exception:  # a bug here must not stop notifications for good
                log.exception("notifications: could not queue events")

    async def _flush(self) -> None:
        records, self.queue = self.queue, []
        if not records:
            return
        lines = event_lines(records, self._source, self._ids.take(len(records)),
                            self._references)
        for endpoint in self.endpoints:
            if endpoint.filters:
                accepted = [line for r, line in zip(records, lines, strict=True)
                            if endpoint.accepts(r)]
            else:
                accepted = lines
            if accepted:
                await endpoint.add(accepted)

    def _references(self, record: Event) -> str | None:
        """The references of a manifest's event (its ``payload``), as JSON text."""
        event = EventRecord._make(record)
        if event.payload is None:
            return None
        try:
            return json.dumps(references(event.media_type, event.payload),
                              separators=(",", ":"))
        except Exception as exc:  # stored manifests parse; never lose the event anyway
            log.warning("notifications: no references for %s: %s", event.digest, exc)
            return None
