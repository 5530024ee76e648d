"""The metric families, under the names distribution 2.x and 3.x export.

distribution builds them with docker/go-metrics: namespace ``registry``, subsystems
``http``, ``storage`` and ``notifications``; the HTTP ones carry a ``handler`` label
naming the route (``base``, ``blob``, ``blob_upload``, ``blob_upload_chunk``,
``manifest``, ``tags``, ``catalog``). Dashboards written for the original read these
unchanged. dockyard adds byte counters (``registry_http_request_bytes_total``,
``registry_http_response_bytes_total``) beside go-metrics' size histograms.

With several workers, values live in prometheus-client's multiprocess files (the
``PROMETHEUS_MULTIPROC_DIR`` the server sets before the fork), so one scrape of worker
0 sums every worker; see :func:`dockyard.metrics.exposition.render`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from dockyard.metrics.multiproc import MULTIPROC_ENV

__all__ = ["Metrics", "MetricsSource"]


#: A callable collected at every scrape: yields prometheus-client metric families
#: (``CounterMetricFamily``...). For values kept outside prometheus-client.
MetricsSource = Callable[[], Iterable[Metric]]

# go-metrics' defaults (docker/go-metrics handler.go).
DURATION_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 25, 60)
SIZE_BUCKETS = tuple(float(1024 * 2**i) for i in range(22))  # 1 KiB .. 2 GiB


class _Sources(Collector):
    """The extra sources, collected at scrape time."""

    def __init__(self, sources: list[MetricsSource]) -> None:
        self.sources = sources

    def collect(self) -> Iterable[Metric]:
        for source in list(self.sources):
            yield from source()


class Metrics:
    """Every metric of one worker process; built only when ``http.debug.prometheus`` is on.

    ``multiprocess`` is true when prometheus-client was imported with
    ``PROMETHEUS_MULTIPROC_DIR`` set: values are then written to per-process files.
    """

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry(auto_describe=True)
        self.sources: list[MetricsSource] = []
        self._sources = _Sources(self.sources)
        if not self.multiprocess:
            self.registry.register(self._sources)
        reg = self.registry
        self.http_requests = Counter(
            "registry_http_requests", "Total number of HTTP requests made.",
            ("handler", "code", "method"), registry=reg,
        )
        self.http_duration = Histogram(
            "registry_http_request_duration_seconds", "The HTTP request latencies in seconds.",
            ("handler", "method"), buckets=DURATION_BUCKETS, registry=reg,
        )
        self.http_in_flight = Gauge(
            "registry_http_in_flight_requests", "The in-flight HTTP requests",
            ("handler",), registry=reg, multiprocess_mode="livesum",
        )
        self.http_request_size = Histogram(
            "registry_http_request_size_bytes", "The HTTP request sizes in bytes.",
            ("handler",), buckets=SIZE_BUCKETS, registry=reg,
        )
        self.http_response_size = Histogram(
            "registry_http_response_size_bytes", "The HTTP response sizes in bytes.",
            ("handler",), buckets=SIZE_BUCKETS, registry=reg,
        )
        self.http_received = Counter(
            "registry_http_request_bytes", "Request body bytes received.",
            ("handler",), registry=reg,
        )
        self.http_sent = Counter(
            "registry_http_response_bytes", "Response body bytes sent.",
            ("handler",), registry=reg,
        )
        self.storage_action = Histogram(
            "registry_storage_action_seconds",
            "The number of seconds that the storage action takes",
            ("driver", "action"), buckets=DURATION_BUCKETS, registry=reg,
        )
        # distribution 2.8: one counter with a type label (Request, Hit, Miss, Error) ...
        self.cache = Counter(
            "registry_storage_cache", "The number of cache request received",
            ("type",), registry=reg,
        )
        # ... distribution 3: one counter each.
        self.cache_requests = Counter(
            "registry_storage_cache_requests", "The number of cache request received",
            registry=reg,
        )
        self.cache_hits = Counter(
            "registry_storage_cache_hits", "The number of cache request received",
            registry=reg,
        )
        self.cache_errors = Counter(
            "registry_storage_cache_errors", "The number of cache request errors",
            registry=reg,
        )
        self.notification_events = Counter(
            "registry_notifications_events", "The number of total events",
            ("type", "endpoint"), registry=reg,
        )
        self.notification_pending = Gauge(
            "registry_notifications_pending", "The gauge of pending events in queue",
            ("endpoint",), registry=reg, multiprocess_mode="livesum",
        )
        self.notification_status = Counter(
            "registry_notifications_status", "The number of status code",
            ("code", "endpoint"), registry=reg,
        )

    def add_source(self, source: MetricsSource) -> None:
        """Collect ``source`` at every scrape (in the scraped worker only).

        For counters kept in another process or structure; values that every worker
        updates belong in a prometheus-client metric instead (see :meth:`counter`).
        """
        self.sources.append(source)

    def counter(self, name: str, documentation: str, labels: Iterable[str] = ()) -> Counter:
        """A new counter in this registry: summed over all workers at a scrape."""
        return Counter(name, documentation, tuple(labels), registry=self.registry)

    def gauge(self, name: str, documentation: str, labels: Iterable[str] = ()) -> Gauge:
        """A new gauge in this registry: with several workers, the sum of the live ones."""
        return Gauge(
            name, documentation, tuple(labels), registry=self.registry,
            multiprocess_mode="livesum",
        )

    # The notification counters of distribution (notifications/metrics.go), for the
    # notifications package: ``type`` is Events, Successes, Failures or Errors.

    def notification_event(self, kind: str, endpoint: str) -> None:
        """Count one ``registry_notifications_events_total{type=kind,endpoint}``."""
        self.notification_events.labels(kind, endpoint).inc()

    def notification_status_code(self, status: str, endpoint: str) -> None:
        """Count one delivery answered ``status`` (``"200 OK"``, as the original)."""
        self.notification_status.labels(status, endpoint).inc()

    def notification_queue(self, endpoint: str, delta: int) -> None:
        """Move ``registry_notifications_pending{endpoint}`` by ``delta``."""
        self.notification_pending.labels(endpoint).inc(delta)
