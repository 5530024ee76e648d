"""dockyard instances on Azure Blob Storage (Azurite): many instances as one.

Two (or three) ``dockyard serve`` processes share one Azurite container. Uploads
alternate between them chunk by chunk, pulls and deletes happen on the other one,
and skopeo copies an image in through one and out through the other. Skipped, with
the install command, when ``azurite-blob`` is not installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.integration import azure_gcs_fixtures as fixtures
from tests.integration.azure_gcs_fixtures import (
    AzuriteServer,
    ObjectStoreRegistryProcess,
    RegistryFactory,
    azure_params,
    catalog,
    fetch_blob,
    interrupt_patch,
    push_blob_alternating,
    push_image,
)
from tests.interop.tools import Layout, Skopeo, Umoci, random_repo, require_binary

pytestmark = pytest.mark.interop

azurite = fixtures.azurite
azure_registry_factory = fixtures.azure_registry_factory
MiB = 1 << 20


@pytest.fixture
def pair(
    azurite: AzuriteServer, azure_registry_factory: RegistryFactory,
    client_factory: Callable[[ObjectStoreRegistryProcess], httpx.Client],
) -> tuple[list[ObjectStoreRegistryProcess], list[httpx.Client], dict[str, str]]:
    """Two instances on one fresh container (with a root directory), and their clients."""
    params = azure_params(azurite, azurite.new_container(), root="registry")
    servers = [azure_registry_factory(params), azure_registry_factory(params)]
    return servers, [client_factory(s) for s in servers], params


def test_push_alternating_pull_delete_catalog_across_instances(
    pair: tuple[list[ObjectStoreRegistryProcess], list[httpx.Client], dict[str, str]],
    azure_registry_factory: RegistryFactory,
    client_factory: Callable[[ObjectStoreRegistryProcess], httpx.Client],
) -> None:
    _, (a, b), params = pair
    repo = random_repo("azure")
    layer = os.urandom(9 * MiB + 12345)  # several 4 MiB blocks, chunks not aligned to them
    manifest_digest, manifest, layer_digest = push_image([a, b], repo, "v1", layer,
                                                         chunk=2 * MiB + 17)

    # Pulled from either instance: the blob GET is a redirect to a SAS URL on Azurite.
    for client in (a, b):
        response = client.get(f"/v2/{repo}/manifests/v1",
                              headers={"Accept": fixtures.OCI_MANIFEST})
        assert response.status_code == 200 and response.content == manifest
        assert response.headers["Docker-Content-Digest"] == manifest_digest
        data, redirected = fetch_blob(client, repo, layer_digest)
        assert redirected and data == layer
        head = client.head(f"/v2/{repo}/blobs/{layer_digest}")
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(layer)
    # With storage.redirect.disable the same blob is streamed by the registry.
    streaming = client_factory(azure_registry_factory(
        params, overrides={"storage": {"redirect": {"disable": True}}}))
    data, redirected = fetch_blob(streaming, repo, layer_digest)
    assert not redirected and data == layer
    ranged = streaming.get(f"/v2/{repo}/blobs/{layer_digest}", headers={"Range": "bytes=5-9"})
    assert ranged.status_code == 206 and ranged.content == layer[5:10]

    for client in (a, b, streaming):
        assert repo in catalog(client)
        tags = client.get(f"/v2/{repo}/tags/list")
        assert tags.status_code == 200 and tags.json()["tags"] == ["v1"]

    # Deleted on one instance, gone on the others.
    assert b.delete(f"/v2/{repo}/manifests/{manifest_digest}").status_code == 202
    for client in (a, streaming):
        assert client.get(f"/v2/{repo}/manifests/{manifest_digest}").status_code == 404
        assert client.get(f"/v2/{repo}/manifests/v1").status_code == 404
    assert a.delete(f"/v2/{repo}/blobs/{layer_digest}").status_code == 202
    for client in (b, streaming):
        assert client.head(f"/v2/{repo}/blobs/{layer_digest}").status_code == 404


def test_a_chunk_cut_off_midway_resumes_on_the_other_instance(
    pair: tuple[list[ObjectStoreRegistryProcess], list[httpx.Client], dict[str, str]],
) -> None:
    """The bytes of a PATCH whose client vanished are cut off; the upload goes on elsewhere."""
    (server_a, _), (a, b), _ = pair
    repo = random_repo("azure")
    data = os.urandom(7 * MiB + 3)
    first = 3 * MiB + 1  # acknowledged
    response = a.post(f"/v2/{repo}/blobs/uploads/")
    location = fixtures._relative(response.headers["Location"])
    response = b.patch(location, content=data[:first], headers={
        "Content-Type": "application/octet-stream", "Content-Range": f"0-{first - 1}"})
    assert response.status_code == 202, response.text
    location = fixtures._relative(response.headers["Location"])
    # Instance A gets the next chunk, but the client is gone after 2.5 MiB of it.
    interrupt_patch(server_a, location, first, data[first:], sent=5 * MiB // 2)
    status = b.get(location)
    assert status.status_code == 204 and status.headers["Range"] == f"0-{first - 1}"
    response = b.patch(location, content=data[first:], headers={
        "Content-Type": "application/octet-stream",
        "Content-Range": f"{first}-{len(data) - 1}"})
    assert response.status_code == 202, response.text
    location = fixtures._relative(response.headers["Location"])
    digest = fixtures._digest(data)
    assert a.put(f"{location}&digest={digest}").status_code == 201
    fetched, _ = fetch_blob(b, repo, digest)
    assert fetched == data


def test_monolithic_and_tiny_chunks(
    pair: tuple[list[ObjectStoreRegistryProcess], list[httpx.Client], dict[str, str]],
) -> None:
    _, (a, b), _ = pair
    repo = random_repo("azure")
    small = os.urandom(5000)
    digest = push_blob_alternating([a, b], repo, small, chunk=999)  # six PATCHes, PUT
    assert fetch_blob(a, repo, digest)[0] == small
    empty_digest = push_blob_alternating([b, a], repo, b"", chunk=1)  # POST and PUT only
    assert fetch_blob(b, repo, empty_digest)[0] == b""


def test_skopeo_copies_an_image_in_and_out(
    pair: tuple[list[ObjectStoreRegistryProcess], list[httpx.Client], dict[str, str]],
    tmp_path: Path,
) -> None:
    (server_a, server_b), _, _ = pair
    skopeo, umoci = Skopeo(require_binary("skopeo")), Umoci(require_binary("umoci"))
    layout = umoci.init(tmp_path / "layout")
    image = umoci.build(layout, "v1", [{"etc/hello": b"hi\n"}, {"big.bin": os.urandom(MiB)}],
                        tmp_path, architecture="amd64")
    repo = random_repo("azure")
    skopeo.copy(image.ref, f"docker://127.0.0.1:{server_a.port}/{repo}:v1")
    out = Layout(tmp_path / "out")
    skopeo.copy(f"docker://127.0.0.1:{server_b.port}/{repo}:v1", out.ref("pulled"))
    assert out.descriptor("pulled")["digest"] == image.manifest_digest
    for digest in image.blob_digests:
        assert out.blob(digest) == image.layout.blob(digest)
