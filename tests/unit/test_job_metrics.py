"""``registry_gc_*`` / ``registry_retention_*`` (dockyard.background.JobMetrics): what a
run adds, a dry run, and a run that raised, rendered as a scrape renders them."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dockyard.background import gc_metrics, retention_metrics
from dockyard.maintenance.gc_report import GCSummary
from dockyard.maintenance.retention import RetentionSummary
from dockyard.metrics import Metrics
from dockyard.metrics.exposition import render


def _samples(metrics: Metrics) -> dict[str, float]:
    return {s.name: s.value for f in text_string_to_metric_families(render(metrics).decode())
            for s in f.samples}


def test_runs_add_up_and_dry_runs_delete_nothing() -> None:
    metrics = Metrics()
    recorder = gc_metrics(metrics)
    before = _samples(metrics)
    assert before["registry_gc_runs_total"] == 0  # present before the first run
    assert before["registry_gc_bytes_freed_total"] == 0

    async def run(summary: GCSummary) -> GCSummary:
        return summary

    asyncio.run(recorder.timed(lambda: run(GCSummary(blobs_deleted=3, bytes_freed=1000,
                                                     manifests_deleted=1, errors=2))))
    asyncio.run(recorder.timed(lambda: run(GCSummary(blobs_deleted=2, bytes_freed=24))))
    asyncio.run(recorder.timed(lambda: run(GCSummary(blobs_deleted=9, bytes_freed=9,
                                                     dry_run=True))))
    after = _samples(metrics)
    assert after["registry_gc_runs_total"] == 3
    assert after["registry_gc_blobs_deleted_total"] == 5
    assert after["registry_gc_bytes_freed_total"] == 1024
    assert after["registry_gc_manifests_deleted_total"] == 1
    assert after["registry_gc_errors_total"] == 2
    assert after["registry_gc_last_run_timestamp_seconds"] > 0
    assert after["registry_gc_last_run_duration_seconds"] >= 0


def test_a_run_that_raises_counts_one_error_and_still_raises() -> None:
    metrics = Metrics()
    recorder = retention_metrics(metrics)

    async def fails() -> RetentionSummary:
        raise RuntimeError("index down")

    with pytest.raises(RuntimeError):
        asyncio.run(recorder.timed(fails))
    samples = _samples(metrics)
    assert samples["registry_retention_runs_total"] == 1
    assert samples["registry_retention_errors_total"] == 1
    assert samples["registry_retention_tags_deleted_total"] == 0
    assert samples["registry_retention_last_run_timestamp_seconds"] > 0
