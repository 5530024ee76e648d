"""``registry_storage_action_seconds``: an observer timing every storage driver call."""

from __future__ import annotations

import time
from bisect import bisect_left
from types import TracebackType

from dockyard.metrics._families import Metrics
from dockyard.metrics._store import Histogram
from dockyard.storage.drivers.observed import ACTIONS, Observer

__all__ = ["storage_timer"]


def storage_timer(metrics: Metrics, driver: str) -> Observer:
    """An :data:`Observer` for :class:`~dockyard.storage.drivers.observed.ObservedDriver`."""
    children = {action: metrics.storage_action.labels(driver, action) for action in ACTIONS}

    class Timer:
        """Observes the seconds from its making to its exit into the action's histogram.

        The class is the observer itself, the clock read when it is made and the
        histogram updated in place: three calls a storage operation rather than five.
        """

        __slots__ = ("_child", "_start")

        def __init__(self, action: str, path: str) -> None:
            self._child: Histogram = children[action]
            self._start = time.perf_counter()

        def __enter__(self) -> Timer:
            return self

        def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                     tb: TracebackType | None) -> None:
            seconds = time.perf_counter() - self._start
            h = self._child
            h.counts[bisect_left(h.bounds, seconds)] += 1  # Histogram.observe, inlined
            h.sum += seconds

    return Timer
