"""``http.debug.prometheus``: a scrape after known traffic counts it, over all workers."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from tests.ops.conftest import DebugRegistryFactory, scrape, settled, total, value
from tests.support.api import blob_path, push_blob, random_repo
from tests.support.manifests import get_manifest, image, put_manifest
from tests.support.servers import RegistryProcess

PROMETHEUS = {"http": {"debug": {"prometheus": {"enabled": True}}},
              "storage": {"cache": {"blobdescriptor": "inmemory"}}}


@pytest.mark.parametrize("workers", [1, 2])
def test_scrape_counts_known_traffic(
    debug_registry_factory: DebugRegistryFactory, workers: int
) -> None:
    registry = debug_registry_factory(PROMETHEUS, workers=workers)
    repo = random_repo("metrics")
    blob = os.urandom(300_000)
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        digest = push_blob(client, repo, blob)
        built = image(client, repo)
        put_manifest(client, repo, "v1", built)
    metrics_url = registry.debug_url + "/metrics"
    # Other workers' counts reach a scrape within a second: wait for the setup's.
    before = settled(metrics_url, lambda s: value(
        s, "registry_http_requests_total", handler="blob_upload_chunk", code="201",
        method="put") == 3)
    # A new connection per request, so that with two workers both serve some of them.
    for _ in range(20):
        assert get_manifest(httpx.Client(base_url=registry.url), repo, "v1",
                            method="head").status_code == 200
    for _ in range(7):
        assert get_manifest(httpx.Client(base_url=registry.url), repo, "v1").status_code == 200
    for _ in range(5):
        assert httpx.get(registry.url + blob_path(repo, digest)).content == blob
    missing = "sha256:" + "0" * 64
    for _ in range(3):
        assert httpx.get(registry.url + blob_path(repo, missing)).status_code == 404
    after = settled(metrics_url, lambda s: total(
        s, "registry_http_requests_total", handler="manifest") - total(
        before, "registry_http_requests_total", handler="manifest") >= 27 and total(
        s, "registry_http_requests_total", handler="blob") - total(
        before, "registry_http_requests_total", handler="blob") >= 8)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "registry_http_requests_total"
    assert delta(requests, handler="manifest", code="200", method="head") == 20
    assert delta(requests, handler="manifest", code="200", method="get") == 7
    assert delta(requests, handler="blob", code="200", method="get") == 5
    assert delta(requests, handler="blob", code="404", method="get") == 3
    assert value(after, "registry_http_requests_total",
                 handler="blob_upload_chunk", code="201", method="put") == 3  # blob + image's 2
    assert delta("registry_http_request_duration_seconds_count",
                 handler="manifest", method="head") == 20
    # Bytes: the 300 kB blob went in once and out five times (plus 404 envelopes).
    received = value(after, "registry_http_request_bytes_total", handler="blob_upload_chunk")
    assert len(blob) <= received < len(blob) + 10_000
    sent = delta("registry_http_response_bytes_total", handler="blob")
    assert 5 * len(blob) <= sent < 5 * len(blob) + 3 * 1000
    assert delta("registry_http_response_size_bytes_count", handler="blob") == 8
    # Bodiless requests and answers (the manifest HEADs) are sizes of 0: the first bucket.
    assert delta("registry_http_request_size_bytes_bucket", handler="manifest", le="1024.0") == 27
    assert delta("registry_http_request_size_bytes_sum", handler="manifest") == 0
    assert delta("registry_http_response_size_bytes_bucket", handler="manifest",
                 le="1024.0") >= 20
    # Nothing in flight once the answers are in (the live workers' sum).
    assert total(after, "registry_http_in_flight_requests") == 0
    # The storage driver was timed, under the original's action names.
    assert value(after, "registry_storage_action_seconds_count",
                 driver="filesystem", action="PutContent") > 0
    assert total(after, "registry_storage_action_seconds_count", driver="filesystem") > 0
    # The blob descriptor cache was asked, and answered some from memory.
    assert value(after, "registry_storage_cache_total", type="Request") > 0
    assert value(after, "registry_storage_cache_total", type="Hit") > 0
    assert value(after, "registry_storage_cache_requests_total") == value(
        after, "registry_storage_cache_total", type="Request")
    # /debug/vars publishes the same cache counts, as the original's expvar does.
    cache = httpx.get(registry.debug_url + "/debug/vars").json()["registry"]["cache"]
    counts = cache["storage"]["blobdescriptor"]
    assert counts["Requests"] >= value(after, "registry_storage_cache_total", type="Request")
    assert counts["Requests"] == counts["Hits"] + counts["Misses"] + counts["Errors"]


def test_debug_listener_without_prometheus(debug_registry_factory: DebugRegistryFactory) -> None:
    """``http.debug.addr`` alone: health and vars, no metrics route."""
    registry = debug_registry_factory()
    assert httpx.get(registry.debug_url + "/metrics").status_code == 404
    health = httpx.get(registry.debug_url + "/debug/health")
    assert (health.status_code, health.json()) == (200, {})
    variables = httpx.get(registry.debug_url + "/debug/vars").json()
    assert "cmdline" in variables and "registry" in variables
    assert "http.debug" not in registry.log_text()  # no "not implemented" warning


def test_custom_metrics_path(debug_registry_factory: DebugRegistryFactory) -> None:
    registry = debug_registry_factory(
        {"http": {"debug": {"prometheus": {"enabled": True, "path": "/prom"}}}})
    httpx.get(registry.url + "/v2/")
    samples = scrape(registry.debug_url + "/prom")
    assert value(samples, "registry_http_requests_total",
                 handler="base", code="200", method="get") >= 1


def test_errors_answered_and_counted(debug_registry_factory: DebugRegistryFactory) -> None:
    """With metrics on, the API's errors keep their envelope, status and request id, and
    each is counted under its code: a domain error, aiohttp's 404 and 405, a denied
    request (the error middleware counts them all)."""
    registry = debug_registry_factory(PROMETHEUS)
    missing = blob_path(random_repo("metrics"), "sha256:" + "0" * 64)
    answers = [
        (httpx.get(registry.url + missing), 404, "BLOB_UNKNOWN"),
        (httpx.get(registry.url + "/v2/a/nowhere/at/all"), 404, "NOT_FOUND"),
        (httpx.request("PATCH", registry.url + missing), 405, "UNSUPPORTED"),
        (httpx.get(registry.url + blob_path("a/b", "sha256:zz")), 400, "DIGEST_INVALID"),
    ]
    for response, status, code in answers:
        assert response.status_code == status
        assert response.json()["errors"][0]["code"] == code
        assert response.headers["X-Request-Id"]
        assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    samples = scrape(registry.debug_url + "/metrics")
    requests = "registry_http_requests_total"
    assert value(samples, requests, handler="blob", code="404", method="get") == 1
    assert value(samples, requests, handler="other", code="404", method="get") == 1
    assert value(samples, requests, handler="other", code="405", method="patch") == 1
    assert value(samples, requests, handler="blob", code="400", method="get") == 1
    assert total(samples, "registry_http_in_flight_requests") == 0


def test_prometheus_without_debug_addr_is_named(tmp_path: Path, registry_secret: str) -> None:
    """Metrics need the debug listener: the key that cannot act is named at start."""
    with RegistryProcess(tmp_path, secret=registry_secret, overrides={
            "http": {"debug": {"prometheus": {"enabled": True}}}}) as registry:
        assert httpx.get(registry.url + "/v2/").status_code == 200
        assert "http.debug.prometheus.enabled: no effect without http.debug.addr" in (
            registry.log_text())
