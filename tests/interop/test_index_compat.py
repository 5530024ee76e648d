"""The index ``dockyard index rebuild`` builds from a root docker-registry wrote equals
the index dockyard kept itself while the same pushes, tag move and deletes went
through it (issue 12)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from tests.support.interop import Skopeo, random_repo
from tests.support.servers import process_env

from dockyard.index import RepositoryState, SqlIndex
from dockyard.index.sqlite import SqliteDatabase

from .conftest import Images, ServerFactory
from .test_distribution_compat import push_everything

pytestmark = pytest.mark.interop


def _states(db: Path) -> dict[str, RepositoryState]:
    async def read() -> dict[str, RepositoryState]:
        index = SqlIndex(SqliteDatabase(str(db)))
        try:
            states = {}
            for name in await index.all_repositories():
                state = await index.repository_state(name)
                assert state is not None
                states[name] = state
            return states
        finally:
            await index.aclose()

    return asyncio.run(read())


def test_rebuild_of_a_docker_registry_root_equals_dockyards_own_index(
    server_factory: ServerFactory, skopeo: Skopeo, images: Images, tmp_path: Path
) -> None:
    prefix = random_repo("index")
    roots: dict[str, Path] = {}
    for kind in ("distribution", "dockyard"):
        roots[kind] = tmp_path / kind
        server = server_factory(kind, root=roots[kind])
        push_everything(skopeo, server.port, images, prefix)
        base = f"docker://127.0.0.1:{server.port}/{prefix}"
        skopeo.copy(images.amd64.ref, f"{base}/oci:latest")  # a moved tag
        skopeo.delete(f"{base}/docker:v1")  # a manifest deleted by digest
        with httpx.Client(base_url=server.url, timeout=60) as client:
            layer = images.amd64.layer_digests[0]
            assert client.delete(f"/v2/{prefix}/multi/blobs/{layer}").status_code == 202
        server.stop()

    config = tmp_path / "rebuild.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1,
        "storage": {"filesystem": {"rootdirectory": str(roots["distribution"])}},
    }))
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "index", "rebuild", str(config)],
        capture_output=True, text=True, timeout=300, check=True, env=process_env(),
    )
    assert "indexed 4 repositories" in done.stdout, done.stdout + done.stderr

    theirs = _states(roots["distribution"] / "dockyard-index.db")
    ours = _states(roots["dockyard"] / "dockyard-index.db")
    assert sorted(theirs) == sorted(ours) == sorted(
        f"{prefix}/{r}" for r in ("oci", "docker", "multi", "list")
    )
    for name in ours:
        assert theirs[name] == ours[name], name
    assert ours[f"{prefix}/oci"].tags  # something was compared
    assert not ours[f"{prefix}/docker"].tags
