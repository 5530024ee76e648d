"""``redis``: the connection of the ``redis`` blob descriptor cache and of upload locks."""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.config.section import Section


@dataclass(frozen=True, kw_only=True)
class RedisPoolConfig:
    """``redis.pool``; zeros mean the client's defaults."""

    max_idle: int = 0
    max_active: int = 0
    idle_timeout: float = 0.0


@dataclass(frozen=True, kw_only=True)
class RedisTLSConfig:
    """``redis.tls``."""

    enabled: bool = False


@dataclass(frozen=True, kw_only=True)
class RedisConfig:
    """``redis``: unused when ``addr`` is empty; zero timeouts mean the client's defaults."""

    addr: str = ""
    password: str = ""
    db: int = 0
    dial_timeout: float = 0.0
    read_timeout: float = 0.0
    write_timeout: float = 0.0
    pool: RedisPoolConfig = field(default_factory=RedisPoolConfig)
    tls: RedisTLSConfig = field(default_factory=RedisTLSConfig)


def read_redis(s: Section) -> RedisConfig:
    """The validated ``redis`` section; unknown keys become warnings."""
    pool = s.section("pool")
    tls = s.section("tls")
    result = RedisConfig(
        addr=s.address("addr"),
        password=s.text("password"),
        db=s.integer("db"),
        dial_timeout=s.duration("dialtimeout", 0.0),
        read_timeout=s.duration("readtimeout", 0.0),
        write_timeout=s.duration("writetimeout", 0.0),
        pool=RedisPoolConfig(
            max_idle=pool.integer("maxidle"),
            max_active=pool.integer("maxactive"),
            idle_timeout=pool.duration("idletimeout", 0.0),
        ),
        tls=RedisTLSConfig(enabled=tls.flag("enabled")),
    )
    for section in (pool, tls, s):
        section.done()
    return result
