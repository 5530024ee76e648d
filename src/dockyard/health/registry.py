"""Periodic checks with thresholds, and the set of those failing now.

As distribution's ``health`` package: each check runs every ``interval`` seconds; with
``threshold`` 0 one failure marks it failing, else ``threshold`` failures in a row do;
one success clears it. Unlike the original, the first run is at start, not one
interval later, so a backend that is down at start is reported at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from dockyard.health.checks import Probe

__all__ = ["Check", "HealthRegistry"]

log = logging.getLogger("dockyard.health")


@dataclass(frozen=True, slots=True)
class Check:
    """One configured check: its name in ``/debug/health``, probe, period and threshold."""

    name: str
    probe: Probe
    interval: float = 10.0
    threshold: int = 0


class HealthRegistry:
    """Runs the checks in the background and knows which fail (name -> error text)."""

    def __init__(self, checks: list[Check]) -> None:
        self.checks = checks
        self._failing: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def healthy(self) -> bool:
        """True while no check fails."""
        return not self._failing

    def failing(self) -> dict[str, str]:
        """The failing checks and their errors (the body of ``/debug/health``)."""
        return dict(self._failing)

    def start(self) -> None:
        """Start one task per check on the running loop."""
        loop = asyncio.get_running_loop()
        for check in self.checks:
            self._tasks.append(loop.create_task(self._run(check), name=f"health {check.name}"))

    async def stop(self) -> None:
        """Cancel the checks."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _run(self, check: Check) -> None:
        failures = 0
        while True:
            try:
                error = await check.probe()
            except Exception as exc:  # a probe's bug must not stop its loop
                error = f"check failed: {exc}"
            if error is None:
                failures = 0
                if self._failing.pop(check.name, None) is not None:
                    log.info("health check %s: passing again", check.name)
            else:
                failures += 1
                if failures >= max(check.threshold, 1) and check.name not in self._failing:
                    log.warning("health check %s failing: %s", check.name, error)
                if failures >= max(check.threshold, 1):
                    self._failing[check.name] = error
            await asyncio.sleep(check.interval)
