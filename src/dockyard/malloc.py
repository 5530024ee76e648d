"""The C allocator's settings for a server process (glibc only).

glibc gives threads their own malloc arenas, up to 8 per CPU: a worker's 32 storage
threads each grow one, and what an arena frees stays in it, so under concurrent
requests a worker's resident memory grows by megabytes that sit idle in a dozen
arenas. These threads mostly wait on system calls with the GIL released and
allocate little, so two arenas cost them no measured speed (benchmarks/README.md,
"Peak RSS").
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["ARENAS", "limit_arenas"]

# Arenas a server process may use: the main one and one shared by every thread.
ARENAS = 2
_M_ARENA_MAX = -8  # from glibc's <malloc.h>


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``arenas``, before the process starts its threads;
    whether the cap was set.

    ``MALLOC_ARENA_MAX`` in the environment (glibc's own setting) wins: left as it is.
    Elsewhere than glibc, nothing is done.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))
