"""Value syntaxes shared by several sections: Go durations and ``host:port`` addresses."""

from __future__ import annotations

import ipaddress
import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string (``"1h30m"``, ``"10s"``, ``"0"``); ValueError if bad."""
    s = text.strip()
    if s.startswith("-"):
        raise ValueError(f"negative duration {text!r}")
    s = s.removeprefix("+")
    if s == "0":
        return 0.0
    if not s:
        raise ValueError("empty duration")
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r} (use a number and a unit: 90s, 1h30m)")
        total += float(m[1]) * _DURATION_UNITS[m[2]]
        pos = m.end()
    return total


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
