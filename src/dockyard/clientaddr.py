"""The address of the client a request is served for, for layers that never see the request.

:data:`CONNECTION` holds what a connection's requests share (scheme, peer address),
set once per connection by the server (:mod:`dockyard.connections`), so that a
request's handler reads it with one lookup instead of asking the request for each.

Storage middleware decides by it where to redirect a download (the ``cloudfront``
middleware's ``ipfilteredby``), but drivers know paths and bytes only; the HTTP layer
sets :data:`CLIENT_IP` around the call instead of threading a request through every
driver. :func:`remote_ip` picks the address the way distribution's ``RemoteIP`` does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from contextvars import ContextVar

__all__ = ["CLIENT_IP", "CONNECTION", "remote_ip"]

#: The client's IP address while a request is being served (None outside one).
CLIENT_IP: ContextVar[str | None] = ContextVar("dockyard_client_ip", default=None)
#: The connection's ``(scheme, peername)`` (aiohttp's ``request.scheme`` and
#: ``request.transport.get_extra_info("peername")``) in its requests' tasks; None when
#: the server is not dockyard's own (an in-process test server).
CONNECTION: ContextVar[tuple[str, object] | None] = ContextVar("dockyard_connection",
                                                               default=None)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def remote_ip(headers: Mapping[str, str], peer: str | None) -> str | None:
    """The first address of ``X-Forwarded-For`` if it is an IP, else ``X-Real-Ip`` if it
    is one, else the connection's peer address (as distribution: trusted as sent)."""
    forwarded = headers.get("X-Forwarded-For", "")
    if forwarded:
        first = forwarded.split(",", 1)[0].strip(" ")
        if _is_ip(first):
            return first
    real = headers.get("X-Real-Ip", "")
    if real and _is_ip(real):
        return real
    return peer
