"""prometheus-client's multiprocess mode, for ``--workers N``: one scrape sums all workers.

prometheus-client picks where values live when it is first imported, so this module
must not import it at the top: the supervisor calls :func:`prepare_multiprocess`
before anything imports it, then forks.
"""

from __future__ import annotations

import os
import shutil
import tempfile

__all__ = ["MULTIPROC_ENV", "forget_process", "prepare_multiprocess", "remove_multiprocess_dir"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess() -> str:
    """Make a fresh directory for the workers' metric files and name it in the environment.

    Returns the directory; the caller removes it with :func:`remove_multiprocess_dir`.
    """
    path = tempfile.mkdtemp(prefix="dockyard-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path


def forget_process(pid: int) -> None:
    """Drop the live gauges of a worker that exited (its counters stay in the sums)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def remove_multiprocess_dir(path: str) -> None:
    """Remove the metric files of a stopped server."""
    shutil.rmtree(path, ignore_errors=True)
    if os.environ.get(MULTIPROC_ENV) == path:
        del os.environ[MULTIPROC_ENV]
