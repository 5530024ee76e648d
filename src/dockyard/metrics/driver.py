"""``registry_storage_action_seconds``: the timings of every storage driver call."""

from __future__ import annotations

from dockyard.metrics._families import Metrics
from dockyard.storage.drivers.observed import ACTIONS, Timings

__all__ = ["storage_timer"]


def storage_timer(metrics: Metrics, driver: str) -> Timings:
    """The :data:`Timings` of :class:`~dockyard.storage.drivers.observed.TimedDriver`:
    each action's histogram, which the driver updates in place (no call)."""
    return {action: metrics.storage_action.labels(driver, action) for action in ACTIONS}
