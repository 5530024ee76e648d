"""Two registry processes sharing one storage root and one real redis-server."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
from tests.support.redis import RedisServer
from tests.support.servers import RegistryProcess

Factory = Callable[..., RegistryProcess]


def _redis_keys(redis: RedisServer) -> list[bytes]:
    out = subprocess.run(
        ["redis-cli", "-p", str(redis.port), "--raw", "KEYS", "*"],
        capture_output=True, check=True, timeout=10,
    )
    return out.stdout.split()


def _push(url: str, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=url) as c:
        start = c.post(f"/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202
        done = c.put(start.headers["Location"], params={"digest": digest}, content=data)
        assert done.status_code == 201, done.text
    return digest


def _config(root: str, redis: RedisServer) -> dict[str, Any]:
    return {
        "storage": {
            "filesystem": {"rootdirectory": root},
            "cache": {"blobdescriptor": "redis"},
        },
        "redis": {"addr": redis.addr, "dialtimeout": "200ms", "readtimeout": "200ms"},
    }


def test_delete_on_one_instance_is_seen_by_the_other(
    registry_factory: Factory, redis_server: RedisServer, tmp_path: Any
) -> None:
    overrides = _config(str(tmp_path / "shared"), redis_server)
    a = registry_factory(overrides=overrides)
    b = registry_factory(overrides=overrides)
    data = os.urandom(4096)
    digest = _push(a.url, "cache/app", data)
    for server in (a, b):
        assert httpx.head(f"{server.url}/v2/cache/app/blobs/{digest}").status_code == 200
    keys = _redis_keys(redis_server)
    assert f"blobs::{digest}".encode() in keys
    assert b"repository::cache/app::blobs" in keys
    assert httpx.delete(f"{a.url}/v2/cache/app/blobs/{digest}").status_code == 202
    response = httpx.head(f"{b.url}/v2/cache/app/blobs/{digest}")
    assert response.status_code == 404


def test_registry_serves_while_redis_is_down_and_uses_it_again(
    registry_factory: Factory, redis_server: RedisServer, tmp_path: Any
) -> None:
    server = registry_factory(overrides=_config(str(tmp_path / "root"), redis_server))
    data = os.urandom(2048)
    digest = _push(server.url, "cache/down", data)
    redis_server.stop()
    pulled = httpx.get(f"{server.url}/v2/cache/down/blobs/{digest}")
    assert pulled.status_code == 200
    assert pulled.content == data
    second = _push(server.url, "cache/down", os.urandom(1024))
    assert httpx.head(f"{server.url}/v2/cache/down/blobs/{second}").status_code == 200
    assert "cache unavailable" in server.log_text()
    redis_server.start()
    assert httpx.head(f"{server.url}/v2/cache/down/blobs/{digest}").status_code == 200
    assert f"blobs::{digest}".encode() in _redis_keys(redis_server)
