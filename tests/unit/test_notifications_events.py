"""Event text: ids, and the pieces remembered between events never mixed up."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from dockyard.notifications import EventRecord, Lazy, RequestRecord
from dockyard.notifications.events import EventIds, event_lines

SOURCE = '{"addr":"here:5000","instanceID":"i"}'


def event_line(record: EventRecord, source: str, event_id: str) -> bytes:
    """One event's line, as the notifier formats a batch."""
    return event_lines([record], source, [event_id])[0]


def test_event_ids_are_version_4_uuids_and_unique() -> None:
    first, second = EventIds(), EventIds()
    ids = [first.next() for _ in range(1000)] + [second.next() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    for text in ids[::97]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                            text)


def _event(request: RequestRecord | Lazy, digest: str, tag: str = "") -> dict[str, Any]:
    record = EventRecord("pull", "a/b", request, "manifest", digest, 7,
                         "application/vnd.oci.image.manifest.v1+json", tag, timestamp=1_500_000_000)
    parsed: dict[str, Any] = json.loads(event_line(record, SOURCE, "id-1"))
    return parsed


def test_repeated_pieces_follow_each_event() -> None:
    alice = RequestRecord("r1", "10.0.0.1:1", "reg", "GET", "ua-1", "alice", "https://reg")
    bob = RequestRecord("r2", "10.0.0.2:2", "mirror", "GET", "ua-2", None, "http://mirror")
    d1, d2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    events = [_event(alice, d1, "x"), _event(bob, d1, "x"), _event(alice, d2), _event(bob, d1, "x")]
    assert [e["request"]["id"] for e in events] == ["r1", "r2", "r1", "r2"]
    assert [e["actor"] for e in events] == [{"name": "alice"}, {}, {"name": "alice"}, {}]
    assert events[1]["target"] == events[3]["target"]
    assert events[0]["target"]["url"] == f"https://reg/v2/a/b/manifests/{d1}"
    assert events[1]["target"]["url"] == f"http://mirror/v2/a/b/manifests/{d1}"
    assert events[2]["target"]["digest"] == d2 and "tag" not in events[2]["target"]
    assert events[0]["timestamp"] == "1970-01-01T00:00:01.5Z"


def test_a_lazy_request_keeps_its_own_id() -> None:
    shared = RequestRecord("", "10.0.0.1:1", "reg", "GET", "ua", None, "https://reg")
    first = _event(("one", lambda _: shared, None), "sha256:" + "3" * 64)
    second = _event(("two", lambda _: shared, None), "sha256:" + "3" * 64)
    assert first["request"] == {"id": "one", "addr": "10.0.0.1:1", "host": "reg",
                                "method": "GET", "useragent": "ua"}
    assert second["request"]["id"] == "two"


def test_a_shared_record_follows_the_source() -> None:
    """The request part kept in a shared record is made again for another source."""
    shared = RequestRecord("", "10.0.0.1:1", "reg", "GET", "ua", None, "https://reg")
    record = EventRecord("pull", "a/b", ("one", lambda _: shared, None), "blob",
                         "sha256:" + "4" * 64, 7, "application/octet-stream",
                         timestamp=1_000_000_000)
    other = '{"addr":"there:5000","instanceID":"j"}'
    first = json.loads(event_line(record, SOURCE, "id-1"))
    second = json.loads(event_line(record, other, "id-2"))
    again = json.loads(event_line(record, SOURCE, "id-3"))
    assert first["source"] == again["source"] == {"addr": "here:5000", "instanceID": "i"}
    assert second["source"] == {"addr": "there:5000", "instanceID": "j"}
    assert first["request"] == second["request"] == {
        "id": "one", "addr": "10.0.0.1:1", "host": "reg", "method": "GET", "useragent": "ua"}


def test_timestamps_are_go_rfc3339nano() -> None:
    """Nanoseconds as Go writes them: the fraction padded to nine digits, then its
    trailing zeros dropped (and the dot with them)."""
    alice = RequestRecord("r1", "10.0.0.1:1", "reg", "GET", "ua-1", "alice", "https://reg")
    stamps = [json.loads(event_line(EventRecord("pull", "a/b", alice, timestamp=ts),
                                    SOURCE, "id"))["timestamp"]
              for ts in (5, 1_000_000_000, 1765000000120000000, 1765000000123456789)]
    assert stamps == ["1970-01-01T00:00:00.000000005Z", "1970-01-01T00:00:01Z",
                      "2025-12-06T05:46:40.12Z", "2025-12-06T05:46:40.123456789Z"]


def test_a_request_id_with_json_specials_is_escaped() -> None:
    """A client's X-Request-Id is printable ASCII, so may hold a quote or a backslash."""
    shared = RequestRecord("", "10.0.0.1:1", "reg", "GET", "ua", None, "https://reg")
    for rid in ('say "hi"', "back\\slash", "plain-7"):
        event = _event((rid, lambda _: shared, None), "sha256:" + "5" * 64)
        assert event["request"]["id"] == rid
