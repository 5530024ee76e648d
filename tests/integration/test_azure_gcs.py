"""dockyard instances on Azure Blob Storage and Google Cloud Storage: many instances as one.

Every scenario runs on both stores: ``[azure]`` on Azurite, ``[gcs]`` on fake-gcs-server.
Two (or three) ``dockyard serve`` processes share one container or bucket. Uploads
alternate between them chunk by chunk, pulls and deletes happen on the other one,
and skopeo copies an image in through one and out through the other.

The azure runs are skipped, with the install command, when ``azurite-blob`` is not
installed. On gcs, with a service account key (a throwaway one), blob GETs redirect to
V4 signed URLs; fake-gcs-server serves them without checking the signature (the
signature itself is checked against gcloud-aio-storage's in tests/unit/test_gcs_driver.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support import azure_gcs as fixtures
from tests.support.azure_gcs import (
    AzuriteServer,
    FakeGCSServer,
    ObjectStoreRegistryProcess,
    RegistryFactory,
    azure_params,
    catalog,
    fetch_blob,
    gcs_params,
    interrupt_patch,
    push_blob_alternating,
    push_image,
    service_account_key,
)
from tests.support.interop import Layout, Skopeo, Umoci, random_repo, require_binary

pytestmark = pytest.mark.interop

azurite = fixtures.azurite
azure_registry_factory = fixtures.azure_registry_factory
fake_gcs = fixtures.fake_gcs
gcs_registry_factory = fixtures.gcs_registry_factory
MiB = 1 << 20

#: Two instances on one container or bucket, their clients, and the store's parameters.
Pair = tuple[list[ObjectStoreRegistryProcess], list[httpx.Client], dict[str, Any]]


@dataclass(frozen=True)
class Store:
    """The store under test: its driver's name, the parameters of a fresh container or
    bucket on its emulator, and the factory of dockyard processes on that emulator."""

    name: str
    params: dict[str, Any]
    registry: RegistryFactory


@pytest.fixture(params=["azure", "gcs"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A fresh container (azure) or bucket (gcs: upload parts of 256 KiB and a key to sign
    URLs with), with a root directory. Only the emulator of this store is started."""
    if request.param == "azure":
        server: AzuriteServer = request.getfixturevalue("azurite")
        params = azure_params(server, server.new_container(), root="registry")
    else:
        gcs: FakeGCSServer = request.getfixturevalue("fake_gcs")
        key = service_account_key(tmp_path_factory.mktemp("gcs-key") / "key.json")
        params = gcs_params(gcs, gcs.create_bucket(), root="registry",
                            chunksize=256 * 1024, keyfile=str(key))
    factory: RegistryFactory = request.getfixturevalue(f"{request.param}_registry_factory")
    return Store(request.param, params, factory)


@pytest.fixture
def pair(
    store: Store, client_factory: Callable[[ObjectStoreRegistryProcess], httpx.Client],
) -> Pair:
    """Two instances on the store's container or bucket, and their clients."""
    servers = [store.registry(store.params), store.registry(store.params)]
    return servers, [client_factory(s) for s in servers], store.params


def test_push_alternating_pull_delete_catalog_across_instances(
    store: Store, pair: Pair,
    client_factory: Callable[[ObjectStoreRegistryProcess], httpx.Client],
) -> None:
    _, (a, b), params = pair
    repo = random_repo(store.name)
    # Several blocks (azure: 4 MiB) or many parts (gcs: 256 KiB), chunks not aligned to them.
    layer = os.urandom(9 * MiB + 12345)
    manifest_digest, manifest, layer_digest = push_image([a, b], repo, "v1", layer,
                                                         chunk=2 * MiB + 17)

    # Pulled from either instance: the blob GET is a redirect to a signed URL on the
    # emulator (azure: a SAS URL; gcs: a V4 signed URL).
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
    streaming = client_factory(store.registry(
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
    store: Store, pair: Pair,
) -> None:
    """The bytes of a PATCH whose client vanished are cut off; the upload goes on elsewhere."""
    (server_a, _), (a, b), _ = pair
    repo = random_repo(store.name)
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
    store: Store, pair: Pair,
) -> None:
    _, (a, b), _ = pair
    repo = random_repo(store.name)
    small = os.urandom(5000)
    digest = push_blob_alternating([a, b], repo, small, chunk=999)  # six PATCHes, PUT
    assert fetch_blob(a, repo, digest)[0] == small
    empty_digest = push_blob_alternating([b, a], repo, b"", chunk=1)  # POST and PUT only
    assert fetch_blob(b, repo, empty_digest)[0] == b""


def test_skopeo_copies_an_image_in_and_out(
    store: Store, pair: Pair,
    tmp_path: Path,
) -> None:
    (server_a, server_b), _, _ = pair
    skopeo, umoci = Skopeo(require_binary("skopeo")), Umoci(require_binary("umoci"))
    layout = umoci.init(tmp_path / "layout")
    image = umoci.build(layout, "v1", [{"etc/hello": b"hi\n"}, {"big.bin": os.urandom(MiB)}],
                        tmp_path, architecture="amd64")
    repo = random_repo(store.name)
    skopeo.copy(image.ref, f"docker://127.0.0.1:{server_a.port}/{repo}:v1")
    out = Layout(tmp_path / "out")
    skopeo.copy(f"docker://127.0.0.1:{server_b.port}/{repo}:v1", out.ref("pulled"))
    assert out.descriptor("pulled")["digest"] == image.manifest_digest
    for digest in image.blob_digests:
        assert out.blob(digest) == image.layout.blob(digest)
