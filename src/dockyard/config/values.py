"""Value syntaxes shared by several sections: ``host:port`` addresses, Go durations.

Durations are parsed by :mod:`dockyard.durations`, which the drivers share.
"""

from __future__ import annotations

import ipaddress

from dockyard.durations import parse_duration

__all__ = ["parse_duration", "split_host_port"]

def split_host_port(addr: str) -> tuple[str, int]:
    """``":5000"`` → ``("", 5000)``, ``"[::1]:5000"`` → ``("::1", 5000)``; ValueError if bad.

    An empty host means every interface.
    """
    if addr.startswith("["):
        host, bracket, rest = addr[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(f"invalid address {addr!r}: expected [ipv6]:port")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid address {addr!r}: {host!r} is not an IPv6 address") from None
        port = rest[1:]
    else:
        host, colon, port = addr.rpartition(":")
        if not colon:
            raise ValueError(f"invalid address {addr!r}: expected host:port, e.g. :5000")
        if ":" in host:
            raise ValueError(f"invalid address {addr!r}: write an IPv6 host in brackets")
        if any(c.isspace() or c in "/[]" for c in host):
            raise ValueError(f"invalid address {addr!r}: bad host {host!r}")
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"invalid address {addr!r}: port must be a number from 0 to 65535")
    return host, int(port)
