"""Running dockyard's index commands on a test registry's config (real processes)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.servers import RegistryProcess, process_env

__all__ = ["dockyard_command", "reindex"]


def dockyard_command(
    server: RegistryProcess, *args: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m dockyard ARGS`` of the tree under test, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True, text=True, timeout=timeout, check=check,
        env=process_env(server.env), cwd=server.workdir,
    )


def reindex(server: RegistryProcess) -> None:
    """After writing the layout behind a running server: ``dockyard index rebuild``.

    What an operator does after another program (such as docker-registry) wrote to
    the storage; distribution walks storage and has no index to rebuild.
    """
    if server.kind == "dockyard":
        dockyard_command(server, "index", "rebuild", str(server.config_path))
