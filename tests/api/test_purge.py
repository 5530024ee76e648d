"""``dockyard purge-uploads`` against the storage of a running registry.

The registry under test keeps serving while the CLI purges its storage root; the
old upload is planted on disk exactly as distribution lays one out, so with
``DOCKYARD_TEST_TARGET=distribution`` this also shows the purge works on a
``docker-registry`` data directory.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from tests.support.api import (
    TARGET,
    digest_of,
    patch_chunk,
    random_repo,
    start_upload,
    upload_uuid,
    with_query,
)
from tests.support.servers import process_env

if TYPE_CHECKING:
    from servers import RegistryProcess

RegistryFactory = Callable[..., "RegistryProcess"]
ClientFactory = Callable[["RegistryProcess"], httpx.Client]

# The server must not purge by itself meanwhile: only the CLI does, when told.
NO_BACKGROUND_PURGE = {"storage": {"maintenance": {"uploadpurging": {"enabled": False}}}}


def uploads_dir(server: RegistryProcess, repo: str) -> Path:
    return server.root / "docker/registry/v2/repositories" / repo / "_uploads"


def plant_old_upload(server: RegistryProcess, repo: str, age: timedelta) -> tuple[str, Path]:
    """An abandoned upload as distribution writes it: startedat, data, a hash state."""
    upload_id = str(uuid.uuid4())
    directory = uploads_dir(server, repo) / upload_id
    (directory / "hashstates/sha256").mkdir(parents=True)
    started = datetime.now(UTC) - age
    (directory / "startedat").write_text(started.strftime("%Y-%m-%dT%H:%M:%SZ"))
    (directory / "data").write_bytes(b"a" * 4096)
    (directory / "hashstates/sha256/0").write_bytes(b"")
    return upload_id, directory


def purge(server: RegistryProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "purge-uploads", str(server.config_path), *args],
        capture_output=True, text=True, timeout=120, check=False,
        env=process_env(),  # the source tree under test, whatever is installed
    )


def test_purge_uploads_cli(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    server = registry_factory(overrides=NO_BACKGROUND_PURGE)
    client = client_factory(server)
    repo = random_repo("purge")
    old_id, old_dir = plant_old_upload(server, repo, timedelta(days=7, hours=1))
    status_url = f"/v2/{repo}/blobs/uploads/{old_id}"
    # The server sees the planted upload (distribution answers no status without _state).
    knows_planted = TARGET == "dockyard"
    if knows_planted:
        assert client.get(status_url).status_code == 204

    # A fresh upload in the same repository, one chunk in.
    location = start_upload(client, repo)
    first = b"fresh chunk " * 100
    response = patch_chunk(client, location, first)
    assert response.status_code == 202, response.text
    location = response.headers["Location"]
    fresh_dir = uploads_dir(server, repo) / upload_uuid(location)
    assert fresh_dir.is_dir()

    # Dry run: reported, nothing deleted.
    dry = purge(server, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would delete /docker/registry/v2/repositories/{repo}/_uploads/{old_id}" in dry.stderr
    assert "would delete 1 " in dry.stdout and "scanned 2 uploads" in dry.stdout
    assert old_dir.is_dir() and fresh_dir.is_dir()
    if knows_planted:
        assert client.get(status_url).status_code == 204

    # The real thing, with the default age (168h from the config).
    done = purge(server)
    assert done.returncode == 0, done.stderr
    assert "older than 7d0h" in done.stderr
    assert f"deleted /docker/registry/v2/repositories/{repo}/_uploads/{old_id}" in done.stderr
    assert "deleted 1 (4.0 KiB)" in done.stdout, done.stdout
    assert not old_dir.exists()
    if knows_planted:
        assert client.get(status_url).status_code == 404

    # The fresh upload survived and finishes with the right digest.
    assert fresh_dir.is_dir()
    last = b"the end"
    response = client.put(
        with_query(location, digest=digest_of(first + last)), content=last,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    blob = client.get(f"/v2/{repo}/blobs/{digest_of(first + last)}")
    assert blob.status_code == 200 and blob.content == first + last

    # --age overrides the config: now even a minute-old upload is abandoned.
    location = start_upload(client, repo)
    assert client.get(location).status_code == 204
    again = purge(server, "--age", "0s")
    assert again.returncode == 0, again.stderr
    assert "deleted 1 " in again.stdout
    assert client.get(location).status_code == 404


def test_purge_uploads_cli_rejects_bad_age(registry_factory: RegistryFactory) -> None:
    server = registry_factory(overrides=NO_BACKGROUND_PURGE, start=False)
    result = purge(server, "--age", "a week")
    assert result.returncode == 2
    assert "--age" in result.stderr
