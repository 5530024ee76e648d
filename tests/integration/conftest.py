"""Backend servers on loopback for the integration tests.

``moto_server`` (session): moto's standalone S3 server (``moto[server]``); tests make
their own bucket with ``moto_server.create_bucket()`` or use ``s3_bucket``.
``redis_server`` (session): ``redis-server`` with no persistence, for the Redis cache tests.
``postgres_server`` (session): a private PostgreSQL cluster, for the shared metadata index.
``s3_registry_factory``: dockyard (or docker-registry) processes on S3.
``s3_server``: moto's server, then Ceph's radosgw (a real S3 implementation) on the
session's Ceph cluster (``ceph_cluster``, tests/support/ceph.py): tests that take it run
on both. Both have ``url``, ``client()``, ``create_bucket()`` and ``credentials`` (the
``storage.s3`` keys to pass as ``s3=`` to ``s3_registry_factory``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from tests.support.backends import (
    MotoServer,
    S3RegistryProcess,
    TcpProxy,
    s3_params,
    shared_moto,
)
from tests.support.ceph import RgwServer, ceph_cluster
from tests.support.net import ServerPool
from tests.support.postgres import PostgresServer, find_postgres
from tests.support.redis import RedisServer
from tests.support.servers import DISTRIBUTION_BINARY, Kind

S3RegistryFactory = Callable[..., S3RegistryProcess]


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> MotoServer:
    """moto's S3 server on 127.0.0.1 (one per test process, stopped at exit)."""
    return shared_moto(tmp_path_factory.mktemp("moto"))


__all__ = ["ceph_cluster"]  # the session's Ceph cluster, a fixture here too


@pytest.fixture(params=["moto", "radosgw"])
def s3_server(request: pytest.FixtureRequest) -> MotoServer | RgwServer:
    """moto's S3 server, or radosgw (skipped, reason printed, where Ceph is missing)."""
    if request.param == "moto":
        server: MotoServer = request.getfixturevalue("moto_server")
        return server
    return RgwServer(request.getfixturevalue("ceph_cluster"))


@pytest.fixture
def s3_bucket(moto_server: MotoServer) -> str:
    """A new, empty bucket on the moto server."""
    return moto_server.create_bucket()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """redis-server on 127.0.0.1 (``.addr``, ``.url``), no persistence."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster (initdb in a temp dir, a free port), stopped and
    removed at the end; ``.database()`` makes a fresh database, ``.dsn(name)`` names it."""
    if find_postgres() is None:
        pytest.fail("PostgreSQL is not installed (scripts/install-test-deps installs it)")
    with PostgresServer(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture
def tcp_proxy_factory() -> Iterator[Callable[[int], TcpProxy]]:
    """``tcp_proxy_factory(port)``: a started proxy to 127.0.0.1:port that can be cut."""
    with ServerPool[TcpProxy]() as pool:
        yield lambda port: pool.add(TcpProxy(port))


@pytest.fixture
def s3_registry_factory(
    tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer, registry_secret: str
) -> Iterator[S3RegistryFactory]:
    """``factory(bucket, *, kind="dockyard", endpoint=None, s3={...}, overrides={...},
    start=True)``: a registry process on ``storage.s3`` (moto unless ``endpoint``),
    sharing the session's ``http.secret``. All are stopped at teardown."""
    with ServerPool[S3RegistryProcess]() as pool:

        def factory(
            bucket: str,
            *,
            kind: Kind = "dockyard",
            endpoint: str | None = None,
            s3: Mapping[str, Any] | None = None,
            overrides: Mapping[str, Any] | None = None,
            start: bool = True,
        ) -> S3RegistryProcess:
            if kind == "distribution" and not Path(DISTRIBUTION_BINARY).exists():
                pytest.fail(f"{DISTRIBUTION_BINARY} is missing: apt-get install -y docker-registry")
            params = s3_params(endpoint or moto_server.url, bucket, **dict(s3 or {}))
            server = S3RegistryProcess(
                tmp_path_factory.mktemp(f"{kind}-s3"), kind=kind, s3=params,
                secret=registry_secret, overrides=overrides,
            )
            return pool.add(server, start=start)

        yield factory
