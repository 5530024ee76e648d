"""Health checks (the ``health`` section): periodic probes, ``/debug/health``, and the
main listener's 503 while one fails. Built by the server only when a check is configured.
"""

from __future__ import annotations

from dockyard.health.checks import (
    Probe,
    file_checker,
    http_checker,
    storage_driver_checker,
    tcp_checker,
)
from dockyard.health.http import health_middleware, status_handler
from dockyard.health.registry import Check, HealthRegistry

__all__ = [
    "Check",
    "HealthRegistry",
    "Probe",
    "file_checker",
    "health_middleware",
    "http_checker",
    "status_handler",
    "storage_driver_checker",
    "tcp_checker",
]
