"""Request metrics for the main listener: an aiohttp middleware the server puts first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp.web_urldispatcher import AbstractResource

from dockyard.metrics._families import Metrics

__all__ = ["metrics_middleware", "route_name"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: distribution's route names (registry/api/v2/routes.go), by the end of dockyard's
#: route patterns; ``referrers`` is the OCI 1.1 route the original lacks.
_ROUTE_SUFFIXES = (
    ("/tags/list", "tags"),
    ("/manifests/{reference}", "manifest"),
    ("/blobs/uploads/", "blob_upload"),
    ("/blobs/uploads/{uuid}", "blob_upload_chunk"),
    ("/blobs/{digest}", "blob"),
    ("/referrers/{digest}", "referrers"),
    ("/_catalog", "catalog"),
    ("/v2/", "base"),
    ("/v2", "base"),
)

# A client that went away before the answer (nginx's convention).
_CLIENT_GONE = 499


def route_name(resource: AbstractResource | None) -> str:
    """The ``handler`` label of a route: distribution's name, ``ui``, ``dockyard`` or ``other``."""
    if resource is None:
        return "other"
    pattern = resource.canonical
    for suffix, name in _ROUTE_SUFFIXES:
        if pattern.endswith(suffix):
            return name
    if "/dockyard/" in pattern:
        return "dockyard"
    if "/ui" in pattern:
        return "ui"
    return "other"


def metrics_middleware(metrics: Metrics) -> Middleware:
    """Count, time and size every request under its route's ``handler`` label."""
    names: dict[int, str] = {}  # id(resource) -> label; resources live as long as the app

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        key = id(resource)
        name = names.get(key)
        if name is None:
            name = names[key] = route_name(resource)
        in_flight = metrics.http_in_flight.labels(name)
        in_flight.inc()
        start = time.perf_counter()
        status = 500
        sent = 0
        try:
            response = await handler(request)
            status = response.status
            sent = _body_size(request, response)
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except (asyncio.CancelledError, ConnectionError):
            status = _CLIENT_GONE
            raise
        finally:
            elapsed = time.perf_counter() - start
            in_flight.dec()
            received = request.content.total_bytes
            method = request.method.lower()  # as promhttp labels it
            metrics.http_requests.labels(name, str(status), method).inc()
            metrics.http_duration.labels(name, method).observe(elapsed)
            metrics.http_request_size.labels(name).observe(received)
            metrics.http_response_size.labels(name).observe(sent)
            if received:
                metrics.http_received.labels(name).inc(received)
            if sent:
                metrics.http_sent.labels(name).inc(sent)

    return middleware


def _body_size(request: web.Request, response: web.StreamResponse) -> int:
    """Body bytes of a response the handler completed.

    Its ``Content-Length`` when it has one (blob bodies may go out by ``sendfile``,
    around aiohttp's writer), else what the writer wrote; none for HEAD, 204, 304.
    """
    if request.method == "HEAD" or response.status in (204, 304):
        return 0
    if response.content_length is not None:
        return response.content_length
    return response.body_length if response.prepared else 0
