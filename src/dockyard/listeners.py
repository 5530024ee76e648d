"""The listening sockets, bound by the parent before any worker starts: the main one
(``http.addr``, TCP or a Unix socket) and the debug server's (``http.debug.addr``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket

from dockyard.config import Config, split_host_port

__all__ = ["bind_debug", "bind_listener"]

log = logging.getLogger("dockyard")


def bind_listener(config: Config) -> tuple[socket.socket, str]:
    """The main listener (``http.addr``/``http.net``), inheritable by forked workers,
    and where it listens for the log (a URL, or ``unix:<path>``)."""
    http = config.http
    if http.net == "unix":
        with contextlib.suppress(FileNotFoundError):
            os.unlink(http.addr)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        _bind_to(sock, http.addr, f"unix:{http.addr}")
        where = f"unix:{http.addr}"
    else:
        host, port = split_host_port(http.addr)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        host = host or ("::" if family == socket.AF_INET6 else "0.0.0.0")
        address = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        _bind_to(sock, (host, port), address)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
        where = f"http://{shown}:{bound_port}{http.prefix.rstrip('/')}"
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock, where


def _bind_to(sock: socket.socket, address: str | tuple[str, int], shown: str) -> None:
    """``sock.bind``, failing with an OSError that names the address (no errno noise)."""
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(f"address {shown} already in use") from None
        raise OSError(f"cannot listen on {shown}: {exc.strerror or exc}") from None


def bind_debug(config: Config) -> socket.socket | None:
    """The debug listener's socket (``http.debug.addr``), bound before any worker starts."""
    debug = config.http.debug
    if not debug.addr:
        return None
    host, port = split_host_port(debug.addr)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    host = host or ("::" if family == socket.AF_INET6 else "0.0.0.0")
    _bind_to(sock, (host, port), f"http.debug.addr {debug.addr}")
    sock.listen(128)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
    served = ["/debug/health", "/debug/vars"]
    if debug.prometheus.enabled:
        served.append(debug.prometheus.path)
    log.info("debug server listening on http://%s:%d (%s)", shown, bound_port, ", ".join(served))
    return sock
