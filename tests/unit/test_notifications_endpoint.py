"""An endpoint's delivery timing, against a real receiver process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tests.support.webhook import WebhookReceiver
from tests.unit.test_notifications_metrics import until

from dockyard.notifications import Endpoint, open_spools
from dockyard.notifications import endpoint as endpoint_module


def lines(start: int, count: int) -> list[bytes]:
    return [json.dumps({"n": n}).encode() for n in range(start, start + count)]


def test_a_burst_lingers_but_a_full_envelope_goes_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events that trickle in wait a moment to share an envelope; once a full one
    (BATCH events) is queued it is sent without waiting out the rest of the moment,
    so a steady stream is delivered from the spool's memory, not read back from disk."""
    monkeypatch.setattr(endpoint_module, "LINGER", 60.0)
    batch = endpoint_module.BATCH
    with WebhookReceiver(tmp_path / "receiver") as receiver:

        async def run() -> None:
            endpoint = Endpoint("hook", receiver.hook_url,
                                open_spools(str(tmp_path / "spool"), "hook", 0, 1, 10 * batch))
            endpoint.start()
            # Let the delivery task reach its wait for events first: events already
            # queued when it starts (a former run's) go out at once, without lingering.
            await asyncio.sleep(0)
            try:
                await endpoint.add(lines(0, batch - 1))
                await asyncio.sleep(0.5)
                assert receiver.attempts() == 0  # lingering
                await endpoint.add(lines(batch - 1, 1))
                await until(lambda: receiver.attempts() == 1)
                assert [e["n"] for e in receiver.events()] == list(range(batch))
            finally:
                await endpoint.close()

        asyncio.run(run())
