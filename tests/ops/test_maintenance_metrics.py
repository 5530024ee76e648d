"""``registry_gc_*`` and ``registry_retention_*``: the maintenance jobs' runs, counted on
the metrics endpoint (issue 13).

A registry with metrics on collects by itself every fraction of a second
(``storage.maintenance.garbagecollect``, ``deleteuntagged``, a two-second grace). Orphan
blobs and an untagged image are pushed beside a tagged one; once the collector has taken
them, the scrape's counters say exactly what went: the orphans, the untagged manifest and
its blobs, their bytes; the tagged image stays. Likewise a retention policy's deletions.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest
from tests.ops.conftest import DebugRegistryFactory, scrape, settled, value
from tests.support.api import TARGET, blob_path, push_blob, random_repo
from tests.support.manifests import image, put_manifest

pytestmark = pytest.mark.skipif(TARGET == "distribution", reason="dockyard's online GC")

COLLECTING = {
    "http": {"debug": {"prometheus": {"enabled": True}}},
    "storage": {"maintenance": {"garbagecollect": {
        "enabled": True, "interval": "300ms", "graceperiod": "2s", "deleteuntagged": True}}},
}


def blob_size(client: httpx.Client, repo: str, digest: str) -> int:
    response = client.head(blob_path(repo, digest))
    assert response.status_code == 200, (digest, response.status_code)
    return int(response.headers["content-length"])


@pytest.mark.parametrize("workers", [1, 2])
def test_gc_metrics_count_what_a_collection_frees(
    debug_registry_factory: DebugRegistryFactory, workers: int
) -> None:
    started = time.time()
    registry = debug_registry_factory(COLLECTING, workers=workers)
    repo = random_repo("gc-metrics")
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        orphans = [push_blob(client, repo, os.urandom(n)) for n in (1000, 20_000, 300_000)]
        tagged = image(client, repo, layers=2)
        put_manifest(client, repo, "keep", tagged)
        untagged = image(client, repo, layers=1)
        put_manifest(client, repo, untagged.digest, untagged)
        doomed = {d: blob_size(client, repo, d) for d in [*orphans, *untagged.blobs]}
        doomed[untagged.digest] = untagged.size  # the manifest's own payload blob
        metrics_url = registry.debug_url + "/metrics"
        after = settled(metrics_url, lambda s: value(
            s, "registry_gc_blobs_deleted_total") >= len(doomed), deadline=30)
        # A run or two later (and a worker's snapshot later), nothing more went: the
        # counters are not counting twice, nor summed twice over the workers.
        time.sleep(1.5)
        after = scrape(metrics_url)
        assert value(after, "registry_gc_blobs_deleted_total") == len(doomed)
        assert value(after, "registry_gc_bytes_freed_total") == sum(doomed.values())
        assert value(after, "registry_gc_manifests_deleted_total") == 1
        assert value(after, "registry_gc_errors_total") == 0
        assert value(after, "registry_gc_runs_total") >= 2
        assert value(after, "registry_gc_last_run_duration_seconds") > 0
        assert started < value(after, "registry_gc_last_run_timestamp_seconds") <= time.time()
        # What the counters claim is what happened.
        for digest in doomed:
            assert client.head(blob_path(repo, digest)).status_code == 404, digest
        for digest in tagged.blobs:
            assert client.head(blob_path(repo, digest)).status_code == 200, digest
        assert client.head(f"/v2/{repo}/manifests/keep").status_code == 200
        assert client.head(f"/v2/{repo}/manifests/{untagged.digest}").status_code == 404
        # Retention is not configured: its families are not there.
        assert not [k for k in after if k[0].startswith("registry_retention_")]


RETAINING = {
    "http": {"debug": {"prometheus": {"enabled": True}}},
    "retention": {"interval": "300ms", "delay": "0s", "policies": [
        {"repositories": ["**"], "keeptags": [{"patterns": ["^keep$"]}]}]},
}


def test_retention_metrics_count_what_a_run_deletes(
    debug_registry_factory: DebugRegistryFactory,
) -> None:
    registry = debug_registry_factory(RETAINING)
    repo = random_repo("retention-metrics")
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        put_manifest(client, repo, "keep", image(client, repo))
        gone = [image(client, repo) for _ in range(2)]
        for n, built in enumerate(gone):
            put_manifest(client, repo, f"old{n}", built)
        metrics_url = registry.debug_url + "/metrics"
        settled(metrics_url, lambda s: value(
            s, "registry_retention_manifests_deleted_total") >= 2, deadline=30)
        time.sleep(1)
        after = scrape(metrics_url)
        assert value(after, "registry_retention_tags_deleted_total") == 2
        assert value(after, "registry_retention_manifests_deleted_total") == 2
        assert value(after, "registry_retention_errors_total") == 0
        assert value(after, "registry_retention_runs_total") >= 2
        assert value(after, "registry_retention_last_run_timestamp_seconds") > 0
        assert client.head(f"/v2/{repo}/manifests/keep").status_code == 200
        for n, built in enumerate(gone):
            assert client.head(f"/v2/{repo}/manifests/old{n}").status_code == 404
            assert client.head(f"/v2/{repo}/manifests/{built.digest}").status_code == 404
        # Online GC is off: its families are not there.
        assert not [k for k in after if k[0].startswith("registry_gc_")]
