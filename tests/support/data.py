"""Test data."""

from __future__ import annotations

import hashlib

__all__ = ["blob"]


def blob(size: int, seed: int = 0) -> bytes:
    """``size`` bytes that differ at every offset (so a misplaced byte shows), the same
    for the same ``seed``."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha512(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])
