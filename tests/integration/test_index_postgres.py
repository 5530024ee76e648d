"""The metadata index on PostgreSQL (issue 12): the SQL index itself, then two dockyard
instances on one moto S3 bucket, one Redis and one PostgreSQL, each seeing the other's
pushes, tag moves and deletes at once in its listings."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from tests.support.api import TARGET, push_blob, random_repo
from tests.support.index import dockyard_command
from tests.support.manifests import image, put_manifest
from tests.support.postgres import PostgresServer
from tests.support.redis import RedisServer
from tests.unit.test_index_sql import catch_up, exercise

from dockyard.index import SqlIndex
from dockyard.index.postgres import PostgresDatabase
from dockyard.index.schema import MIGRATIONS

from .conftest import S3RegistryFactory

pytestmark = pytest.mark.skipif(TARGET == "distribution", reason="dockyard's index")


def test_the_sql_index_on_postgres(postgres_server: PostgresServer) -> None:
    dsn = postgres_server.dsn(postgres_server.database())
    asyncio.run(exercise(SqlIndex(PostgresDatabase(dsn, 2))))

    async def migrated_once() -> list[int]:
        # Instances starting together: each migration applied exactly once.
        indexes = [SqlIndex(PostgresDatabase(dsn, 1)) for _ in range(4)]
        try:
            await asyncio.gather(*(i.migrate() for i in indexes))
            rows = await indexes[0].db.fetch("SELECT version FROM schema_version")
            return [r[0] for r in rows]
        finally:
            for i in indexes:
                await i.aclose()

    assert asyncio.run(migrated_once()) == list(range(1, len(MIGRATIONS) + 1))


def test_a_kept_tag_list_catches_up_on_postgres(postgres_server: PostgresServer) -> None:
    """Another instance's tag pushes reach a kept list by the tags written since."""
    dsn = postgres_server.dsn(postgres_server.database())
    asyncio.run(catch_up(SqlIndex(PostgresDatabase(dsn, 2)), SqlIndex(PostgresDatabase(dsn, 2))))


def test_two_instances_share_one_postgres_index(
    s3_registry_factory: S3RegistryFactory,
    s3_bucket: str,
    redis_server: RedisServer,
    postgres_server: PostgresServer,
) -> None:
    dsn = postgres_server.dsn(postgres_server.database())
    shared = {
        "storage": {"index": {"driver": "postgres", "dsn": dsn, "poolsize": 4},
                    "cache": {"blobdescriptor": "redis"}, "delete": {"enabled": True}},
        "redis": {"addr": redis_server.addr},
    }
    one = s3_registry_factory(s3_bucket, overrides=shared)
    two = s3_registry_factory(s3_bucket, overrides=shared)
    with httpx.Client(base_url=one.url, timeout=60) as a, \
            httpx.Client(base_url=two.url, timeout=60) as b:
        repo, other = random_repo(), random_repo()
        first = image(a, repo, layers=2)
        put_manifest(a, repo, "v1", first)
        put_manifest(a, other, "latest", image(a, other))
        # Pushed on one: listed by the other at once.
        assert b.get("/v2/_catalog").json()["repositories"] == sorted([repo, other])
        assert b.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]
        usage = b.get(f"/dockyard/v1/repositories/{repo}").json()
        sizes = json.loads(first.body)
        assert usage["size"] == (sizes["config"]["size"] + first.size
                                 + sum(layer["size"] for layer in sizes["layers"]))
        # A tag moved on the other: seen by the first.
        second = image(b, repo)
        put_manifest(b, repo, "v1", second)
        put_manifest(b, repo, "v2", second)
        assert a.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1", "v2"]
        assert a.get(f"/v2/{repo}/manifests/v1",
                     headers={"Accept": second.media_type}).headers[
            "Docker-Content-Digest"] == second.digest
        # Deletes on the other: gone from the first's listings.
        assert b.delete(f"/v2/{repo}/manifests/v2").status_code == 202
        assert a.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]
        assert b.delete(f"/dockyard/v1/repositories/{other}").status_code == 202
        assert a.get("/v2/_catalog").json()["repositories"] == [repo]
        push_blob(a, repo, b"one more layer")
    verify = dockyard_command(one, "index", "verify", str(one.config_path), check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
