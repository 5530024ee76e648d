"""Per-endpoint counters (what the metrics side exports), against a real receiver process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.net import free_port
from tests.support.webhook import WebhookReceiver

from dockyard.notifications import (
    Endpoint,
    EventRecord,
    Notifier,
    RequestRecord,
    SourceRecord,
    open_spools,
)

REQUEST = RequestRecord("rid", "127.0.0.1:1", "registry:5000", "PUT", "test", None,
                        "http://registry:5000")


def event(i: int) -> EventRecord:
    return EventRecord("push", "a/b", REQUEST, "blob", f"sha256:{i:064x}", i,
                       "application/octet-stream", timestamp=time.time_ns())


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):  # 20 s
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in 20 s")


def test_counters(tmp_path: Path) -> None:
    receiver = WebhookReceiver(tmp_path / "receiver")
    with receiver:
        receiver.control(status=503)

        async def run() -> None:
            good = Endpoint("good", receiver.hook_url,
                            open_spools(str(tmp_path / "spool"), "good", 0, 1, 100),
                            threshold=2, backoff=0.05, ignored_actions=("pull",))
            dead = Endpoint("dead", f"http://127.0.0.1:{free_port()}/",
                            open_spools(None, "dead", 0, 1, 3), threshold=1, backoff=0.05)
            notifier = Notifier([good, dead], SourceRecord("here:5000", "instance"))
            notifier.start()
            try:
                for i in range(5):
                    notifier.emit(event(i))
                notifier.emit(EventRecord("pull", "a/b", REQUEST, timestamp=time.time_ns()))
                await until(lambda: good.metrics.failures >= 10)
                metrics = notifier.metrics()
                assert metrics["good"].events == 5  # the pull was ignored
                assert metrics["good"].pending == 5
                assert metrics["good"].successes == 0
                assert metrics["good"].statuses.get("503 Service Unavailable", 0) >= 2
                receiver.control(status=200)
                await until(lambda: good.metrics.pending == 0)  # acknowledged
                assert good.metrics.successes == 5
                assert good.metrics.statuses["200 OK"] == 1  # one envelope of 5 events
                await until(lambda: dead.metrics.errors > 0)
                assert dead.metrics.events == 6
                assert dead.metrics.dropped == 3  # maxevents 3
                assert dead.metrics.pending == 3
            finally:
                await notifier.close()

        asyncio.run(run())
    assert len(receiver.events()) == 5
