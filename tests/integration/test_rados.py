"""dockyard on RADOS (``storage.rados``) against the session's single-node Ceph cluster:
skopeo push and pull, two instances serving one pool, delete, and garbage collection.

Every registry is a real ``dockyard serve`` process talking librados to a real ceph-mon
and ceph-osd on loopback (tests/support/ceph.py); each test has its own RADOS namespace.
Skipped, with the reason printed, where Ceph is not installed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.test_s3 import build_oci_layout, copy, layout_blobs, relative, skopeo
from tests.support.api import (
    blob_path,
    content_range,
    digest_of,
    push_blob,
    random_repo,
    with_query,
)
from tests.support.ceph import (
    CephCluster,
    RadosRegistryProcess,
    ceph_unavailable,
    rados_driver,
    rados_pythonpath,
)
from tests.support.data import blob
from tests.support.net import ServerPool
from tests.support.servers import SRC_DIR, process_env

from dockyard.storage.drivers.base import PathNotFound

pytestmark = [pytest.mark.interop, pytest.mark.timeout(600)]

MiB = 1 << 20
MANIFEST_ACCEPT = ", ".join((
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))

RadosFactory = Callable[..., RadosRegistryProcess]


@pytest.fixture
def rados_params(ceph_cluster: CephCluster) -> dict[str, Any]:
    """``storage.rados`` on the session's pool, in a namespace of this test's own."""
    return {
        "poolname": ceph_cluster.pool,
        "conffile": str(ceph_cluster.conf),
        "namespace": f"it-{uuid.uuid4().hex[:12]}",
    }


@pytest.fixture
def rados_registry_factory(
    tmp_path_factory: pytest.TempPathFactory, registry_secret: str
) -> Iterator[RadosFactory]:
    """``factory(params, overrides=None, extra_args=())``: a dockyard process on
    ``storage.rados``."""
    with ServerPool[RadosRegistryProcess]() as pool:

        def factory(
            params: dict[str, Any],
            overrides: dict[str, Any] | None = None,
            extra_args: tuple[str, ...] = (),
        ) -> RadosRegistryProcess:
            server = RadosRegistryProcess(
                tmp_path_factory.mktemp("dockyard-rados"), rados=params,
                secret=registry_secret, overrides=overrides, extra_args=extra_args,
            )
            return pool.add(server)

        yield factory


def ref(server: RadosRegistryProcess, repo: str, tag: str) -> str:
    return f"docker://127.0.0.1:{server.port}/{repo}:{tag}"


def blob_data_path(digest: str) -> str:
    hex_ = digest.split(":")[1]
    return f"/docker/registry/v2/blobs/sha256/{hex_[:2]}/{hex_}/data"


def test_skopeo_push_and_pull_across_two_instances(
    rados_registry_factory: RadosFactory, rados_params: dict[str, Any], tmp_path: Path
) -> None:
    """An image pushed through one instance (two worker processes, each with its own
    librados connection) is pulled from the other, byte for byte."""
    first = rados_registry_factory(rados_params, extra_args=("--workers", "2"))
    second = rados_registry_factory(rados_params)
    repo = random_repo("rados")
    source = tmp_path / "source"
    digest = build_oci_layout(source, "v1", [12 * MiB, 100_000], seed=21)
    copy(f"oci:{source}:v1", ref(first, repo, "v1"), "--preserve-digests")
    inspected = skopeo("inspect", "--tls-verify=false", ref(second, repo, "v1")).stdout
    assert digest in inspected
    pulled = tmp_path / "pulled"
    copy(ref(second, repo, "v1"), f"oci:{pulled}:v1", "--preserve-digests")
    assert layout_blobs(pulled) == layout_blobs(source)


def test_chunks_alternate_between_instances(
    rados_registry_factory: RadosFactory, rados_params: dict[str, Any]
) -> None:
    """One upload's chunks land on two instances in turn; both serve the blob, ranges
    too, list it in the catalog; a delete through one is seen by the other."""
    servers = [rados_registry_factory(rados_params) for _ in range(2)]
    clients = [httpx.Client(base_url=s.url, timeout=120) for s in servers]
    try:
        a, b = clients
        repo = random_repo("rados")
        sizes = [MiB, 9 * MiB + 3, 1, 5 * MiB]
        data = blob(sum(sizes) + 777, seed=22)
        digest = digest_of(data)
        response = a.post(f"/v2/{repo}/blobs/uploads/")
        assert response.status_code == 202, response.text
        location = relative(response.headers["Location"])
        offset = 0
        for i, size in enumerate(sizes):
            client, other = clients[i % 2], clients[(i + 1) % 2]
            chunk = data[offset : offset + size]
            response = client.patch(location, content=chunk, headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": content_range(offset, chunk),
            })
            assert response.status_code == 202, (i, response.text)
            offset += size
            location = relative(response.headers["Location"])
            status = other.get(location)
            assert status.status_code == 204 and status.headers["Range"] == f"0-{offset - 1}"
        response = b.put(with_query(location, digest=digest), content=data[offset:],
                         headers={"Content-Type": "application/octet-stream"})
        assert response.status_code == 201, response.text
        for client in clients:
            got = client.get(blob_path(repo, digest))
            assert got.status_code == 200 and got.content == data  # served, no redirect
            part = client.get(blob_path(repo, digest), headers={"Range": "bytes=4194300-4194399"})
            assert part.status_code == 206 and part.content == data[4194300:4194400]
            catalog = client.get("/v2/_catalog", params={"n": 1000})
            assert repo in catalog.json()["repositories"]
        assert a.delete(blob_path(repo, digest)).status_code == 202
        assert b.head(blob_path(repo, digest)).status_code == 404
    finally:
        for client in clients:
            client.close()


def test_delete_and_garbage_collect(
    rados_registry_factory: RadosFactory,
    rados_params: dict[str, Any],
    tmp_path: Path,
) -> None:
    """A manifest deleted through the API, then ``dockyard garbage-collect`` on the same
    config: the deleted image's blobs leave the pool, the kept image still pulls."""
    server = rados_registry_factory(rados_params)
    kept_repo, gone_repo = random_repo("keep"), random_repo("gone")
    kept, gone = tmp_path / "kept", tmp_path / "gone"
    build_oci_layout(kept, "v1", [3 * MiB], seed=23)
    gone_digest = build_oci_layout(gone, "v1", [2 * MiB, 5000], seed=24)
    copy(f"oci:{kept}:v1", ref(server, kept_repo, "v1"), "--preserve-digests")
    copy(f"oci:{gone}:v1", ref(server, gone_repo, "v1"), "--preserve-digests")
    gone_blobs = set(layout_blobs(gone)) - set(layout_blobs(kept))
    with httpx.Client(base_url=server.url, timeout=60) as client:
        deleted = client.delete(f"/v2/{gone_repo}/manifests/{gone_digest}")
        assert deleted.status_code == 202, deleted.text
        assert client.get(f"/v2/{gone_repo}/manifests/v1",
                          headers={"Accept": MANIFEST_ACCEPT}).status_code == 404
    server.stop()

    env = process_env()
    path = rados_pythonpath()
    if path:
        env["PYTHONPATH"] = os.pathsep.join((str(SRC_DIR), path))
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "garbage-collect", str(server.config_path)],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)

    driver = rados_driver(rados_params)

    async def present(digest: str) -> bool:
        try:
            await driver.stat(blob_data_path(digest))
        except PathNotFound:
            return False
        return True

    assert gone_blobs
    for digest in gone_blobs:
        assert not asyncio.run(present(digest)), digest
    for digest in layout_blobs(kept):
        assert asyncio.run(present(digest)), digest
    server.start()
    pulled = tmp_path / "pulled"
    copy(ref(server, kept_repo, "v1"), f"oci:{pulled}:v1", "--preserve-digests")
    assert layout_blobs(pulled) == layout_blobs(kept)


def test_a_frozen_osd_is_a_503_not_a_hang(
    tmp_path_factory: pytest.TempPathFactory, rados_registry_factory: RadosFactory
) -> None:
    """With the cluster's only OSD frozen (SIGSTOP), requests that need it fail after
    librados' operation timeout (3 s in this cluster's ceph.conf) with 503; once it
    thaws, the same requests succeed and nothing was lost."""
    cluster = CephCluster(
        tmp_path_factory.mktemp("ceph-outage"),
        client_conf="rados osd op timeout = 3\nrados mon op timeout = 3",
    )
    reason = ceph_unavailable()
    if reason is not None:
        pytest.skip(reason)
    cluster.start()
    try:
        params = {"poolname": cluster.pool, "conffile": str(cluster.conf)}
        server = rados_registry_factory(params)
        repo = random_repo("outage")
        data = blob(3 * MiB, seed=25)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            digest = push_blob(client, repo, data)
            osd = cluster.pid("osd.0")
            os.kill(osd, signal.SIGSTOP)
            try:
                frozen = client.get(blob_path(repo, digest))
                assert frozen.status_code == 503, frozen.text
                assert frozen.json()["errors"][0]["code"] == "UNAVAILABLE"
            finally:
                os.kill(osd, signal.SIGCONT)
            thawed = client.get(blob_path(repo, digest))
            assert thawed.status_code == 200 and thawed.content == data
            assert "Traceback" not in server.log_text()
    finally:
        cluster.stop()
