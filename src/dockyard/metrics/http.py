"""Request metrics for the main listener: the API's error middleware, counting."""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware
from aiohttp.web_urldispatcher import AbstractResource, AbstractRoute

from dockyard.metrics._families import Metrics
from dockyard.metrics._store import Counter

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
_CONTENT_LENGTH, _CHUNKED = hdrs.CONTENT_LENGTH, hdrs.TRANSFER_ENCODING


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


class _Route:
    """The children one route and method update, looked up once: the middleware then
    updates them in place (a call per value, or a method doing it, would cost more
    than the updates)."""

    __slots__ = (
        "_metrics",
        "duration",
        "in_flight",
        "method",
        "name",
        "received",
        "request_size",
        "requests",
        "response_size",
        "sent",
    )

    def __init__(self, metrics: Metrics, name: str, method: str) -> None:
        self._metrics = metrics
        self.name = name
        self.method = method
        self.in_flight = metrics.http_in_flight.labels(name)
        self.duration = metrics.http_duration.labels(name, method)
        self.request_size = metrics.http_request_size.labels(name)
        self.response_size = metrics.http_response_size.labels(name)
        self.received = metrics.http_received.labels(name)
        self.sent = metrics.http_sent.labels(name)
        self.requests: dict[int, Counter] = {}
        """``registry_http_requests_total`` by status, each made by :meth:`count`."""

    def count(self, status: int) -> Counter:
        """The requests counter of ``status`` (made at the status's first answer)."""
        child: Counter = self._metrics.http_requests.labels(self.name, str(status), self.method)
        self.requests[status] = child
        return child


def _find_route(
    routes: dict[object, _Route], metrics: Metrics, matched: AbstractRoute, method: str
) -> _Route:
    """The children of a request's route and method, made at their first request.

    Kept by the resource and method; a route of one method (most: aiohttp makes a
    route per method) is also kept by itself, so that next time one dictionary
    lookup by identity finds it. System routes (404, 405: one per request) and routes
    of any method are not.
    """
    resource = matched.resource
    key = (id(resource), method)
    route = routes.get(key)
    if route is None:
        # promhttp labels methods in lowercase.
        route = routes[key] = _Route(metrics, route_name(resource), method.lower())
    if resource is not None and matched.method == method:
        routes[matched] = route
    return route


def metrics_middleware(
    metrics: Metrics,
    assign: Callable[[web.Request], object],
    failure: Callable[[web.Request, Exception], web.StreamResponse],
) -> Middleware:
    """The API's error middleware that also counts, times and sizes every request under
    its route's ``handler`` label.

    One middleware rather than two: a middleware costs a coroutine and a call per
    request, a sizeable part of what the metrics cost; for the same reason the
    children are updated here, inline (``Histogram.observe``'s update), not by calls.
    ``assign`` is called first (the request id), ``failure`` answers what the handler
    raised (the error envelope, or it re-raises); the answer is counted either way.
    """
    routes: dict[object, _Route] = {}  # routes and resources live as long as the app
    clock = time.perf_counter

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        assign(request)
        method = request.method
        matched = request.match_info.route
        route = routes.get(matched)
        if route is None:
            route = _find_route(routes, metrics, matched, method)
        in_flight = route.in_flight
        in_flight.value += 1
        start = clock()
        status = 500
        sent = 0
        try:
            try:
                response = await handler(request)
            except Exception as exc:  # failure re-raises what has no answer
                response = failure(request, exc)
            status = response.status
            # The body's size: none for HEAD, 204, 304; a bytes body's length (most
            # answers: manifests, errors), read without ``content_length``, whose
            # isinstance check of an ABC is a Python call; else its Content-Length (blob
            # bodies may go out by sendfile, around aiohttp's writer), else what the
            # writer wrote.
            if method != "HEAD" and status != 204 and status != 304:
                body = response.body if type(response) is web.Response else None
                if type(body) is bytes:
                    sent = len(body)
                else:
                    length = response.content_length  # a property that works it out
                    if length is not None:
                        sent = length
                    elif response.prepared:
                        sent = response.body_length
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except (asyncio.CancelledError, ConnectionError):
            status = _CLIENT_GONE
            raise
        finally:
            seconds = clock() - start
            in_flight.value -= 1
            counter = route.requests.get(status)
            if counter is None:
                counter = route.count(status)
            counter.value += 1
            h = route.duration
            h.counts[bisect_left(h.bounds, seconds)] += 1
            h.sum += seconds
            # A request without Content-Length (or with 0) and not chunked has no body
            # (aiohttp's empty payload): two header lookups cost less than the
            # ``content`` property's first call.
            headers = request.headers
            if headers.get(_CONTENT_LENGTH, "0") == "0" and _CHUNKED not in headers:
                received = 0
            else:
                received = request.content.total_bytes
            # A size of 0 (most requests, every HEAD's answer) is in the first bucket:
            # every bound is positive (a search of the 22 bounds costs more than the
            # rest of the update).
            h = route.request_size
            if received:
                h.counts[bisect_left(h.bounds, received)] += 1
                h.sum += received
                route.received.value += received
            else:
                h.counts[0] += 1
            h = route.response_size
            if sent:
                h.counts[bisect_left(h.bounds, sent)] += 1
                h.sum += sent
                route.sent.value += sent
            else:
                h.counts[0] += 1

    return middleware
