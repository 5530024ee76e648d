"""Issue 8 on S3 (moto's server): replayed and racing upload tokens never store a wrong blob.

Two dockyard instances share one bucket; every sequence ends by downloading every
object under ``blobs/`` from the S3 server and re-hashing it. The racing test runs on
moto and on radosgw, with storage claims and with Redis leases.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tests.api.test_upload_integrity import A, B, C, on, patcher, race, two_chunks
from tests.integration.conftest import S3RegistryFactory
from tests.integration.test_s3 import bucket_keys, clients  # noqa: F401 (a fixture)
from tests.support.api import (
    assert_error,
    blob_path,
    digest_of,
    follow,
    patch_chunk,
    random_repo,
    start_upload,
    upload_range,
    with_query,
)
from tests.support.backends import MotoServer, S3RegistryProcess
from tests.support.ceph import RgwServer
from tests.support.redis import RedisServer

BLOBS = "docker/registry/v2/blobs/"


def assert_bucket_blobs_consistent(moto: MotoServer | RgwServer, bucket: str) -> int:
    """Every object under blobs/ is ``<alg>/<hh>/<hex>/data`` holding exactly that content."""
    s3 = moto.client()
    count = 0
    for key in bucket_keys(moto, bucket, BLOBS):
        parts = key[len(BLOBS):].split("/")
        assert len(parts) == 4 and parts[3] == "data", f"stray object under blobs/: {key}"
        algorithm, prefix, hexdigest, _ = parts
        assert prefix == hexdigest[:2], key
        h = hashlib.new(algorithm)
        for piece in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(1 << 20):
            h.update(piece)
        assert h.hexdigest() == hexdigest, f"blob does not match its digest: {key}"
        count += 1
    return count


@pytest.fixture
def pair(
    s3_registry_factory: S3RegistryFactory,
    s3_bucket: str,
    clients: Callable[[S3RegistryProcess], httpx.Client],  # noqa: F811
) -> list[httpx.Client]:
    """Two instances on one bucket (blob GETs streamed, so they can be compared)."""
    streaming = {"storage": {"redirect": {"disable": True}}}
    return [clients(s3_registry_factory(s3_bucket, overrides=streaming)) for _ in range(2)]


def test_rewind_attack_across_instances(
    pair: list[httpx.Client], moto_server: MotoServer, s3_bucket: str
) -> None:
    """Rewind on one instance with an old token, commit on the other: refused, no lie."""
    one, other = pair
    repo = random_repo("s3rewind")
    _, at_a, _ = two_chunks(one, repo)
    longer = os.urandom(len(B) + 1000)
    response = patch_chunk(other, on(other, at_a), longer, start=len(A))
    assert_error(response, 416, "RANGE_INVALID")
    assert response.headers["Range"] == upload_range(len(A) + len(B))
    response = other.put(on(other, with_query(at_a, digest=digest_of(A + B))), content=longer)
    assert_error(response, 416, "RANGE_INVALID")
    # GET on the stale Location: the real progress, and a Location that continues.
    status = other.get(on(other, at_a))
    assert status.status_code == 204 and status.headers["Range"] == upload_range(len(A) + len(B))
    location = follow(other, status.headers["Location"])
    response = one.put(on(one, with_query(location, digest=digest_of(A + B + C))), content=C)
    assert response.status_code == 201, response.text
    assert other.get(blob_path(repo, digest_of(A + B + C))).content == A + B + C
    assert one.head(blob_path(repo, digest_of(A + B))).status_code == 404
    assert assert_bucket_blobs_consistent(moto_server, s3_bucket) == 1


@pytest.mark.parametrize("locks", ["claims", "redis"])
def test_racing_patches_and_put_across_instances(
    s3_server: MotoServer | RgwServer,
    locks: str,
    s3_registry_factory: S3RegistryFactory,
    clients: Callable[[S3RegistryProcess], httpx.Client],  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    """Chunks raced from both instances with one token, then a PATCH racing the PUT."""
    bucket = s3_server.create_bucket()
    overrides: dict[str, Any] = {"storage": {"redirect": {"disable": True}}}
    if locks == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        overrides["redis"] = {"addr": redis_server.addr}
    pair = [clients(s3_registry_factory(bucket, endpoint=s3_server.url,
                                        s3=s3_server.credentials, overrides=overrides))
            for _ in range(2)]
    race_patches_and_put(pair, s3_server, bucket)


def race_patches_and_put(pair: list[httpx.Client], moto_server: MotoServer | RgwServer,
                         s3_bucket: str, blobs_before: int = 0) -> None:
    one, other = pair
    repo = random_repo("s3race")
    location = start_upload(one, repo)
    committed = b""
    for _ in range(12):
        bodies = [os.urandom(200_000) for _ in range(2)]
        responses = race([patcher(one, location, bodies[0], len(committed)),
                          patcher(other, location, bodies[1], len(committed))])
        codes = sorted(r.status_code for r in responses)
        assert codes in ([202, 416], [416, 416]), [(r.status_code, r.text) for r in responses]
        for body, response in zip(bodies, responses, strict=True):
            if response.status_code == 202:
                committed += body
                location = follow(one, response.headers["Location"])
        if len(committed) == 3 * 200_000:
            break
    assert len(committed) == 3 * 200_000, "no racer won some offset in 12 rounds"
    tail = os.urandom(1000)
    final = lambda: other.put(  # noqa: E731
        on(other, with_query(location, digest=digest_of(committed + tail))), content=tail)
    patch, put = race([patcher(one, location, C, len(committed)), final])
    # 404: the PUT finished before the PATCH began.
    assert sorted([patch.status_code, put.status_code]) in (
        [201, 404], [201, 416], [202, 416], [416, 416])
    if put.status_code == 201:
        assert one.get(blob_path(repo, digest_of(committed + tail))).content == committed + tail
    else:
        assert one.head(blob_path(repo, digest_of(committed + tail))).status_code == 404
    assert assert_bucket_blobs_consistent(moto_server, s3_bucket) <= blobs_before + 1
