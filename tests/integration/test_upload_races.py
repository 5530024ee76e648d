"""Racing requests on one upload across two instances, on every object store, with and
without Redis upload locks: at most one writer, the loser refused, no wrong blob.

Each round sends two PATCHes of different bytes at the same offset with the same token,
one to each instance, at once; then a PATCH races the final PUT. The blob that gets
committed is read back through the registry and must be exactly the winners' bytes.
With ``redis.addr`` the writers hold Redis leases (counted in Redis' command stats);
with Redis cut off, they fall back to storage claims and the commit re-hashes.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
from tests.api.test_upload_integrity import C, on, patcher, race
from tests.integration.conftest import S3RegistryFactory
from tests.integration.test_azure_gcs import Store, store  # noqa: F401 (fixtures)
from tests.integration.test_rados import (  # noqa: F401 (fixtures)
    RadosFactory,
    rados_params,
    rados_registry_factory,
)
from tests.integration.test_s3 import clients  # noqa: F401 (a fixture)
from tests.integration.test_s3_upload_integrity import (
    assert_bucket_blobs_consistent,
    race_patches_and_put,
)
from tests.support.api import (
    blob_path,
    digest_of,
    follow,
    patch_chunk,
    random_repo,
    start_upload,
    with_query,
)
from tests.support.azure_gcs import (  # noqa: F401 (fixtures)
    azure_registry_factory,
    azurite,
    fake_gcs,
    gcs_registry_factory,
)
from tests.support.backends import MotoServer, S3RegistryProcess, TcpProxy, s3_params
from tests.support.ceph import CephCluster, RadosFiles, RgwServer
from tests.support.layout import BucketFiles, StoredFiles, check_layout
from tests.support.redis import RedisServer

from dockyard.maintenance.purge import PurgeSummary, purge_uploads
from dockyard.storage.drivers.factory import create_driver

STREAMING = {"redirect": {"disable": True}}
NO_PURGING = {"maintenance": {"uploadpurging": {"enabled": False}}}
CHUNK = 200_000


def lock_calls(server: RedisServer) -> int:
    """EVALs run on ``server`` so far (each acquire, renewal and release is one)."""
    stats = redis.Redis(host="127.0.0.1", port=int(server.addr.rsplit(":", 1)[1]))
    try:
        return int(stats.info("commandstats").get("cmdstat_eval", {}).get("calls", 0))
    finally:
        stats.close()


def race_and_commit(one: httpx.Client, other: httpx.Client, rounds: int = 3) -> bytes | None:
    """``rounds`` offsets won by racing PATCHes, then a PATCH racing the final PUT.

    Returns the committed blob's bytes (None if the PATCH won and the PUT was refused).
    """
    repo = random_repo("race")
    location = start_upload(one, repo)
    committed = b""
    for _ in range(4 * rounds):
        bodies = [os.urandom(CHUNK) for _ in range(2)]
        responses = race([patcher(one, location, bodies[0], len(committed)),
                          patcher(other, location, bodies[1], len(committed))])
        codes = sorted(r.status_code for r in responses)
        assert codes in ([202, 416], [416, 416]), [(r.status_code, r.text) for r in responses]
        for body, response in zip(bodies, responses, strict=True):
            if response.status_code == 202:
                committed += body
                location = follow(one, response.headers["Location"])
        if len(committed) == rounds * CHUNK:
            break
    assert len(committed) == rounds * CHUNK, f"no racer won some offset in {4 * rounds} tries"
    tail = os.urandom(1000)
    blob = committed + tail
    final = lambda: other.put(  # noqa: E731
        on(other, with_query(location, digest=digest_of(blob))), content=tail)
    patch, put = race([patcher(one, location, C, len(committed)), final])
    assert sorted([patch.status_code, put.status_code]) in (
        [201, 404], [201, 416], [202, 416], [416, 416]), (patch.text, put.text)
    if put.status_code != 201:
        assert one.head(blob_path(repo, digest_of(blob))).status_code == 404
        return None
    for client in (one, other):
        got = client.get(blob_path(repo, digest_of(blob)))
        assert got.status_code == 200 and got.content == blob
    return blob


# -- S3 (moto) ------------------------------------------------------------------------------


@pytest.fixture
def s3_pair_with_redis(
    s3_registry_factory: S3RegistryFactory,
    s3_bucket: str,
    redis_server: RedisServer,
    clients: Callable[[S3RegistryProcess], httpx.Client],  # noqa: F811
) -> list[httpx.Client]:
    overrides = {"storage": {**STREAMING, **NO_PURGING}, "redis": {"addr": redis_server.addr}}
    return [clients(s3_registry_factory(s3_bucket, overrides=overrides)) for _ in range(2)]


def test_s3_races_with_redis_locks(
    s3_pair_with_redis: list[httpx.Client], moto_server: MotoServer, s3_bucket: str,
    redis_server: RedisServer,
) -> None:
    before = lock_calls(redis_server)
    for _ in range(2):
        blobs = assert_bucket_blobs_consistent(moto_server, s3_bucket)
        race_patches_and_put(s3_pair_with_redis, moto_server, s3_bucket, blobs)
    # Every writing request took and released a Redis lease.
    assert lock_calls(redis_server) - before >= 2 * 2 * 4
    assert assert_bucket_blobs_consistent(moto_server, s3_bucket) <= 2


def test_s3_redis_cut_off_falls_back_to_claims_and_rehashes(
    s3_registry_factory: S3RegistryFactory,
    s3_bucket: str,
    moto_server: MotoServer,
    redis_server: RedisServer,
    tcp_proxy_factory: Callable[[int], TcpProxy],
    clients: Callable[[S3RegistryProcess], httpx.Client],  # noqa: F811
) -> None:
    proxy = tcp_proxy_factory(int(redis_server.addr.rsplit(":", 1)[1]))
    overrides = {"storage": {**STREAMING, **NO_PURGING},
                 "redis": {"addr": f"127.0.0.1:{proxy.port}"}}
    servers = [s3_registry_factory(s3_bucket, overrides=overrides) for _ in range(2)]
    one, other = (clients(s) for s in servers)
    repo = random_repo("redisgone")
    location = start_upload(one, repo)
    first = os.urandom(CHUNK)
    response = patch_chunk(one, on(one, location), first, start=0)
    assert response.status_code == 202, response.text
    location = follow(one, response.headers["Location"])
    upload = location.split("/uploads/")[1].split("?")[0]
    proxy.cut()
    # Redis is gone: the racers claim the offset in storage instead, still one at a time.
    blob = first
    for _ in range(8):
        bodies = [os.urandom(CHUNK) for _ in range(2)]
        responses = race([patcher(one, location, bodies[0], len(blob)),
                          patcher(other, location, bodies[1], len(blob))])
        codes = sorted(r.status_code for r in responses)
        assert codes in ([202, 416], [416, 416]), [(r.status_code, r.text) for r in responses]
        won = [(b, r) for b, r in zip(bodies, responses, strict=True) if r.status_code == 202]
        if won:
            blob += won[0][0]
            location = follow(one, won[0][1].headers["Location"])
            break
    assert len(blob) == 2 * CHUNK, "no racer won in 8 rounds"
    # ... and mark the upload, so that its commit re-hashes the data.
    s3 = moto_server.client()
    tainted = f"docker/registry/v2/repositories/{repo}/_uploads/{upload}/tainted"
    s3.head_object(Bucket=s3_bucket, Key=tainted)
    proxy.restore()
    response = other.put(on(other, with_query(location, digest=digest_of(blob))))
    assert response.status_code == 201, response.text
    assert one.get(blob_path(repo, digest_of(blob))).content == blob
    assert assert_bucket_blobs_consistent(moto_server, s3_bucket) == 1
    for server in servers:
        assert "Traceback" not in server.log_text()


# -- Azure (Azurite) and GCS (fake-gcs-server) ------------------------------------------------


@pytest.mark.parametrize("locks", ["claims", "redis"])
def test_azure_gcs_races(
    store: Store,  # noqa: F811
    locks: str,
    client_factory: Callable[[Any], httpx.Client],
    request: pytest.FixtureRequest,
) -> None:
    overrides: dict[str, Any] = {"storage": {**STREAMING, **NO_PURGING}}
    if locks == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        overrides["redis"] = {"addr": redis_server.addr}
        before = lock_calls(redis_server)
    one, other = (client_factory(store.registry(store.params, overrides=overrides))
                  for _ in range(2))
    for _ in range(2):
        race_and_commit(one, other)  # a committed blob is read back from both instances
    if locks == "redis":
        assert lock_calls(redis_server) - before >= 2 * 4


# -- Ceph: radosgw (a real S3 server) and the RADOS driver -----------------------------------


@dataclass
class CephStore:
    """Where the racers write on the session's Ceph cluster: the files to check afterwards
    and ``registry(overrides)``, a new instance on the same bucket or namespace."""

    name: str
    files: StoredFiles
    registry: Callable[[dict[str, Any]], Any]


@pytest.fixture(params=["radosgw", "rados"])
def ceph_store(request: pytest.FixtureRequest, ceph_cluster: CephCluster) -> CephStore:
    """A fresh radosgw bucket (dockyard's s3 driver) or RADOS namespace (its rados driver)."""
    if request.param == "radosgw":
        rgw = RgwServer(ceph_cluster)
        bucket = rgw.create_bucket()
        s3_factory: S3RegistryFactory = request.getfixturevalue("s3_registry_factory")
        return CephStore("radosgw", BucketFiles(rgw.client(), bucket), lambda overrides:
                         s3_factory(bucket, endpoint=rgw.url, s3=rgw.credentials,
                                    overrides=overrides))
    params: dict[str, Any] = request.getfixturevalue("rados_params")
    rados_factory: RadosFactory = request.getfixturevalue("rados_registry_factory")
    return CephStore("rados", RadosFiles(params),
                     lambda overrides: rados_factory(params, overrides=overrides))


@pytest.mark.interop
@pytest.mark.parametrize("locks", ["claims", "redis"])
def test_ceph_races(
    ceph_store: CephStore,
    locks: str,
    client_factory: Callable[[Any], httpx.Client],
    request: pytest.FixtureRequest,
) -> None:
    """The races above on radosgw and on RADOS: every committed blob is read back from
    both instances, and afterwards every blob stored hashes to its path."""
    overrides: dict[str, Any] = {"storage": {**STREAMING, **NO_PURGING}}
    if locks == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        overrides["redis"] = {"addr": redis_server.addr}
        before = lock_calls(redis_server)
    one, other = (client_factory(ceph_store.registry(overrides)) for _ in range(2))
    committed = [race_and_commit(one, other) for _ in range(2)]
    if locks == "redis":
        assert lock_calls(redis_server) - before >= 2 * 4
    report = check_layout(ceph_store.files)
    assert report.problems == []
    assert report.blobs == sum(blob is not None for blob in committed)


# -- upload purging never aborts a live upload's writes --------------------------------------


def test_purge_keeps_the_multipart_upload_of_a_live_upload(
    moto_server: MotoServer, s3_bucket: str
) -> None:
    """moto dates every multipart upload 2010: by its date, a live upload's chunk looks a
    decade stale. Purging judges uploads by their startedat instead (the cause of a racing
    test's rare 404: the server's purge aborted the upload's data under it)."""
    root = "/docker/registry/v2/repositories/r/_uploads"
    s3 = moto_server.client()

    def mpu_keys() -> set[str]:
        listed = s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
        return {u["Key"] for u in listed}

    async def run() -> PurgeSummary:
        driver = create_driver("s3", s3_params(moto_server.url, s3_bucket))
        try:
            now = datetime.now(UTC)
            await driver.put_content(f"{root}/live/startedat",
                                     now.strftime("%Y-%m-%dT%H:%M:%SZ").encode())
            for path in (f"{root}/live/data", f"{root}/gone/data", "/docker/stray"):
                writer = await driver.writer(path, 0)
                await writer.write(os.urandom(1000))
                await writer.close()  # an in-progress multipart upload, dated 2010
            assert mpu_keys() == {"docker/registry/v2/repositories/r/_uploads/live/data",
                                  "docker/registry/v2/repositories/r/_uploads/gone/data",
                                  "docker/stray"}
            return await purge_uploads(driver, older_than=7 * 24 * 3600.0)
        finally:
            await driver.aclose()

    summary = asyncio.run(run())
    assert mpu_keys() == {"docker/registry/v2/repositories/r/_uploads/live/data"}
    assert summary.errors == 0


def settled(moto: MotoServer) -> None:
    """Wait until moto's log stops growing (it is written after each response)."""
    size, deadline = moto.log_size(), time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if moto.log_size() == size:
            return
        size = moto.log_size()


def test_redis_lease_saves_the_claims_s3_requests(
    s3_registry_factory: S3RegistryFactory,
    moto_server: MotoServer,
    redis_server: RedisServer,
    clients: Callable[[S3RegistryProcess], httpx.Client],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """S3 requests of one PATCH (moto's log): a claim costs a PUT, a list and a DELETE."""
    counts: dict[str, list[str]] = {}
    for locks in ("claims", "redis"):
        bucket = moto_server.create_bucket()
        overrides: dict[str, Any] = {"storage": NO_PURGING}
        if locks == "redis":
            overrides["redis"] = {"addr": redis_server.addr}
        client = clients(s3_registry_factory(bucket, overrides=overrides))
        location = start_upload(client, random_repo("count"))
        response = patch_chunk(client, on(client, location), os.urandom(CHUNK), start=0)
        location = follow(client, response.headers["Location"])
        mark = moto_server.log_size()
        response = patch_chunk(client, on(client, location), os.urandom(CHUNK), start=CHUNK)
        assert response.status_code == 202, response.text
        settled(moto_server)
        counts[locks] = [f"{m} {p.split('?')[0].rsplit('/', 1)[-1]}"
                         for m, p, _ in moto_server.requests(mark) if p.startswith(f"/{bucket}")]
    with capsys.disabled():
        for locks, requests in counts.items():
            listed = ", ".join(requests)
            print(f"\n  S3 requests of a PATCH with {locks}: {len(requests)} ({listed})")
    assert len(counts["redis"]) <= len(counts["claims"]) - 3
