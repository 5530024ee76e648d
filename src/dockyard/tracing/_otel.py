"""The OpenTelemetry side: provider and exporter from ``OTEL_*``, request middleware,
and the storage driver observer."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from aiohttp import web
from aiohttp.typedefs import Middleware
from opentelemetry import propagate
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

from dockyard import __version__
from dockyard.storage.drivers.observed import Observer

__all__ = ["Tracing"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Tracing:
    """One worker's tracer provider; :meth:`shutdown` flushes the spans at exit."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("dockyard", __version__)

    @classmethod
    def from_environment(cls, exporter: SpanExporter | None = None) -> Tracing:
        """A provider whose exporter ``OTEL_TRACES_EXPORTER`` names: ``otlp`` (default,
        OTLP over HTTP, configured by the ``OTEL_EXPORTER_OTLP_*`` variables) or ``console``."""
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME",
                                                                   "dockyard")})
        provider = TracerProvider(resource=resource)
        if exporter is None:
            exporter = _exporter(os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower())
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider)

    def shutdown(self) -> None:
        """Export what is pending and stop the exporter thread."""
        self.provider.shutdown()

    def middleware(self) -> Middleware:
        """A server span per request, continuing the caller's trace (``traceparent``)."""
        tracer = self.tracer

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            route = request.match_info.route.resource
            template = route.canonical if route is not None else request.path
            parent = propagate.extract(request.headers)
            with tracer.start_as_current_span(
                f"{request.method} {template}", context=parent, kind=SpanKind.SERVER,
                attributes={"http.request.method": request.method, "url.path": request.path,
                            "http.route": template},
            ) as span:
                response = await handler(request)
                span.set_attribute("http.response.status_code", response.status)
                if response.status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                return response

        return middleware

    def storage_observer(self, driver: str) -> Observer:
        """An observer for :class:`~dockyard.storage.drivers.observed.ObservedDriver`:
        one span per call, child of the request's span."""
        tracer = self.tracer

        @contextmanager
        def observe(action: str, path: str) -> Iterator[None]:
            with tracer.start_as_current_span(
                f"storage {action}", kind=SpanKind.CLIENT,
                attributes={"storage.driver": driver, "storage.action": action,
                            "storage.path": path},
            ):
                yield

        return observe


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    if name != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER: unsupported exporter {name!r}"
                         " (otlp, console or none)")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()
