"""Webhook notifications (distribution's ``notifications`` section).

Events (push, pull, mount, delete of blobs and manifests) in distribution's envelope
(:mod:`~.events`) are emitted by a repository wrapper after an operation succeeds
(:mod:`~.repository`), queued without delay by the worker's :class:`Notifier`
(:mod:`~.notifier`) and delivered in order by one task per endpoint, with retries
and backoff (:mod:`~.endpoint`), from a spool on local disk that survives restarts
(:mod:`~.spool`). Per-endpoint counters: ``Notifier.endpoints[i].metrics``
(:class:`EndpointMetrics`).
"""

from __future__ import annotations

from dockyard.notifications.endpoint import Endpoint, EndpointMetrics
from dockyard.notifications.events import (
    ENVELOPE_MEDIA_TYPE,
    Event,
    EventRecord,
    Lazy,
    RequestRecord,
    SourceRecord,
    event_lines,
)
from dockyard.notifications.notifier import Notifier, open_spools
from dockyard.notifications.repository import NotifyingRepository
from dockyard.notifications.spool import DiskSpool, MemorySpool, Spool, SpoolBusy

__all__ = [
    "ENVELOPE_MEDIA_TYPE",
    "DiskSpool",
    "Endpoint",
    "EndpointMetrics",
    "Event",
    "EventRecord",
    "Lazy",
    "MemorySpool",
    "Notifier",
    "NotifyingRepository",
    "RequestRecord",
    "SourceRecord",
    "Spool",
    "SpoolBusy",
    "event_lines",
    "open_spools",
]
