"""The metric families, under the names distribution 2.x and 3.x export.

distribution builds them with docker/go-metrics: namespace ``registry``, subsystems
``http``, ``storage`` and ``notifications``; the HTTP ones carry a ``handler`` label
naming the route (``base``, ``blob``, ``blob_upload``, ``blob_upload_chunk``,
``manifest``, ``tags``, ``catalog``) and a lowercase ``method``. Dashboards written for
the original read these unchanged. dockyard adds byte counters
(``registry_http_request_bytes_total``, ``registry_http_response_bytes_total``) beside
go-metrics' size histograms.

Values live in :mod:`~._store` (cheap updates on the event loop); with several workers
each writes a snapshot a second to ``snapshot_dir`` and one scrape of worker 0 sums
them all (see :meth:`Metrics.collect`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.metrics_core import Metric

from dockyard.metrics._store import Family, Kind, Store, merged, read_snapshots, write_snapshot

__all__ = ["Metrics", "MetricsSource"]

log = logging.getLogger("dockyard.metrics")

#: A callable collected at every scrape: yields prometheus-client metric families
#: (``CounterMetricFamily``...). For values kept outside :class:`Metrics`.
MetricsSource = Callable[[], Iterable[Metric]]

# go-metrics' defaults (docker/go-metrics handler.go).
DURATION_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 25, 60)
# 1 KiB .. 2 GiB, as ints: sizes are ints, and a search compares an int with an int
# faster than with a float (exposed as floats all the same: le="1024.0").
SIZE_BUCKETS = tuple(1024 * 2**i for i in range(22))
#: Seconds between two snapshots of a worker's values (how stale a scrape may be).
SNAPSHOT_INTERVAL = 1.0


class Metrics:
    """Every metric of one worker process; built only when ``http.debug.prometheus`` is on.

    ``snapshot_dir``: with several workers, the directory where each worker's values
    meet (made by the supervisor before the fork); None for a single process.
    """

    def __init__(self, snapshot_dir: str | None = None) -> None:
        self.snapshot_dir = snapshot_dir
        self.store = Store()
        self.sources: list[MetricsSource] = []
        self._updaters: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.http_requests = self._family(
            "registry_http_requests", "Total number of HTTP requests made.", "counter",
            ("handler", "code", "method"))
        self.http_duration = self._family(
            "registry_http_request_duration_seconds", "The HTTP request latencies in seconds.",
            "histogram", ("handler", "method"), DURATION_BUCKETS)
        self.http_in_flight = self._family(
            "registry_http_in_flight_requests", "The in-flight HTTP requests", "gauge",
            ("handler",))
        self.http_request_size = self._family(
            "registry_http_request_size_bytes", "The HTTP request sizes in bytes.",
            "histogram", ("handler",), SIZE_BUCKETS)
        self.http_response_size = self._family(
            "registry_http_response_size_bytes", "The HTTP response sizes in bytes.",
            "histogram", ("handler",), SIZE_BUCKETS)
        self.http_received = self._family(
            "registry_http_request_bytes", "Request body bytes received.", "counter",
            ("handler",))
        self.http_sent = self._family(
            "registry_http_response_bytes", "Response body bytes sent.", "counter",
            ("handler",))
        self.storage_action = self._family(
            "registry_storage_action_seconds",
            "The number of seconds that the storage action takes", "histogram",
            ("driver", "action"), DURATION_BUCKETS)
        # distribution 2.8: one counter with a type label (Request, Hit, Miss, Error) ...
        self.cache = self._family(
            "registry_storage_cache", "The number of cache request received", "counter",
            ("type",))
        # ... distribution 3: one counter each.
        self.cache_requests = self._family(
            "registry_storage_cache_requests", "The number of cache request received", "counter")
        self.cache_hits = self._family(
            "registry_storage_cache_hits", "The number of cache request received", "counter")
        self.cache_errors = self._family(
            "registry_storage_cache_errors", "The number of cache request errors", "counter")
        # The same counts: each 3.x counter is its 2.8 child (one update per lookup).
        self.cache_requests.share(self.cache.labels("Request"))
        self.cache_hits.share(self.cache.labels("Hit"))
        self.cache_errors.share(self.cache.labels("Error"))
        # distribution's notifications/metrics.go; ``type``: Events, Successes, Failures,
        # Errors; ``code``: "200 OK".
        self.notification_events = self._family(
            "registry_notifications_events", "The number of total events", "counter",
            ("type", "endpoint"))
        self.notification_pending = self._family(
            "registry_notifications_pending", "The gauge of pending events in queue", "gauge",
            ("endpoint",))
        self.notification_status = self._family(
            "registry_notifications_status", "The number of status code", "counter",
            ("code", "endpoint"))

    def _family(self, name: str, documentation: str, kind: Kind,
                labels: tuple[str, ...] = (), buckets: tuple[float, ...] = ()) -> Family:
        return self.store.add(Family(name, documentation, kind, labels, buckets))

    def counter(self, name: str, documentation: str, labels: Iterable[str] = ()) -> Family:
        """A new counter (``name`` without ``_total``), summed over all workers at a scrape.

        ``family.labels(*values).inc()`` counts; cheap enough for every request.
        """
        return self._family(name, documentation, "counter", tuple(labels))

    def gauge(self, name: str, documentation: str, labels: Iterable[str] = ()) -> Family:
        """A new gauge; with several workers, a scrape gives the sum of the live ones."""
        return self._family(name, documentation, "gauge", tuple(labels))

    def add_source(self, source: MetricsSource) -> None:
        """Collect ``source`` at every scrape, in the scraped worker (worker 0) only.

        For values kept elsewhere (a queue's length); counts that every worker makes
        belong in :meth:`counter` instead, so that a scrape sums them.
        """
        self.sources.append(source)

    def add_updater(self, update: Callable[[], None]) -> None:
        """Call ``update`` on the event loop before every scrape and every snapshot: for
        counts kept elsewhere and copied into families (the notification endpoints'),
        so that they are copied when read rather than by a task waking every second."""
        self._updaters.append(update)

    def update(self) -> None:
        """Run the updaters (on the event loop: they read what the loop changes)."""
        for update in self._updaters:
            update()

    def collect(self) -> Iterator[Metric]:
        """Every family, summed over the workers, then the extra sources.

        Reads the other workers' snapshots: call it off the event loop.
        """
        snapshots = [self.store.snapshot()]
        if self.snapshot_dir is not None:
            snapshots += read_snapshots(self.snapshot_dir, os.getpid())
        yield from merged(snapshots, [s["pid"] for s in snapshots if _alive(s["pid"])])
        for source in list(self.sources):
            yield from source()

    # -- several workers: a snapshot a second --------------------------------------------

    def start(self) -> None:
        """Start writing snapshots (with ``snapshot_dir``) on the running loop."""
        if self.snapshot_dir is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._snapshots())

    async def stop(self) -> None:
        """Stop, after a last snapshot: the counts of a stopping worker stay in the sums."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self._write()

    async def _snapshots(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_INTERVAL)
            await self._write()

    async def _write(self) -> None:
        assert self.snapshot_dir is not None
        self.update()
        try:
            await asyncio.to_thread(write_snapshot, self.snapshot_dir, self.store.snapshot())
        except OSError as exc:
            log.warning("metrics: cannot write this worker's snapshot: %s", exc)

    # The notification counters of distribution (notifications/metrics.go), for the
    # notifications package.

    def notification_event(self, kind: str, endpoint: str) -> None:
        """Count one ``registry_notifications_events_total{type=kind,endpoint}``."""
        self.notification_events.labels(kind, endpoint).inc()

    def notification_status_code(self, status: str, endpoint: str) -> None:
        """Count one delivery answered ``status`` (``"200 OK"``, as the original)."""
        self.notification_status.labels(status, endpoint).inc()

    def notification_queue(self, endpoint: str, delta: int) -> None:
        """Move ``registry_notifications_pending{endpoint}`` by ``delta``."""
        self.notification_pending.labels(endpoint).inc(delta)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
