"""The health checks over HTTP: ``/debug/health`` and the main listener's 503."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from dockyard.api.errors import ErrorCode, RegistryError, error_response
from dockyard.health.registry import HealthRegistry

__all__ = ["health_middleware", "status_handler"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_DETAIL = "health check failed: please see /debug/health"


def status_handler(health: HealthRegistry) -> Handler:
    """``GET /debug/health``: a JSON object of the failing checks (name: error), 503
    while there is one, else ``{}`` and 200, as the original's ``StatusHandler``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        failing = health.failing()
        return web.Response(
            status=503 if failing else 200,
            body=json.dumps(failing).encode(),
            content_type="application/json",
            charset="utf-8",
        )

    return handler


def health_middleware(health: HealthRegistry) -> Middleware:
    """While a check fails, answer every request ``503 UNAVAILABLE`` (the original's
    ``health.Handler`` around the whole application)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if health.healthy:
            return await handler(request)
        err = RegistryError(ErrorCode.UNAVAILABLE, _DETAIL)
        return error_response(err, with_body=request.method != "HEAD")

    return middleware
