"""tags/list without the metadata index, right after changes made elsewhere.

dockyard (``storage.index.driver: none``, two workers) and docker-registry serve one
storage root at once. A big tags directory (its listing is cached by each dockyard
worker) changes through either server or straight on disk; every listing that follows,
on any worker, names exactly the tags there are.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.manifests import image, put_manifest
from tests.support.servers import DISTRIBUTION_BINARY, Kind, RegistryProcess

REPO = "shared/tags"
SEEDED = 600  # above the size from which a worker keeps the listing


@pytest.fixture
def servers(tmp_path: Path, target: Kind) -> Iterator[tuple[RegistryProcess, RegistryProcess]]:
    if target != "dockyard":
        pytest.skip("dockyard's listing cache, checked against docker-registry's writes")
    if not os.access(DISTRIBUTION_BINARY, os.X_OK):
        pytest.skip(f"{DISTRIBUTION_BINARY} is not installed")
    storage = {"filesystem": {"rootdirectory": str(tmp_path / "root")},
               "delete": {"enabled": True}}
    dockyard = RegistryProcess(tmp_path / "dockyard", workers=2, overrides={
        "storage": {**storage, "index": {"driver": "none"}}})
    distribution = RegistryProcess(tmp_path / "distribution", kind="distribution",
                                   overrides={"storage": storage})
    try:
        dockyard.start()
        distribution.start()
        yield dockyard, distribution
    finally:
        dockyard.stop()
        distribution.stop()


def _listings(server: RegistryProcess, times: int = 6) -> list[list[str]]:
    """tags/list, each on a new connection (so both workers answer some)."""
    out = []
    for _ in range(times):
        with httpx.Client(base_url=server.url, timeout=30) as client:
            response = client.get(f"/v2/{REPO}/tags/list")
            assert response.status_code == 200, response.text
            out.append(response.json()["tags"])
    return out


def test_listings_follow_every_writer_at_once(
    servers: tuple[RegistryProcess, RegistryProcess], tmp_path: Path
) -> None:
    dockyard, distribution = servers
    with httpx.Client(base_url=dockyard.url, timeout=30) as ours, \
            httpx.Client(base_url=distribution.url, timeout=30) as theirs:
        built = image(ours, REPO)
        put_manifest(ours, REPO, "seed", built)
        tags_dir = (tmp_path / "root/docker/registry/v2/repositories" / REPO
                    / "_manifests/tags")
        link = built.digest.encode()
        for i in range(SEEDED):  # as another program would add them
            current = tags_dir / f"t{i:04d}" / "current"
            current.mkdir(parents=True)
            (current / "link").write_bytes(link)
        expected = sorted({"seed", *(f"t{i:04d}" for i in range(SEEDED))})
        assert all(listed == expected for listed in _listings(dockyard))

        steps = [
            ("pushed to docker-registry", lambda: put_manifest(theirs, REPO, "by-them", built)),
            ("pushed to dockyard", lambda: put_manifest(ours, REPO, "by-us", built)),
            # docker-registry 2.8 deletes no tag by name: removed as a program would.
            ("removed on disk", lambda: shutil.rmtree(tags_dir / "by-us")),
            ("deleted through dockyard",
             lambda: ours.delete(f"/v2/{REPO}/manifests/t0001").raise_for_status()),
        ]
        changes = [{"by-them"}, {"by-us"}, {"-by-us"}, {"-t0001"}]
        names = set(expected)
        for (what, step), change in zip(steps, changes, strict=True):
            step()
            for name in change:
                if name.startswith("-"):
                    names.discard(name[1:])
                else:
                    names.add(name)
            for listed in _listings(dockyard):
                assert listed == sorted(names), what
