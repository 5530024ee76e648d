"""Blob descriptors in Redis, in distribution's own key layout (shareable with it).

Keys::

    blobs::<digest>                          hash: digest, size, mediatype
    repository::<name>::blobs                set of digests linked in <name>
    repository::<name>::blobs::<digest>      hash: mediatype (repository override)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from dockyard.cache.base import CacheFailure
from dockyard.digest import Digest, InvalidDigest
from dockyard.types import BLOB_MEDIA_TYPE, BlobDescriptor

__all__ = ["RedisCache"]


def _global_key(digest: Digest) -> str:
    return f"blobs::{digest}"


def _repo_set_key(repository: str) -> str:
    return f"repository::{repository}::blobs"


def _repo_desc_key(repository: str, digest: Digest) -> str:
    return f"repository::{repository}::blobs::{digest}"


def _descriptor(results: list[Any], scoped: bool) -> BlobDescriptor | None:
    """The descriptor one lookup found: ``[linked, media type override]`` of a
    repository (when ``scoped``), then the global hash's fields."""
    fields = results[-1]
    if scoped and not results[0]:
        return None
    if fields[0] is None or fields[1] is None:
        return None
    try:
        cached = Digest.parse(fields[0].decode())
        size = int(fields[1])
    except (InvalidDigest, ValueError, UnicodeDecodeError):
        return None
    media_type = (results[1] if scoped else None) or fields[2]
    return BlobDescriptor(cached, size, media_type.decode() if media_type else BLOB_MEDIA_TYPE)


class RedisCache:
    """A cache every instance shares, so a delete on one is seen by all."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    @classmethod
    def from_settings(
        cls,
        addr: str,
        *,
        password: str = "",
        db: int = 0,
        dial_timeout: float = 0.0,
        read_timeout: float = 0.0,
        write_timeout: float = 0.0,
        max_connections: int = 0,
        tls: bool = False,
    ) -> RedisCache:
        host, _, port = addr.rpartition(":")
        options: dict[str, Any] = {
            "host": host.strip("[]") or "localhost",
            "port": int(port or 6379),
            "db": db,
            "password": password or None,
            "socket_connect_timeout": dial_timeout or 1.0,
            "socket_timeout": max(read_timeout, write_timeout) or 1.0,
            "ssl": tls,
            # Fail fast: a slow or absent cache must not slow requests down.
            "retry": None,
        }
        if max_connections:
            options["max_connections"] = max_connections
        return cls(aioredis.Redis(**options))

    async def get(self, repository: str | None, digest: Digest) -> BlobDescriptor | None:
        return (await self.get_many(repository, [digest]))[0]

    async def get_many(
        self, repository: str | None, digests: Sequence[Digest]
    ) -> list[BlobDescriptor | None]:
        """Every lookup in one pipeline: one round trip for a manifest's fifty layers."""
        if not digests:
            return []
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for digest in digests:
                    if repository is not None:
                        pipe.sismember(_repo_set_key(repository), str(digest))
                        pipe.hget(_repo_desc_key(repository, digest), "mediatype")
                    pipe.hmget(_global_key(digest), "digest", "size", "mediatype")
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise CacheFailure(str(exc)) from exc
        step = 1 if repository is None else 3
        return [_descriptor(results[i : i + step], repository is not None)
                for i in range(0, len(results), step)]

    async def set(self, repository: str | None, desc: BlobDescriptor) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hset(
                    _global_key(desc.digest),
                    mapping={"digest": str(desc.digest), "size": desc.size,
                             "mediatype": desc.media_type},
                )
                if repository is not None:
                    pipe.sadd(_repo_set_key(repository), str(desc.digest))
                    pipe.hset(_repo_desc_key(repository, desc.digest), "mediatype",
                              desc.media_type)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise CacheFailure(str(exc)) from exc

    async def clear(self, repository: str | None, digest: Digest) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                if repository is None:
                    pipe.delete(_global_key(digest))
                else:
                    pipe.srem(_repo_set_key(repository), str(digest))
                    pipe.delete(_repo_desc_key(repository, digest))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise CacheFailure(str(exc)) from exc
