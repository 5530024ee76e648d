"""The API suite runs with the metadata index on (the default configuration); at the
end of the session ``dockyard index verify`` must find the index of the session's
registry equal to its storage."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.index import dockyard_command
from tests.support.servers import Kind, RegistryProcess


@pytest.fixture(scope="session", autouse=True)
def _index_has_no_drift_at_the_end(
    session_registry: RegistryProcess, target: Kind
) -> Iterator[None]:
    yield
    if target != "dockyard":
        return
    # Beside the running server, as an operator would run it.
    server = session_registry
    done = dockyard_command(server, "index", "verify", str(server.config_path), check=False)
    assert done.returncode == 0, f"index drift after the API suite:\n{done.stderr}{done.stdout}"
