"""``dockyard verify-blobs`` (the real CLI) and the checks a push makes of an existing blob.

A blob file whose bytes no longer match its digest (written wrong by an older
server, damaged on disk) is reported; ``--repair`` quarantines it, so the digest
becomes unknown and an honest push stores it again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from tests.support.api import TARGET, blob_path, digest_of, push_blob, random_repo
from tests.support.layout import DirectoryFiles, check_layout

if TYPE_CHECKING:
    from servers import RegistryProcess

RegistryFactory = Callable[..., "RegistryProcess"]
ClientFactory = Callable[["RegistryProcess"], httpx.Client]

pytestmark = pytest.mark.skipif(
    TARGET == "distribution", reason="verify-blobs and the push-time checks are dockyard's own"
)

SRC = Path(__file__).resolve().parents[2] / "src"


def flipped(data: bytes) -> bytes:
    """``data`` with its first byte changed (a constant one was the same byte in 1 of
    256 random blobs: the damage that was none made a CI flake)."""
    return bytes([data[0] ^ 0xFF]) + data[1:]

def verify_blobs(server: RegistryProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "verify-blobs", str(server.config_path), *args],
        capture_output=True, text=True, timeout=300, check=False,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )


def blob_file(server: RegistryProcess, digest: str) -> Path:
    algorithm, hex_ = digest.split(":")
    return server.root / "docker/registry/v2/blobs" / algorithm / hex_[:2] / hex_ / "data"


def test_verify_repair_and_honest_push(
    registry_factory: RegistryFactory, client_factory: ClientFactory
) -> None:
    server = registry_factory()
    client = client_factory(server)
    repo = random_repo("verify")
    blobs = [os.urandom(size) for size in (10, 70_000, 3 << 20)]
    digests = [push_blob(client, repo, data) for data in blobs]

    clean = verify_blobs(server)
    assert clean.returncode == 0, (clean.stdout, clean.stderr)
    assert f"verified 3 blobs ({sum(map(len, blobs))} bytes), 0 mismatched" in clean.stdout
    assert "report only" in clean.stderr

    # Damage two: same size (a flipped byte) and a different size.
    damaged = blob_file(server, digests[1])
    damaged.write_bytes(flipped(blobs[1]))
    blob_file(server, digests[2]).write_bytes(blobs[2][:-1])

    report = verify_blobs(server)
    assert report.returncode == 1, (report.stdout, report.stderr)
    assert "verified 3 blobs" in report.stdout and "2 mismatched" in report.stdout
    for digest in digests[1:]:
        assert f"MISMATCH: {digest}" in report.stderr
    assert digests[0] not in report.stderr
    assert damaged.exists()  # without --repair nothing moves

    repair = verify_blobs(server, "--repair")
    assert repair.returncode == 1, (repair.stdout, repair.stderr)
    assert "2 mismatched, 2 quarantined under /docker/registry/quarantine" in repair.stdout
    quarantine = server.root / "docker/registry/quarantine/sha256"
    kept = sorted(p.name.split("-")[0] for p in quarantine.iterdir())
    assert kept == sorted(d.split(":")[1] for d in digests[1:])
    assert not damaged.parent.exists()
    assert client.head(blob_path(repo, digests[1])).status_code == 404
    # One blob left, and the repository's links to the two quarantined ones dangle
    # until the honest push below stores their bytes again.
    left = check_layout(DirectoryFiles(server.root))
    assert left.blobs == 1
    assert len(left.problems) == 2, left.problems
    for digest in digests[1:]:
        assert any(f"names {digest}, which is not stored" in p for p in left.problems)

    # The honest push stores the true bytes again; a new verification is clean.
    for data in blobs[1:]:
        push_blob(client, random_repo("verify"), data)
    for digest, data in zip(digests, blobs, strict=True):
        assert client.get(blob_path(repo, digest)).content == data
    again = verify_blobs(server)
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert "verified 3 blobs" in again.stdout and "0 mismatched" in again.stdout


def test_verify_without_blobs_and_with_a_bad_config(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    server = registry_factory()
    empty = verify_blobs(server)
    assert empty.returncode == 0, empty.stderr
    assert "verified 0 blobs (0 bytes), 0 mismatched" in empty.stdout
    bad = tmp_path / "config.yml"
    bad.write_text("version: 0.1\nstorage:\n  s3: {}\n")
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "verify-blobs", str(bad)],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "configuration error" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("size", "damage"),
    [
        pytest.param(70_000, "same-size", id="small-same-size"),
        pytest.param(3 << 20, "shorter", id="large-other-size"),
    ],
)
def test_honest_push_repairs_a_damaged_blob(
    registry_factory: RegistryFactory, client_factory: ClientFactory, size: int, damage: str
) -> None:
    """A push does not keep an existing blob that is provably wrong (README: what is checked)."""
    server = registry_factory()
    client = client_factory(server)
    data = os.urandom(size)
    digest = push_blob(client, random_repo("heal"), data)
    path = blob_file(server, digest)
    path.write_bytes(flipped(data) if damage == "same-size" else data[:-1])
    repo = random_repo("heal")
    # Both push paths: the whole blob in the PUT, and chunks then an empty PUT.
    push_blob(client, repo, data)
    assert path.read_bytes() == data
    path.write_bytes(flipped(data) if damage == "same-size" else data[:-1])
    location = client.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
    response = client.patch(location, content=data,
                            headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 202, response.text
    response = client.put(f"{response.headers['Location']}&digest={digest}")
    assert response.status_code == 201, response.text
    assert path.read_bytes() == data
    assert client.get(blob_path(repo, digest)).content == data
    assert digest == digest_of(data)
