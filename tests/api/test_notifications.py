"""Webhook notifications (issue 11): a real receiver process, a real registry process.

Events must be what distribution sends (a receiver written for it works unchanged),
arrive once each and in order, survive a receiver outage and a registry restart,
honour the ``ignore`` filters, and never hold up the request that caused them.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.api import deviates_on_distribution, push_blob, random_repo
from tests.support.auth import write_htpasswd
from tests.support.manifests import DOCKER_SCHEMA2, OCI_MANIFEST, image, put_manifest
from tests.support.servers import RegistryProcess, RegistryStartError
from tests.support.webhook import WebhookReceiver

ENVELOPE = "application/vnd.docker.distribution.events.v1+json"
BLOB = "application/octet-stream"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")

Factory = Callable[..., RegistryProcess]
dockyard_only = deviates_on_distribution("queued events are lost on restart (in-memory queue)")


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(tmp_path / "receiver")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def endpoint(receiver: WebhookReceiver, **extra: Any) -> dict[str, Any]:
    return {"name": "hook", "url": receiver.hook_url, "timeout": "2s", "threshold": 3,
            "backoff": "200ms", **extra}


def notifying(
    registry_factory: Factory, receiver: WebhookReceiver, *, events: dict[str, Any] | None = None,
    extra_args: tuple[str, ...] = (), start: bool = True, **extra: Any,
) -> RegistryProcess:
    notifications: dict[str, Any] = {"endpoints": [endpoint(receiver, **extra)]}
    if events:
        notifications["events"] = events
    return registry_factory(
        overrides={"notifications": notifications}, extra_args=extra_args, start=start
    )


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(action, repository, digest or tag) of each event."""
    return [
        (e["action"], e["target"]["repository"],
         e["target"].get("digest") or e["target"].get("tag", ""))
        for e in events
    ]


def test_envelope_fields_of_push_pull_mount_delete(
    registry_factory: Factory, receiver: WebhookReceiver
) -> None:
    server = notifying(registry_factory, receiver, headers={"X-Hook-Token": ["s3cret"]})
    repo, other = random_repo("events"), random_repo("mounted")
    with httpx.Client(base_url=server.url, timeout=30,
                      headers={"User-Agent": "event-test/1.0"}) as client:
        built = image(client, repo, media_type=OCI_MANIFEST)  # pushes config + 1 layer
        put_manifest(client, repo, "v1", built)
        assert client.get(f"/v2/{repo}/manifests/v1",
                          headers={"Accept": OCI_MANIFEST}).status_code == 200
        layer = built.blobs[1]
        assert client.head(f"/v2/{repo}/blobs/{layer}").status_code == 200
        assert client.get(f"/v2/{repo}/blobs/{layer}").status_code == 200
        mount = client.post(f"/v2/{other}/blobs/uploads/?mount={layer}&from={repo}")
        assert mount.status_code == 201
        assert client.delete(f"/v2/{repo}/manifests/{built.digest}").status_code == 202
        assert client.delete(f"/v2/{other}/blobs/{layer}").status_code == 202

    events = receiver.wait_events(10)
    assert summary(events) == [
        ("push", repo, built.blobs[0]),
        ("push", repo, layer),
        ("push", repo, built.digest),
        ("pull", repo, built.digest),
        ("pull", repo, layer),
        ("pull", repo, layer),
        ("mount", other, layer),
        ("delete", repo, built.digest),
        ("delete", repo, "v1"),  # the tag that went with the revision, as distribution
        ("delete", other, layer),
    ]
    base = f"http://127.0.0.1:{server.port}/v2"
    push_manifest = events[2]
    assert push_manifest["target"] == {
        "mediaType": OCI_MANIFEST, "size": built.size, "digest": built.digest,
        "length": built.size, "repository": repo,
        "url": f"{base}/{repo}/manifests/{built.digest}", "tag": "v1",
    }
    assert events[3]["target"]["tag"] == "v1"
    layer_size = int(client_size(server, repo, layer))
    assert events[1]["target"] == {
        "mediaType": BLOB, "size": layer_size, "digest": layer, "length": layer_size,
        "repository": repo, "url": f"{base}/{repo}/blobs/{layer}",
    }
    assert events[6]["target"]["fromRepository"] == repo
    assert events[7]["target"] == {"digest": built.digest, "repository": repo}
    assert events[8]["target"] == {"repository": repo, "tag": "v1"}
    assert events[9]["target"] == {"digest": layer, "repository": other}
    for event, method in zip(events, ["PUT", "PUT", "PUT", "GET", "HEAD", "GET", "POST",
                                      "DELETE", "DELETE", "DELETE"], strict=True):
        assert UUID.fullmatch(event["id"])
        assert RFC3339.fullmatch(event["timestamp"]), event["timestamp"]
        request = event["request"]
        assert set(request) == {"id", "addr", "host", "method", "useragent"}
        assert request["method"] == method
        assert request["useragent"] == "event-test/1.0"
        assert request["host"] == f"127.0.0.1:{server.port}"
        assert request["addr"].startswith("127.0.0.1:")
        assert event["actor"] == {}
        assert set(event["source"]) == {"addr", "instanceID"}
        assert event["source"]["addr"].endswith(f":{server.port}")
    assert len({e["id"] for e in events}) == 10
    for entry in receiver.received():
        assert entry["headers"]["Content-Type"] == ENVELOPE
        assert entry["headers"]["X-Hook-Token"] == "s3cret"


@deviates_on_distribution("no X-Request-Id header; request.id is its own")
def test_request_id_is_echoed_and_in_the_event(
    registry_factory: Factory, receiver: WebhookReceiver
) -> None:
    server = notifying(registry_factory, receiver)
    repo = random_repo("rid")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        digest = push_blob(client, repo, b"request id")
        sent = client.head(f"/v2/{repo}/blobs/{digest}", headers={"X-Request-Id": "trace-42"})
        made = client.head(f"/v2/{repo}/blobs/{digest}")
    assert sent.headers["X-Request-Id"] == "trace-42"
    assert UUID.fullmatch(made.headers["X-Request-Id"])
    events = receiver.wait_events(3)
    assert [e["request"]["id"] for e in events[1:]] == ["trace-42", made.headers["X-Request-Id"]]


def test_each_connection_is_the_address_of_its_own_events(
    registry_factory: Factory, receiver: WebhookReceiver
) -> None:
    """The client's address is taken once per connection: requests of two keep-alive
    connections, interleaved, each carry their own."""
    server = notifying(registry_factory, receiver)
    repo = random_repo("addr")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        digest = push_blob(client, repo, b"two connections")
    head = (f"HEAD /v2/{repo}/blobs/{digest} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\n\r\n").encode()
    connections = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
    try:
        ports = []
        for conn in [*connections, *connections]:
            conn.settimeout(30)
            conn.sendall(head)
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += conn.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            ports.append(conn.getsockname()[1])
    finally:
        for conn in connections:
            conn.close()
    events = receiver.wait_events(5)
    assert [e["request"]["addr"] for e in events[1:]] == [f"127.0.0.1:{p}" for p in ports]


def test_forwarded_addresses_are_the_address_of_events(
    registry_factory: Factory, receiver: WebhookReceiver
) -> None:
    """As distribution's ``RemoteAddr``: X-Forwarded-For's first address if it is an IP,
    else X-Real-Ip if it is one, else the connection's peer."""
    server = notifying(registry_factory, receiver)
    repo = random_repo("fwd")
    sent = [
        {"X-Forwarded-For": "203.0.113.7, 10.0.0.1"},
        {"X-Forwarded-For": "unknown", "X-Real-Ip": "198.51.100.2"},
        {"X-Real-Ip": "garbage"},
    ]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        digest = push_blob(client, repo, b"forwarded")
        for headers in sent:
            assert client.head(f"/v2/{repo}/blobs/{digest}", headers=headers).status_code == 200
    addrs = [e["request"]["addr"] for e in receiver.wait_events(4)[1:]]
    assert addrs[:2] == ["203.0.113.7", "198.51.100.2"]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", addrs[2]), addrs


def test_include_references(registry_factory: Factory, receiver: WebhookReceiver) -> None:
    server = notifying(registry_factory, receiver, events={"includereferences": True})
    repo = random_repo("refs")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        built = image(client, repo, media_type=DOCKER_SCHEMA2, layers=2)
        put_manifest(client, repo, "v1", built)
    push = receiver.wait_events(4)[3]
    references = push["target"]["references"]
    assert [r["digest"] for r in references] == built.blobs
    assert all(set(r) >= {"mediaType", "digest", "size"} for r in references)


def test_ignore_filters(registry_factory: Factory, receiver: WebhookReceiver) -> None:
    server = notifying(registry_factory, receiver,
                       ignoredmediatypes=[BLOB], ignore={"actions": ["pull"]})
    repo = random_repo("ignored")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        built = image(client, repo)
        put_manifest(client, repo, "v1", built)
        accept = {"Accept": DOCKER_SCHEMA2}
        assert client.get(f"/v2/{repo}/manifests/v1", headers=accept).status_code == 200
        assert client.delete(f"/v2/{repo}/manifests/{built.digest}").status_code == 202
    events = receiver.wait_events(3)
    assert summary(events) == [
        ("push", repo, built.digest), ("delete", repo, built.digest), ("delete", repo, "v1")
    ]


def test_disabled_endpoint_gets_nothing(
    registry_factory: Factory, receiver: WebhookReceiver
) -> None:
    server = notifying(registry_factory, receiver, disabled=True)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        push_blob(client, random_repo("off"), b"nobody hears this")
    # The next endpoint's events prove delivery ran; here nothing may have been tried.
    assert receiver.attempts() == 0


def test_receiver_down_then_up_gets_every_event_once_in_order(
    registry_factory: Factory, receiver: WebhookReceiver
) -> None:
    server = notifying(registry_factory, receiver)
    receiver.stop()
    repo = random_repo("outage")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        digests = [push_blob(client, repo, f"blob {i}".encode()) for i in range(12)]
    receiver.start()
    events = receiver.wait_events(12)
    assert summary(events) == [("push", repo, d) for d in digests]


def test_failing_receiver_is_retried_until_it_accepts(
    registry_factory: Factory, receiver: WebhookReceiver
) -> None:
    receiver.control(status=503)
    server = notifying(registry_factory, receiver)
    repo = random_repo("retry")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        digest = push_blob(client, repo, b"retried")
    _wait(lambda: receiver.attempts() >= 4, "the endpoint was not retried past its threshold")
    receiver.control(status=200)
    events = receiver.wait_events(1)
    assert summary(events) == [("push", repo, digest)]


def test_slow_receiver_does_not_hold_up_pushes(
    registry_factory: Factory, receiver: WebhookReceiver
) -> None:
    receiver.control(block=True)
    server = notifying(registry_factory, receiver)
    repo = random_repo("slow")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        first = push_blob(client, repo, b"first")
        _wait(lambda: receiver.attempts() >= 1, "the first event was never sent")
        # The receiver holds the first POST: pushes must still complete meanwhile.
        built = image(client, repo)
        put_manifest(client, repo, "v1", built)
        assert receiver.events() == []
    receiver.control(block=False)
    events = receiver.wait_events(4)
    assert summary(events)[0] == ("push", repo, first)
    assert summary(events)[-1] == ("push", repo, built.digest)


@dockyard_only
@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_queued_events_survive_a_restart(
    registry_factory: Factory, receiver: WebhookReceiver, stop: str
) -> None:
    receiver.control(status=503)
    server = notifying(registry_factory, receiver)
    repo = random_repo("restart")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        digests = [push_blob(client, repo, f"queued {i}".encode()) for i in range(5)]
    # Every event was tried (hence spooled) before the registry goes.
    _wait(lambda: _spooled(server) == 5, "events were not spooled")
    if stop == "sigkill":
        server.kill()
    else:
        server.stop()
    receiver.control(status=200)
    server.start()
    events = receiver.wait_events(5)
    assert summary(events) == [("push", repo, d) for d in digests]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        more = push_blob(client, repo, b"after the restart")
    events = receiver.wait_events(6)
    assert summary(events) == [("push", repo, d) for d in [*digests, more]]


@deviates_on_distribution("no notifications.spool (its queue is unbounded, in memory)")
def test_spool_bound_drops_the_oldest_and_says_so(
    registry_factory: Factory, receiver: WebhookReceiver
) -> None:
    receiver.stop()
    server = registry_factory(overrides={"notifications": {
        "endpoints": [endpoint(receiver)], "spool": {"maxevents": 3}}})
    repo = random_repo("bound")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        digests = [push_blob(client, repo, f"bounded {i}".encode()) for i in range(6)]
    _wait(lambda: "dropped" in server.log_path.read_text(), "no log line about dropped events")
    receiver.start()
    events = receiver.wait_events(3)
    assert summary(events) == [("push", repo, d) for d in digests[3:]]


@deviates_on_distribution("one process, no --workers")
def test_workers_deliver_each_event_once(
    registry_factory: Factory, receiver: WebhookReceiver
) -> None:
    server = notifying(registry_factory, receiver, extra_args=("--workers", "2"))
    repo = random_repo("workers")
    digests = set()
    for i in range(16):  # a new connection each: the kernel spreads them over workers
        with httpx.Client(base_url=server.url, timeout=30) as client:
            digests.add(push_blob(client, repo, f"worker blob {i}".encode()))
    receiver.wait_events(16)
    time.sleep(1)  # a duplicate, were one sent, would have arrived by now
    assert sorted(e["target"]["digest"] for e in receiver.events()) == sorted(digests)


def _spooled(server: RegistryProcess) -> int:
    """Events waiting in the spool files of ``server`` (dockyard's layout)."""
    total = 0
    for path in (server.root / "notifications-spool").rglob("*.events"):
        total += path.read_bytes().count(b"\n")
    return total


def _wait(condition: Callable[[], bool], message: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, message
        time.sleep(0.05)


def client_size(server: RegistryProcess, repo: str, digest: str) -> str:
    return httpx.head(f"{server.url}/v2/{repo}/blobs/{digest}").headers["Content-Length"]


def test_actor_is_the_authenticated_user(
    registry_factory: Factory, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    write_htpasswd(tmp_path / "htpasswd", {"alice": "alice-password"})
    server = registry_factory(overrides={
        "auth": {"htpasswd": {"realm": "test", "path": str(tmp_path / "htpasswd")}},
        "notifications": {"endpoints": [endpoint(receiver)]},
    })
    repo = random_repo("actor")
    with httpx.Client(base_url=server.url, timeout=30, auth=("alice", "alice-password")) as client:
        push_blob(client, repo, b"whose blob")
    assert receiver.wait_events(1)[0]["actor"] == {"name": "alice"}


@deviates_on_distribution("no notifications.spool")
def test_unusable_spool_directory_stops_the_start_naming_the_key(
    registry_factory: Factory, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    server = registry_factory(start=False, overrides={"notifications": {
        "endpoints": [endpoint(receiver)], "spool": {"directory": str(blocker / "spool")}}})
    with pytest.raises(RegistryStartError):
        server.start(deadline=10)
    assert "notifications.spool.directory" in server.log_text()


@deviates_on_distribution("no repository delete API (dockyard's /dockyard/v1/repositories)")
def test_repository_delete_event(registry_factory: Factory, receiver: WebhookReceiver) -> None:
    server = notifying(registry_factory, receiver)
    repo = random_repo("gone")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        push_blob(client, repo, b"soon gone")
        assert client.delete(f"/dockyard/v1/repositories/{repo}").status_code in (202, 204)
    events = receiver.wait_events(2)
    assert events[1]["action"] == "delete"
    assert events[1]["target"] == {"repository": repo}
