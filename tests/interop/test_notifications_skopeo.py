"""Notifications from what skopeo does: push, pull, cross-repository mount, delete.

A real webhook receiver process gets distribution's events for every step, in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.interop import OCI_MANIFEST, BuiltImage, Layout, Skopeo, random_repo
from tests.support.webhook import WebhookReceiver

from .conftest import ServerFactory

pytestmark = pytest.mark.interop


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(tmp_path / "receiver")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_skopeo_push_pull_mount_delete_events(
    server_factory: ServerFactory, receiver: WebhookReceiver, skopeo: Skopeo,
    fresh_image: BuiltImage, tmp_path: Path,
) -> None:
    server = server_factory("dockyard", overrides={"notifications": {"endpoints": [
        {"name": "skopeo", "url": receiver.hook_url, "timeout": "2s"}]}})
    repo, other = random_repo("events"), random_repo("events-mount")
    base = f"docker://127.0.0.1:{server.port}"
    image = fresh_image
    blobs = [image.config_digest, *image.layer_digests]

    skopeo.copy(image.ref, f"{base}/{repo}:v1")
    pushed = receiver.wait_events(1 + len(blobs))
    manifest_push = [e for e in pushed if e["target"]["mediaType"] == OCI_MANIFEST]
    assert len(manifest_push) == 1 and manifest_push[0]["action"] == "push"
    assert manifest_push[0]["target"]["digest"] == image.manifest_digest
    assert manifest_push[0]["target"]["tag"] == "v1"
    assert manifest_push[0]["target"]["repository"] == repo
    assert manifest_push[0]["request"]["useragent"].startswith("skopeo")
    assert {e["target"]["digest"] for e in pushed if e["action"] == "push"} == {
        image.manifest_digest, *blobs}
    # The manifest comes last: its blobs were pushed before it.
    assert pushed[-1] == manifest_push[0]
    count = len(pushed)

    skopeo.copy(f"{base}/{repo}:v1", Layout(tmp_path / "out").ref("pulled"))
    events = receiver.wait_events(count + 1 + len(blobs))
    pulls = events[count:]
    assert {e["action"] for e in pulls} == {"pull"}
    assert {e["target"]["digest"] for e in pulls} >= {image.manifest_digest, *image.layer_digests}
    count = len(events)

    skopeo.copy(f"{base}/{repo}:v1", f"{base}/{other}:v1")
    events = receiver.wait_events(count + 1 + len(image.layer_digests))
    while events[-1]["target"].get("tag") != "v1" or events[-1]["target"]["repository"] != other:
        events = receiver.wait_events(len(events) + 1)  # up to the manifest's push
    new = events[count:]
    mounts = [e for e in new if e["action"] == "mount"]
    # skopeo mounts the layers (the config it may upload again).
    assert {e["target"]["digest"] for e in mounts} >= set(image.layer_digests)
    assert {e["target"]["fromRepository"] for e in mounts} == {repo}
    assert {e["target"]["repository"] for e in mounts} == {other}
    count = len(events)

    skopeo.delete(f"{base}/{other}:v1")
    events = receiver.wait_events(count + 1)
    while events[-1]["action"] != "delete":  # skopeo reads the manifest first
        events = receiver.wait_events(len(events) + 1)
    deletes = [e for e in events[count:] if e["action"] == "delete"]
    assert deletes[0]["target"] == {"digest": image.manifest_digest, "repository": other}
