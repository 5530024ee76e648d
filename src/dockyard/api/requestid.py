"""Request ids: every request gets one, echoed as ``X-Request-Id``, seen in logs and events.

A client (or a proxy in front) may send its own ``X-Request-Id``; it is kept when it
is short printable ASCII, else a new id is made: uuid-shaped (8-4-4-4-12 hex digits)
like distribution's, from a random per-application prefix and a counter, which costs
far less per request than a uuid4. The id is in the request (:data:`REQUEST_ID`)
and, for log lines written while the request is handled, in the context variable
:data:`current_request_id` (which ``dockyard.logs`` reads).
"""

from __future__ import annotations

import itertools
import re
import secrets
from contextvars import ContextVar

from aiohttp import web

__all__ = ["REQUEST_ID", "RequestIds", "current_request_id"]

REQUEST_ID = web.RequestKey("dockyard.request_id", str)
current_request_id: ContextVar[str] = ContextVar("dockyard_request_id", default="")

_ACCEPTED = re.compile(r"[!-~]{1,128}")  # printable ASCII, no spaces: safe in a log line


class RequestIds:
    """Gives requests their ids (one per application: its own random prefix)."""

    def __init__(self) -> None:
        prefix = secrets.token_hex(8)
        self._head = f"{prefix[:8]}-{prefix[8:12]}-{prefix[12:16]}"
        self._counter = itertools.count(secrets.randbits(32))

    def assign(self, request: web.Request) -> str:
        """The client's ``X-Request-Id`` if acceptable, else a new one; kept in ``request``."""
        sent = request.headers.get("X-Request-Id")
        if sent is not None and _ACCEPTED.fullmatch(sent):
            rid = sent
        else:
            n = next(self._counter)
            rid = f"{self._head}-{(n >> 48) & 0xFFFF:04x}-{n & 0xFFFFFFFFFFFF:012x}"
        request[REQUEST_ID] = rid
        # Not reset afterwards: aiohttp writes the access log line after the handler
        # returns, in the same task; the next request on the connection sets its own.
        current_request_id.set(rid)
        return rid
