"""Offline ``dockyard garbage-collect`` keeps the metadata index (issue 12).

Images are pushed and untagged over HTTP, the registry is stopped, the command runs
on its root (plain, then with ``-m``); ``dockyard index verify`` must then report no
drift, and the repository's usage, served again, must have lost exactly the sizes of
what was deleted.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from tests.support.api import TARGET, push_blob, random_repo
from tests.support.index import dockyard_command
from tests.support.manifests import Built, image, put_manifest
from tests.support.servers import RegistryProcess

Factory = Callable[..., RegistryProcess]
ClientFactory = Callable[[RegistryProcess], httpx.Client]

pytestmark = pytest.mark.skipif(TARGET == "distribution", reason="dockyard's own index")


def _bytes(built: Built) -> int:
    """The manifest's payload plus its config and layers, as the index sizes them."""
    document = json.loads(built.body)
    return (built.size + document["config"]["size"]
            + sum(layer["size"] for layer in document["layers"]))


def _usage(client: httpx.Client, repo: str) -> dict[str, int]:
    response = client.get(f"/dockyard/v1/repositories/{repo}")
    assert response.status_code == 200, response.text
    body: dict[str, int] = response.json()
    return body


def _verified(server: RegistryProcess) -> None:
    done = dockyard_command(server, "index", "verify", str(server.config_path), check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no drift" in done.stdout


def test_offline_collection_keeps_the_index(
    registry_factory: Factory, client_factory: ClientFactory
) -> None:
    server = registry_factory({"storage": {"delete": {"enabled": True}}})
    repo, other = random_repo("gc-index"), random_repo("gc-index")
    with client_factory(server) as client:
        old = image(client, repo, layers=2)
        put_manifest(client, repo, "v1", old)
        new = image(client, repo, layers=1)
        put_manifest(client, repo, "v1", new)  # "v1" moves on: old is untagged
        orphan = b"uploaded, never referenced by a manifest " * 40
        push_blob(client, repo, orphan)
        kept = image(client, other)
        put_manifest(client, other, "latest", kept)
        before = _usage(client, repo)
        assert before["manifests"] == 2
        assert before["size"] == _bytes(old) + _bytes(new) + len(orphan)
    server.stop()

    # Plain: only the orphan goes (the untagged manifest keeps its blobs).
    plain = dockyard_command(server, "garbage-collect", str(server.config_path))
    assert "deleted 1 (" in plain.stdout, plain.stdout + plain.stderr
    _verified(server)

    untagged = dockyard_command(server, "garbage-collect", "-m", str(server.config_path))
    assert f"{repo}: deleted manifest {old.digest}" in untagged.stderr, untagged.stderr
    assert "0 errors" in untagged.stdout
    _verified(server)

    server.start()
    with client_factory(server) as client:
        after = _usage(client, repo)
        assert (after["tags"], after["manifests"], after["blobs"]) == (1, 1, 3)
        assert after["size"] == after["exclusive_size"] == _bytes(new)
        assert before["size"] - after["size"] == _bytes(old) + len(orphan)
        assert _usage(client, other)["size"] == _bytes(kept)
        assert client.get(f"/v2/{repo}/manifests/{old.digest}").status_code == 404
        tags = client.get(f"/v2/{repo}/tags/list").json()["tags"]
        assert tags == ["v1"]
