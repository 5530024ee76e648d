"""Render a scrape: this process's registry, or every worker's files in multiprocess mode."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import multiprocess as _multiprocess

from dockyard.metrics._families import Metrics

__all__ = ["CONTENT_TYPE_LATEST", "render"]


def render(metrics: Metrics) -> bytes:
    """The Prometheus text exposition of every worker's metrics and the extra sources.

    Reads files in multiprocess mode: call it off the event loop.
    """
    if not metrics.multiprocess:
        return generate_latest(metrics.registry)
    registry = CollectorRegistry()
    _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(metrics._sources)
    return generate_latest(registry)
