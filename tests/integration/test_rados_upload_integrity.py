"""Issue 8 on RADOS: replayed and racing upload tokens never store a wrong blob.

Two dockyard instances share one pool and namespace (the session's Ceph cluster); every
sequence ends by reading every file under ``blobs/`` back through the rados driver and
re-hashing it. The sequences are those of test_s3_upload_integrity.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tests.api.test_upload_integrity import A, B, C, on, patcher, race, two_chunks
from tests.integration.test_rados import (  # noqa: F401 (fixtures)
    RadosFactory,
    rados_params,
    rados_registry_factory,
)
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
from tests.support.ceph import rados_driver
from tests.support.redis import RedisServer

from dockyard.storage.drivers.base import PathNotFound

pytestmark = [pytest.mark.interop, pytest.mark.timeout(600)]

BLOBS = "/docker/registry/v2/blobs"


def assert_pool_blobs_consistent(params: dict[str, Any]) -> int:
    """Every file under blobs/ is ``<alg>/<hh>/<hex>/data`` holding exactly that content."""

    async def check() -> int:
        driver = rados_driver(params)
        count = 0
        try:
            infos = [i async for i in driver.walk(BLOBS) if not i.is_dir]
        except PathNotFound:
            return 0
        for info in infos:
            parts = info.path[len(BLOBS) + 1 :].split("/")
            assert len(parts) == 4 and parts[3] == "data", f"stray file under blobs/: {info.path}"
            algorithm, prefix, hexdigest, _ = parts
            assert prefix == hexdigest[:2], info.path
            h = hashlib.new(algorithm)
            async for piece in driver.reader(info.path):
                h.update(piece)
            assert h.hexdigest() == hexdigest, f"blob does not match its digest: {info.path}"
            count += 1
        await driver.aclose()
        return count

    return asyncio.run(check())


@pytest.fixture
def pair(
    rados_registry_factory: RadosFactory,  # noqa: F811
    rados_params: dict[str, Any],  # noqa: F811
) -> Iterator[list[httpx.Client]]:
    """Two instances on one namespace of the pool."""
    clients = [httpx.Client(base_url=rados_registry_factory(rados_params).url, timeout=120)
               for _ in range(2)]
    yield clients
    for client in clients:
        client.close()


def test_rewind_attack_across_instances(
    pair: list[httpx.Client], rados_params: dict[str, Any]  # noqa: F811
) -> None:
    """Rewind on one instance with an old token, commit on the other: refused, no lie."""
    one, other = pair
    repo = random_repo("radosrewind")
    _, at_a, _ = two_chunks(one, repo)
    longer = os.urandom(len(B) + 1000)
    response = patch_chunk(other, on(other, at_a), longer, start=len(A))
    assert_error(response, 416, "RANGE_INVALID")
    assert response.headers["Range"] == upload_range(len(A) + len(B))
    response = other.put(on(other, with_query(at_a, digest=digest_of(A + B))), content=longer)
    assert_error(response, 416, "RANGE_INVALID")
    status = other.get(on(other, at_a))
    assert status.status_code == 204 and status.headers["Range"] == upload_range(len(A) + len(B))
    location = follow(other, status.headers["Location"])
    response = one.put(on(one, with_query(location, digest=digest_of(A + B + C))), content=C)
    assert response.status_code == 201, response.text
    assert other.get(blob_path(repo, digest_of(A + B + C))).content == A + B + C
    assert one.head(blob_path(repo, digest_of(A + B))).status_code == 404
    assert assert_pool_blobs_consistent(rados_params) == 1


@pytest.mark.parametrize("locks", ["claims", "redis"])
def test_racing_patches_and_put_across_instances(
    locks: str,
    rados_registry_factory: RadosFactory,  # noqa: F811
    rados_params: dict[str, Any],  # noqa: F811
    client_factory: Callable[[Any], httpx.Client],
    request: pytest.FixtureRequest,
) -> None:
    """Chunks raced from both instances with one token, then a PATCH racing the PUT;
    the writers claim the upload in the pool, or hold Redis leases."""
    overrides: dict[str, Any] | None = None
    if locks == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        overrides = {"redis": {"addr": redis_server.addr}}
    one, other = (client_factory(rados_registry_factory(rados_params, overrides=overrides))
                  for _ in range(2))
    repo = random_repo("radosrace")
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
    final: Callable[[], httpx.Response] = lambda: other.put(  # noqa: E731
        on(other, with_query(location, digest=digest_of(committed + tail))), content=tail)
    patch, put = race([patcher(one, location, C, len(committed)), final])
    assert sorted([patch.status_code, put.status_code]) in (
        [201, 404], [201, 416], [202, 416], [416, 416])
    if put.status_code == 201:
        assert one.get(blob_path(repo, digest_of(committed + tail))).content == committed + tail
    else:
        assert one.head(blob_path(repo, digest_of(committed + tail))).status_code == 404
    assert assert_pool_blobs_consistent(rados_params) <= 1
