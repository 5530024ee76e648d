"""glibc's heap kept for reuse by a worker, rather than given back and taken again.

A worker receiving a push allocates and frees a piece of about 256 KB for every
256 KB received (uvloop's read, aiohttp's copy of the body). glibc's defaults give
the top of its heap back to the kernel once twice its mmap threshold is free there,
and with several uploads the top is freed often: the next pieces took the pages
anew, each one a page fault and a page cleared (the kernel's ``do_anonymous_page``:
6% of the workers' CPU under eight image pushes, ``perf``). Fixed thresholds keep
up to :data:`TRIM_THRESHOLD` of freed heap for the next pieces; what a worker holds
at its peak does not change.
"""

from __future__ import annotations

import ctypes
import logging

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_heap"]

log = logging.getLogger("dockyard")

# mallopt's parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks at least this big are mapped on their own (given back as soon as freed):
#: above the 1 MiB reads and batches, as glibc's sliding threshold had risen to.
MMAP_THRESHOLD = 4 << 20
#: Freed heap kept at the top before glibc gives it back: eight pushes on a worker
#: hold a few MiB each (at 8 MiB a quarter of the faults were left).
TRIM_THRESHOLD = 32 << 20


def keep_freed_heap() -> None:
    """Set the thresholds in this process (glibc only; elsewhere nothing happens).

    Setting them turns glibc's sliding mmap threshold off, so both are set: below
    :data:`MMAP_THRESHOLD` every block comes from the heap.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):  # not glibc (musl has no mallopt)
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    if not (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        log.debug("mallopt refused the heap thresholds")
