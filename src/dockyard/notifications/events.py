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

import functools
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "ACTIONS",
    "ENVELOPE_MEDIA_TYPE",
    "Event",
    "EventIds",
    "EventRecord",
    "Lazy",
    "RequestRecord",
    "SourceRecord",
    "event_lines",
    "source_json",
]

_q = json.encoder.encode_basestring  # a JSON string literal (the C version when built)

#: ``Content-Type`` of every POST (distribution's ``EventsMediaType``).
ENVELOPE_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
ACTIONS = ("push", "pull", "mount", "delete")


@dataclass(slots=True)
class RequestRecord:
    """The request that caused events (distribution's ``RequestRecord``) and its actor."""

    id: str
    """Printable ASCII, as a lazy request's id (:data:`Lazy`)."""
    addr: str
    host: str
    method: str
    useragent: str
    actor: str | None = None
    base_url: str = ""
    """``scheme://host/prefix`` for ``target.url`` (the request's, as Location headers)."""
    tail: tuple[str, str] | None = field(default=None, compare=False, repr=False)
    """``(source, text)``: what follows ``request.id`` in an event from ``source``, made
    by :func:`event_lines` for the first event of the record (shared by a client's
    requests: once for them all) and kept here."""


#: ``(id, make, key)``: a request's ``id`` now, the rest of its record when the notifier
#: formats its events. ``make(key)`` gives what is the same for every request of a
#: client (address, host, method, user agent, actor, base URL): a :class:`RequestRecord`
#: whose ``id`` is not this request's (the API shares one such record between a
#: client's requests). ``key`` holds what the record is made from, taken from the
#: request (plain values: the request itself is not kept alive until the notifier runs).
#: The id is printable ASCII, as :mod:`dockyard.api.requestid` gives them (only ``"``
#: and ``\`` are escaped in events).
Lazy = tuple[str, Callable[[Any], RequestRecord], Any]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """The registry instance that sent events (``source``)."""

    addr: str
    instance_id: str


class EventRecord(NamedTuple):
    """One event as a request records it: cheap to make, formatted later.

    The layout of an :data:`Event`, which the request path makes as a plain tuple.
    ``kind`` is ``blob`` or ``manifest`` (a ``delete`` of a tag has ``tag`` and no
    digest); the references of a manifest are found in ``payload`` when sent.
    """

    action: str
    repository: str
    request: RequestRecord | Lazy
    kind: str = "blob"
    digest: str = ""
    size: int = -1
    media_type: str = ""
    tag: str = ""
    from_repository: str = ""
    payload: bytes | None = None
    """The manifest, when ``events.includereferences`` asks for its references."""
    timestamp: int = 0
    """When, in nanoseconds since the epoch (``time.time_ns()``)."""


#: ``(action, repository, request, kind, digest, size, media_type, tag, from_repository,
#: payload, timestamp)``: an :class:`EventRecord`, or a plain tuple of its layout as the
#: request path makes them. A tuple display costs no call, and its memory comes from the
#: interpreter's free list, which the garbage collector does not count; every
#: NamedTuple was counted, so events queued for a tenth of a second set off young
#: collections (55 in 30,000 pulls; none with plain tuples).
Event = tuple[str, str, RequestRecord | Lazy, str, str, int, str, str, str, bytes | None, int]


_NO_KEY = object()  # no lazy request's key: not a key a request can have

#: The last two hex digits of an id, ready made ("00" to "ff").
_LOW_DIGITS = [f"{n:02x}" for n in range(256)]


class EventIds:
    """Event ids shaped as version 4 UUIDs, as distribution's: 80 random bits per process
    (with the version and variant digits), then a 40-bit counter from a random start.

    Unique as distribution's are (a receiver uses them to spot an event sent twice),
    for a fraction of the cost of a random UUID per event: ids are made in runs of up
    to 256 that share all digits but the last two, each one string concatenation
    (formatting a number per id cost more than the rest of making it).
    """

    def __init__(self) -> None:
        r = secrets.token_hex(10)
        variant = "89ab"[secrets.randbelow(4)]
        self._head = f"{r[:8]}-{r[8:12]}-4{r[12:15]}-{variant}{r[15:18]}-{r[18:20]}"
        self._next = secrets.randbits(40)

    def next(self) -> str:
        """One id."""
        return self.take(1)[0]

    def take(self, count: int) -> list[str]:
        """``count`` ids, in one call (a call per event costs more than making its id)."""
        ids: list[str] = []
        n = self._next
        while count > 0:
            low = n & 0xFF
            run = min(count, 256 - low)
            prefix = f"{self._head}{(n >> 8) & 0xFFFF_FFFF:08x}"
            ids += [prefix + digits for digits in _LOW_DIGITS[low:low + run]]
            n = (n + run) & 0xFF_FFFF_FFFF
            count -= run
        self._next = n
        return ids


def source_json(source: SourceRecord) -> str:
    """The ``source`` object, the same in every event of a process."""
    return f'{{"addr":{_q(source.addr)},"instanceID":{_q(source.instance_id)}}}'


def _no_references(record: Event) -> str | None:
    return None


def event_lines(
    records: Iterable[Event], source: str, ids: Iterable[str],
    references: Callable[[Event], str | None] = _no_references,
) -> list[bytes]:
    """Each event as distribution writes it (``omitempty`` fields left out), as JSON
    text in UTF-8; ``references(record)`` gives the ``references`` of an event with a
    ``payload``.

    A batch in one call, with the timestamp made inline: a call per event costs more
    than most of its formatting. Built from pieces rather than through ``json.dumps`` of
    dicts, which costs several times as much; the pieces that repeat (the action and
    target of the same pull, the request of the same client) are made once and
    remembered. Strings from the client (media type, user agent, host, URL) go through
    the json module's (C) string encoder, a request id only when it holds ``"`` or
    ``\\`` (ids are printable ASCII: looking for the two costs less than the encoder);
    the others were validated before any event was made (repository names, digests,
    tags, HTTP methods) and hold no character JSON would escape.
    """
    lines = []
    last_key: Any = _NO_KEY
    client: Any = None
    second, second_text = -1, ""
    for record, event_id in zip(records, ids, strict=True):
        (action, repository, req, kind, digest, size, media_type, tag, from_repository,
         payload, ts) = record
        if isinstance(req, RequestRecord):
            client = req
            rid = req.id
            last_key = _NO_KEY
        else:
            rid = req[0]
            if req[2] is not last_key:
                # The record made at most once a request: its events share its key.
                last_key = req[2]
                client = req[1](last_key)
        middle = _action_target(
            action, kind, repository, digest, size, media_type, tag, from_repository,
            client.base_url, None if payload is None else references(record))
        tail = client.tail
        if tail is None or tail[0] is not source:
            tail = client.tail = (source, _request_tail(
                client.addr, client.host, client.method, client.useragent, client.actor,
                source))
        # Go's RFC3339Nano in UTC, trailing zeros of the fraction dropped: the date and
        # time of day made once a second, the fraction's digits without a format spec.
        nanos = ts % 1_000_000_000
        if ts - nanos != second:
            second = ts - nanos
            second_text = time.strftime("%Y-%m-%dT%H:%M:%S",
                                        time.gmtime(second // 1_000_000_000))
        fraction = ("%09d" % nanos).rstrip("0")  # noqa: UP031 (f"{nanos:09}" costs 3x)
        if '"' in rid or "\\" in rid:
            rid = _q(rid)[1:-1]  # rare: dockyard's ids are hex, a client's printable ASCII
        lines.append(f'{{"id":"{event_id}","timestamp":"{second_text}'
                     f'{"." if fraction else ""}{fraction}Z",{middle},'
                     f'"request":{{"id":"{rid}"{tail[1]}'.encode())
    return lines


@functools.lru_cache(maxsize=1024)
def _action_target(
    action: str, kind: str, repository: str, digest: str, size: int, media_type: str,
    tag: str, from_repository: str, base_url: str, references: str | None,
) -> str:
    """``"action":...,"target":{...}``: the same for every pull of the same content by
    clients with the same base URL, so made once for them."""
    target = []
    if media_type:
        target.append(f'"mediaType":{_q(media_type)}')
    if size >= 0:
        target.append(f'"size":{size}')
    if digest:
        target.append(f'"digest":"{digest}"')
    if size >= 0:
        target.append(f'"length":{size}')
    target.append(f'"repository":"{repository}"')
    if from_repository:
        target.append(f'"fromRepository":"{from_repository}"')
    if digest and action != "delete":
        section = "blobs" if kind == "blob" else "manifests"
        # The repository and digest need no escaping: only the base URL is encoded.
        target.append(f'"url":{_url_prefix(base_url)}/v2/{repository}/{section}/{digest}"')
    if tag:
        target.append(f'"tag":"{tag}"')
    if references is not None:
        target.append(f'"references":{references}')
    return f'"action":"{action}","target":{{{",".join(target)}}}'


@functools.lru_cache(maxsize=256)
def _url_prefix(base_url: str) -> str:
    """``base_url`` as the start of a JSON string (no closing quote); few distinct ones."""
    return _q(base_url)[:-1]


def _request_tail(
    addr: str, host: str, method: str, useragent: str, actor: str | None, source: str
) -> str:
    """What follows ``request.id`` to the end of the event: the same for every request
    of a client (its address, host, method, user agent, user), so made once for them
    (kept in their shared :class:`RequestRecord`)."""
    request = []
    if addr:
        request.append(f',"addr":{_q(addr)}')
    if host:
        request.append(f',"host":{_q(host)}')
    request.append(f',"method":"{method}"')
    request.append(f',"useragent":{_q(useragent)}')
    actor_json = f'{{"name":{_q(actor)}}}' if actor else "{}"
    return f'{"".join(request)}}},"actor":{actor_json},"source":{source}}}'

