"""distribution's notification metrics and ``/debug/vars`` entry, from a real endpoint."""

from __future__ import annotations

from pathlib import Path

import httpx
from tests.support.api import push_blob, random_repo
from tests.support.webhook import WebhookReceiver

from .conftest import DebugRegistryFactory, settled, value


def test_notification_counters_are_scraped(
    debug_registry_factory: DebugRegistryFactory, tmp_path: Path
) -> None:
    with WebhookReceiver(tmp_path / "receiver") as receiver:
        server = debug_registry_factory(overrides={
            "http": {"debug": {"prometheus": {"enabled": True}}},
            "notifications": {"endpoints": [{"name": "hook", "url": receiver.hook_url}]},
        }, workers=2)
        repo = random_repo("metrics")
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(3):
                push_blob(client, repo, f"counted {i}".encode())
        receiver.wait_events(3)
        name = "registry_notifications_events_total"
        samples = settled(f"{server.debug_url}/metrics",
                          lambda s: value(s, name, type="Successes", endpoint="hook") == 3)
        assert value(samples, name, type="Events", endpoint="hook") == 3
        assert value(samples, name, type="Failures", endpoint="hook") == 0
        assert value(samples, "registry_notifications_pending", endpoint="hook") == 0
        assert sum(v for (n, labels), v in samples.items()
                   if n == "registry_notifications_status_total"
                   and ("endpoint", "hook") in labels) >= 1
        variables = httpx.get(f"{server.debug_url}/debug/vars", timeout=10).json()
        endpoints = variables["registry"]["notifications"]["endpoints"]
        assert [e["name"] for e in endpoints] == ["hook"]
