"""Blob descriptor cache lookups: the counters ``SafeCache`` counts them in."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.metrics._families import Metrics
from dockyard.metrics._store import Counter

__all__ = ["cache_counts"]


@dataclass(frozen=True, slots=True)
class _Counts:
    request: Counter
    hit: Counter
    miss: Counter
    error: Counter


def cache_counts(metrics: Metrics) -> _Counts:
    """The counters of :class:`~dockyard.cache.base.SafeCache`'s ``counts``.

    Both generations of the original's names: 2.8's ``registry_storage_cache_total``
    with ``type`` Request, Hit, Miss or Error, and 3.x's
    ``registry_storage_cache_{requests,hits,errors}_total``, which share the 2.8
    counters (:class:`~._families.Metrics`): a lookup is counted once, seen under both.
    """
    return _Counts(*(metrics.cache.labels(kind) for kind in ("Request", "Hit", "Miss", "Error")))
