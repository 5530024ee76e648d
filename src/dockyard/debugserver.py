"""The operator's side of a worker: metrics, health checks and the debug listener.

``http.debug.addr`` starts a second listener (on worker 0 when there are several)
serving what distribution's debug server does: ``/debug/health``, ``/debug/vars``
(expvar's JSON) and, with ``http.debug.prometheus.enabled``, the Prometheus text at
``http.debug.prometheus.path``. The ``health`` section's checks run in every worker,
whose main listener answers 503 while one fails. Nothing here is built when its
section is off, so it then costs nothing.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from dockyard.config import Config, split_host_port
from dockyard.health import (
    Check,
    HealthRegistry,
    file_checker,
    health_middleware,
    http_checker,
    status_handler,
    storage_driver_checker,
    tcp_checker,
)
from dockyard.storage.drivers.base import StorageDriver
from dockyard.storage.drivers.observed import Observer, Timings

if TYPE_CHECKING:
    from dockyard.metrics import Metrics
    from dockyard.tracing._otel import Tracing

__all__ = ["Instruments", "build_health", "build_metrics", "debug_app", "instrument_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class Instruments:
    """What one worker measures: None for each part that is off."""

    metrics: Metrics | None = None
    health: HealthRegistry | None = None
    tracing: Tracing | None = None
    variables: dict[str, Callable[[], object]] = field(default_factory=dict)
    """Entries of ``registry`` in ``/debug/vars``, computed at each request: e.g.
    ``"notifications": lambda: {"endpoints": [...]}`` as the original publishes."""

    _debug_runner: web.AppRunner | None = None

    def add_vars(self, name: str, value: Callable[[], object]) -> None:
        """Publish ``value()`` (JSON-ready) as ``registry.<name>`` in ``/debug/vars``."""
        self.variables[name] = value

    async def start(self, config: Config, debug_sock: socket.socket | None) -> None:
        """Start the checks, the metrics' snapshots and (on ``debug_sock``) the debug
        listener, once the main listener serves."""
        if self.health is not None:
            self.health.start()
        if self.metrics is not None:
            self.metrics.start()
        if debug_sock is not None:
            self._debug_runner = web.AppRunner(debug_app(config, self), access_log=None)
            await self._debug_runner.setup()
            await web.SockSite(self._debug_runner, debug_sock).start()

    async def stop(self) -> None:
        """Stop everything :meth:`start` started; flush the last spans."""
        if self.health is not None:
            await self.health.stop()
        if self.metrics is not None:
            await self.metrics.stop()
        if self._debug_runner is not None:
            await self._debug_runner.cleanup()
            self._debug_runner = None
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)

    def storage_observer(self, driver: str) -> Observer | None:
        """What traces the storage driver's calls (a span each), if tracing is on."""
        return self.tracing.storage_observer(driver) if self.tracing is not None else None

    def storage_timings(self, driver: str) -> Timings | None:
        """What times the storage driver's calls, if metrics are on."""
        if self.metrics is None:
            return None
        from dockyard.metrics.driver import storage_timer

        return storage_timer(self.metrics, driver)


def build_metrics(config: Config, snapshot_dir: str | None = None) -> Metrics | None:
    """The worker's metrics when ``http.debug.prometheus.enabled`` (and a debug addr) is
    set; ``snapshot_dir`` is where several workers' values meet."""
    debug = config.http.debug
    if not (debug.addr and debug.prometheus.enabled):
        return None
    from dockyard.metrics import Metrics

    return Metrics(snapshot_dir)


def build_health(config: Config, driver: StorageDriver) -> HealthRegistry | None:
    """The ``health`` section's checks, named as the original names them; None if none."""
    health = config.health
    checks: list[Check] = []
    sd = health.storage_driver
    if sd.enabled:
        checks.append(Check(f"storagedriver_{config.storage.driver}",
                            storage_driver_checker(driver), sd.interval, sd.threshold))
    for f in health.file_checkers:
        # The original's file checks have no threshold: the file is an operator's switch.
        checks.append(Check(f.file, file_checker(f.file), f.interval))
    for h in health.http_checkers:
        # No timeout configured: bounded by the interval, so a hung probe cannot pile up.
        probe = http_checker(h.uri, h.status_code, h.timeout or h.interval, h.headers)
        checks.append(Check(h.uri, probe, h.interval, h.threshold))
    for t in health.tcp_checkers:
        host, port = split_host_port(t.addr)
        probe = tcp_checker(host, port, t.timeout or t.interval)
        checks.append(Check(t.addr, probe, t.interval, t.threshold))
    return HealthRegistry(checks) if checks else None


def instrument_app(app: web.Application, instruments: Instruments) -> None:
    """Put tracing, then the health gate in front of the routes (the request metrics are
    counted by the API's error middleware: :func:`dockyard.api.app.create_app`)."""
    if instruments.health is not None:
        app.middlewares.insert(0, health_middleware(instruments.health))
    if instruments.tracing is not None:
        app.middlewares.insert(0, instruments.tracing.middleware())


def debug_app(config: Config, instruments: Instruments) -> web.Application:
    """The debug listener's application."""
    app = web.Application()
    health = instruments.health or HealthRegistry([])
    app.router.add_get("/debug/health", status_handler(health))
    app.router.add_get("/debug/vars", _vars_handler(instruments))
    metrics = instruments.metrics
    if metrics is not None:
        app.router.add_get(config.http.debug.prometheus.path, _metrics_handler(metrics))
    return app


def _metrics_handler(metrics: Metrics) -> Handler:
    from dockyard.metrics.exposition import CONTENT_TYPE_LATEST, render

    async def handler(request: web.Request) -> web.StreamResponse:
        metrics.update()  # on the loop; the rendering reads files with several workers
        body = await asyncio.to_thread(render, metrics)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return handler


def _vars_handler(instruments: Instruments) -> Handler:
    """``/debug/vars``: expvar's shape (``cmdline``, ``memstats``, ``registry``)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        registry: dict[str, object] = {}
        metrics = instruments.metrics
        if metrics is not None:
            registry["cache"] = {"storage": {"blobdescriptor": await asyncio.to_thread(
                _cache_counts, metrics)}}
        if instruments.health is not None:
            registry["health"] = {"failing": instruments.health.failing()}
        for name, value in instruments.variables.items():
            registry[name] = value()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        body = {
            "cmdline": sys.argv,
            "memstats": {"MaxRSS": usage.ru_maxrss * 1024},
            "registry": registry,
        }
        return web.json_response(body)

    return handler


def _cache_counts(metrics: Metrics) -> dict[str, float]:
    """The blob descriptor cache's Requests, Hits, Misses (and Errors), all workers."""
    counts = {"Requests": 0.0, "Hits": 0.0, "Misses": 0.0, "Errors": 0.0}
    names = {"Request": "Requests", "Hit": "Hits", "Miss": "Misses", "Error": "Errors"}
    for family in metrics.collect():
        if family.name == "registry_storage_cache":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[names[sample.labels["type"]]] += sample.value
    return counts
