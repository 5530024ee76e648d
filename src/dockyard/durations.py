"""Go duration strings (``1h30m``, ``100ms``), as distribution's config and drivers take them."""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

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
