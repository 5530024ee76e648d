"""Units of the operations packages: the metric store's sums, and when tracing is on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dockyard.metrics._families import Metrics
from dockyard.metrics.exposition import render
from dockyard.tracing import tracing_wanted


def _samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text.decode()) for s in f.samples}


def test_workers_snapshots_are_summed(tmp_path: Path) -> None:
    """Counters and histograms of every snapshot add up; gauges only of live processes."""
    ours = Metrics(str(tmp_path))
    ours.http_requests.labels("blob", "200", "get").inc(3)
    ours.http_in_flight.labels("blob").inc(2)
    ours.http_duration.labels("blob", "get").observe(0.02)
    other = Metrics()
    other.http_requests.labels("blob", "200", "get").inc(4)
    other.http_in_flight.labels("blob").inc(5)
    other.http_duration.labels("blob", "get").observe(3.0)
    from dockyard.metrics._store import write_snapshot

    dead = other.store.snapshot()
    dead["pid"] = 2**22 + 7  # beyond pid_max: not a live process
    write_snapshot(str(tmp_path), dead)
    samples = _samples(render(ours))
    key = frozenset({"handler": "blob", "code": "200", "method": "get"}.items())
    assert samples[("registry_http_requests_total", key)] == 7
    assert samples[("registry_http_in_flight_requests", frozenset({("handler", "blob")}))] == 2
    hist = frozenset({"handler": "blob", "method": "get"}.items())
    assert samples[("registry_http_request_duration_seconds_count", hist)] == 2
    assert samples[("registry_http_request_duration_seconds_sum", hist)] == 3.02
    le = {k: v for (n, ls), v in samples.items()
          if n == "registry_http_request_duration_seconds_bucket" and ("handler", "blob") in ls
          for k in [dict(ls)["le"]]}
    assert le["0.025"] == 1 and le["2.5"] == 1 and le["5.0"] == 2 and le["+Inf"] == 2


def test_extra_sources_are_collected() -> None:
    from prometheus_client.metrics_core import CounterMetricFamily

    metrics = Metrics()
    family = CounterMetricFamily("registry_example", "An example.", labels=["endpoint"])
    family.add_metric(["hook"], 2)
    metrics.add_source(lambda: [family])
    counter = metrics.counter("registry_other", "Another.", ["endpoint"])
    counter.labels("hook").inc()
    samples = _samples(render(metrics))
    assert samples[("registry_example_total", frozenset({("endpoint", "hook")}))] == 2
    assert samples[("registry_other_total", frozenset({("endpoint", "hook")}))] == 1


def test_tracing_wanted_only_with_otel_variables() -> None:
    assert not tracing_wanted({"PATH": os.defpath})
    assert tracing_wanted({"OTEL_SERVICE_NAME": "registry"})
    assert not tracing_wanted({"OTEL_SERVICE_NAME": "r", "OTEL_SDK_DISABLED": "true"})
    assert not tracing_wanted({"OTEL_TRACES_EXPORTER": "none"})


def test_observed_driver_keeps_optional_capabilities() -> None:
    """The purger finds an S3 driver's stale-upload abort through the wrapper."""
    import contextlib
    from datetime import datetime

    from dockyard.storage.drivers.base import AbortsStaleWrites
    from dockyard.storage.drivers.inmemory import InMemoryDriver
    from dockyard.storage.drivers.observed import ObservedDriver

    class Aborting(InMemoryDriver):
        async def abort_stale_multipart_uploads(self, older_than: datetime) -> int:
            return 3

    def observe(action: str, path: str) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    assert isinstance(ObservedDriver(Aborting(), observe), AbortsStaleWrites)
    assert not isinstance(ObservedDriver(InMemoryDriver(), observe), AbortsStaleWrites)


def test_observed_driver_passes_batches_to_the_driver(tmp_path: Path) -> None:
    """Batched calls reach a filesystem driver's own batch methods through the wrapper
    (one thread hop, not one call per path), each batch observed once as its action."""
    import asyncio
    import contextlib
    from collections.abc import Iterator, Sequence

    from dockyard.storage.drivers import base
    from dockyard.storage.drivers.filesystem import FilesystemDriver
    from dockyard.storage.drivers.observed import ObservedDriver

    seen: list[str] = []
    batches: list[int] = []

    class Counting(FilesystemDriver):
        async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
            batches.append(len(items))
            await super().put_many(items)

        async def get_many(self, paths: Sequence[str]) -> list[bytes | None]:
            batches.append(len(paths))
            return await super().get_many(paths)

    @contextlib.contextmanager
    def observe(action: str, path: str) -> Iterator[None]:
        seen.append(action)
        yield

    driver = ObservedDriver(Counting(str(tmp_path)), observe)
    for protocol in (base.ListsMany, base.GetsMany, base.StatsMany, base.PutsMany,
                     base.PutsUnsynced):
        assert base._has(driver, protocol), protocol

    async def run() -> list[bytes | None]:
        await base.put_many(driver, [("/a/one", b"1"), ("/a/two", b"22")])
        await base.put_unsynced(driver, [("/a/three", b"333")])
        found = await base.get_many(driver, ["/a/one", "/a/two", "/a/none"])
        assert await base.list_many(driver, ["/a"]) == [["/a/one", "/a/three", "/a/two"]]
        infos = await base.stat_many(driver, ["/a/two", "/b"])
        assert infos[0] is not None and infos[0].size == 2 and infos[1] is None
        return found

    assert asyncio.run(run()) == [b"1", b"22", None]
    assert batches == [2, 3]
    assert seen == ["PutContent", "PutContent", "GetContent", "List", "Stat"]


def test_storage_timer_observes_each_call_once() -> None:
    """Every driver call through the timed wrapper is one observation of its action,
    failed ones too; a path the wrapper refuses (it is the path checker too) never
    reaches the driver and is not timed."""
    import asyncio

    from dockyard.metrics.driver import storage_timer
    from dockyard.storage.drivers.base import InvalidPath, PathNotFound
    from dockyard.storage.drivers.inmemory import InMemoryDriver
    from dockyard.storage.drivers.observed import TimedDriver

    metrics = Metrics()
    driver = TimedDriver(InMemoryDriver(), storage_timer(metrics, "filesystem"))

    async def calls() -> None:
        await driver.put_content("/a", b"data")
        for _ in range(3):
            assert await driver.get_content("/a") == b"data"
        with pytest.raises(PathNotFound):
            await driver.stat("/b")
        with pytest.raises(InvalidPath):
            await driver.get_content("/a/../a")
        with pytest.raises(InvalidPath):
            await driver.stat("relative")
        assert b"".join([c async for c in driver.reader("/a")]) == b"data"

    asyncio.run(calls())
    samples = _samples(render(metrics))

    def count(action: str) -> float:
        return samples[("registry_storage_action_seconds_count",
                        frozenset({"driver": "filesystem", "action": action}.items()))]

    assert count("GetContent") == 3 and count("Stat") == 1
    assert count("PutContent") == 1 and count("Reader") == 1 and count("Delete") == 0
    total = frozenset({"driver": "filesystem", "action": "GetContent"}.items())
    assert 0 <= samples[("registry_storage_action_seconds_sum", total)] < 1
