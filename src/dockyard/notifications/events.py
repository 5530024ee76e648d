"""The event model: distribution's envelope, built late.

A request records an :class:`EventRecord` (a few references, no formatting); the
delivery task turns it into the JSON object distribution sends
(``notifications/event.go``), adding the id and the RFC 3339 timestamp there, off
the request path::

    {"id": "...", "timestamp": "2006-01-02T15:04:05.999999999Z", "action": "push",
     "target": {"mediaType": "...", "size": 1, "digest": "sha256:...", "length": 1,
                "repository": "a/b", "url": "http://host/v2/a/b/manifests/sha256:...",
                "tag": "latest", "references": [...]},
     "request": {"id": "...", "addr": "127.0.0.1:4242", "host": "host", "method": "PUT",
                 "useragent": "..."},
     "actor": {"name": "alice"},
     "source": {"addr": "hostname:5000", "instanceID": "..."}}

Keys are left out when empty, as Go's ``omitempty`` does, except ``request.id``,
``request.method`` and ``request.useragent``, which distribution always writes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACTIONS",
    "ENVELOPE_MEDIA_TYPE",
    "EventRecord",
    "RequestRecord",
    "SourceRecord",
    "envelope",
    "event_json",
]

#: ``Content-Type`` of every POST (distribution's ``EventsMediaType``).
ENVELOPE_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
ACTIONS = ("push", "pull", "mount", "delete")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """The request that caused events (distribution's ``RequestRecord``) and its actor."""

    id: str
    addr: str
    host: str
    method: str
    useragent: str
    actor: str | None = None
    base_url: str = ""
    """``scheme://host/prefix`` for ``target.url`` (the request's, as Location headers)."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """The registry instance that sent events (``source``)."""

    addr: str
    instance_id: str


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event as a request records it: cheap to make, formatted later.

    ``kind`` is ``blob`` or ``manifest`` (a ``delete`` of a tag has ``tag`` and no
    digest); the references of a manifest are found in ``payload`` when sent.
    """

    action: str
    repository: str
    request: RequestRecord
    kind: str = "blob"
    digest: str = ""
    size: int = -1
    media_type: str = ""
    tag: str = ""
    from_repository: str = ""
    payload: bytes | None = None
    """The manifest, when ``events.includereferences`` asks for its references."""
    timestamp: float = 0.0

    @property
    def media_types(self) -> tuple[str, ...]:
        """The media type ignore filters look at (empty for deletes)."""
        return (self.media_type,) if self.media_type else ()


def _rfc3339(ts: float) -> str:
    seconds = int(ts)
    nanos = round((ts - seconds) * 1e9)
    if nanos >= 1_000_000_000:
        seconds, nanos = seconds + 1, nanos - 1_000_000_000
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    # Go's RFC3339Nano: trailing zeros of the fraction are dropped.
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"


def event_json(record: EventRecord, source: SourceRecord) -> dict[str, Any]:
    """The event as distribution writes it (``omitempty`` fields left out)."""
    target: dict[str, Any] = {}
    if record.media_type:
        target["mediaType"] = record.media_type
    if record.size >= 0:
        target["size"] = record.size
    if record.digest:
        target["digest"] = record.digest
    if record.size >= 0:
        target["length"] = record.size
    target["repository"] = record.repository
    if record.from_repository:
        target["fromRepository"] = record.from_repository
    if record.digest and record.action != "delete":
        section = "blobs" if record.kind == "blob" else "manifests"
        base = record.request.base_url
        target["url"] = f"{base}/v2/{record.repository}/{section}/{record.digest}"
    if record.tag:
        target["tag"] = record.tag
    req = record.request
    request: dict[str, str] = {"id": req.id}
    if req.addr:
        request["addr"] = req.addr
    if req.host:
        request["host"] = req.host
    request["method"] = req.method
    request["useragent"] = req.useragent
    event: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "timestamp": _rfc3339(record.timestamp),
        "action": record.action,
        "target": target,
        "request": request,
        "actor": {"name": req.actor} if req.actor else {},
        "source": {"addr": source.addr, "instanceID": source.instance_id},
    }
    return event


def envelope(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The body of one POST: ``{"events": [...]}``."""
    return {"events": list(events)}
