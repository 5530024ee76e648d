"""``registry_storage_action_seconds``: an observer timing every storage driver call."""

from __future__ import annotations

import time
from types import TracebackType

from dockyard.metrics._families import Metrics
from dockyard.metrics._store import Histogram
from dockyard.storage.drivers.observed import ACTIONS, Observer

__all__ = ["storage_timer"]


class _Timer:
    """Observes the seconds between enter and exit into one histogram child."""

    __slots__ = ("_child", "_start")

    def __init__(self, child: Histogram) -> None:
        self._child = child
        self._start = 0.0

    def __enter__(self) -> _Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._child.observe(time.perf_counter() - self._start)


def storage_timer(metrics: Metrics, driver: str) -> Observer:
    """An :data:`Observer` for :class:`~dockyard.storage.drivers.observed.ObservedDriver`."""
    children = {action: metrics.storage_action.labels(driver, action) for action in ACTIONS}

    def observe(action: str, path: str) -> _Timer:
        return _Timer(children[action])

    return observe
