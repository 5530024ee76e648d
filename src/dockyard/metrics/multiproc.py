"""``--workers N``: the directory where the workers' metric snapshots meet."""

from __future__ import annotations

import shutil
import tempfile

__all__ = ["prepare_snapshot_dir", "remove_snapshot_dir"]


def prepare_snapshot_dir() -> str:
    """A fresh directory for this server's workers (made by the supervisor, before the fork)."""
    return tempfile.mkdtemp(prefix="dockyard-metrics-")


def remove_snapshot_dir(path: str) -> None:
    """Remove the snapshots of a stopped server."""
    shutil.rmtree(path, ignore_errors=True)
