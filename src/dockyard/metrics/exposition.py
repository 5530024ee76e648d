"""Render a scrape: the Prometheus text of every worker's metrics and the extra sources."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from dockyard.metrics._families import Metrics

__all__ = ["CONTENT_TYPE_LATEST", "render"]


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics.collect()


def render(metrics: Metrics) -> bytes:
    """The text exposition of one scrape. Reads files with several workers: call it off
    the event loop."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(metrics))
    return generate_latest(registry)
