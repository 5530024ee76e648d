"""Optional OpenTelemetry tracing: a span per request and per storage operation.

On only when the ``otel`` extra is installed (``pip install 'dockyard[otel]'``) and
the environment configures it with an ``OTEL_*`` variable (``OTEL_SERVICE_NAME``,
``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_TRACES_EXPORTER``...), as distribution 3 does;
``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` turn it off. Otherwise
nothing is imported and nothing is wrapped. The SDK lives in :mod:`~._otel`, imported
only when tracing is on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockyard.tracing._otel import Tracing

__all__ = ["start_tracing", "tracing_wanted"]

log = logging.getLogger("dockyard.tracing")


def tracing_wanted(environ: Mapping[str, str] | None = None) -> bool:
    """True when an ``OTEL_*`` variable asks for tracing (and none turns it off)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").lower() == "none":
        return False
    return any(key.startswith("OTEL_") for key in env)


def start_tracing() -> Tracing | None:
    """The worker's tracer when tracing is wanted and the ``otel`` extra is installed."""
    if not tracing_wanted():
        return None
    try:
        from dockyard.tracing._otel import Tracing
    except ImportError as exc:
        log.warning("tracing: OTEL_* variables are set but OpenTelemetry is missing (%s);"
                    " pip install 'dockyard[otel]'", exc)
        return None
    try:
        return Tracing.from_environment()
    except ValueError as exc:  # an exporter this version does not offer: say so, run on
        log.error("tracing: off: %s", exc)
        return None
