"""Request ids: every request gets one, echoed as ``X-Request-Id``, seen in logs and events.

A client (or a proxy in front) may send its own ``X-Request-Id``; it is kept when it
is short printable ASCII, else a new uuid4 is made. The id is in the request
(:data:`REQUEST_ID`) and, for log lines written while the request is handled, in
the context variable :data:`current_request_id` (which ``dockyard.logs`` reads).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

from aiohttp import web

__all__ = ["REQUEST_ID", "current_request_id", "request_id_middleware"]

REQUEST_ID = web.RequestKey("dockyard.request_id", str)
current_request_id: ContextVar[str] = ContextVar("dockyard_request_id", default="")

_ACCEPTED = re.compile(r"[!-~]{1,128}")  # printable ASCII, no spaces: safe in a log line

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request its id (the outermost middleware: every response carries it)."""
    sent = request.headers.get("X-Request-Id")
    rid = sent if sent is not None and _ACCEPTED.fullmatch(sent) else str(uuid.uuid4())
    request[REQUEST_ID] = rid
    # Not reset afterwards: aiohttp writes the access log line after the handler
    # returns, in the same task; the next request on the connection sets its own.
    current_request_id.set(rid)
    return await handler(request)
