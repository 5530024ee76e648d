"""A real redis-server on a free loopback port for the cache tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.redis import RedisServer, find_redis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if find_redis() is None:
        pytest.fail("redis-server is not installed (scripts/install-test-deps installs it)")
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return f"redis://{redis_server.addr}"
