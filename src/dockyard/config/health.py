"""``health``: storage driver, file, HTTP and TCP checkers."""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.config.section import Headers, Section


@dataclass(frozen=True, kw_only=True)
class StorageDriverCheckerConfig:
    """``health.storagedriver``; threshold 0 or 1: unhealthy on the first failure."""

    enabled: bool = False
    interval: float = 10.0
    threshold: int = 0


@dataclass(frozen=True, kw_only=True)
class FileCheckerConfig:
    """One of ``health.file``: unhealthy while ``file`` exists."""

    file: str
    interval: float = 10.0
    threshold: int = 0


@dataclass(frozen=True, kw_only=True)
class HTTPCheckerConfig:
    """One of ``health.http``: unhealthy unless ``uri`` answers ``status_code``."""

    uri: str
    headers: Headers = field(default_factory=dict)
    status_code: int = 200
    timeout: float = 0.0
    """Seconds; 0 means no timeout."""
    interval: float = 10.0
    threshold: int = 0


@dataclass(frozen=True, kw_only=True)
class TCPCheckerConfig:
    """One of ``health.tcp``: unhealthy unless ``addr`` accepts connections."""

    addr: str
    timeout: float = 0.0
    interval: float = 10.0
    threshold: int = 0


@dataclass(frozen=True, kw_only=True)
class HealthConfig:
    """``health``."""

    storage_driver: StorageDriverCheckerConfig = field(default_factory=StorageDriverCheckerConfig)
    file_checkers: tuple[FileCheckerConfig, ...] = ()
    http_checkers: tuple[HTTPCheckerConfig, ...] = ()
    tcp_checkers: tuple[TCPCheckerConfig, ...] = ()


def read_health(s: Section) -> HealthConfig:
    """The validated ``health`` section; unknown keys become warnings."""
    sd = s.section("storagedriver")
    files, https, tcps = [], [], []
    for c in s.sequence("file"):
        files.append(
            FileCheckerConfig(
                file=c.required("file"),
                interval=c.duration("interval", 0.0) or 10.0,
                threshold=c.integer("threshold"),
            )
        )
        c.done()
    for c in s.sequence("http"):
        https.append(
            HTTPCheckerConfig(
                uri=c.url("uri", required=True),
                headers=c.headers("headers"),
                status_code=c.integer("statuscode") or 200,
                timeout=c.duration("timeout", 0.0),
                interval=c.duration("interval", 0.0) or 10.0,
                threshold=c.integer("threshold"),
            )
        )
        c.done()
    for c in s.sequence("tcp"):
        tcps.append(
            TCPCheckerConfig(
                addr=c.address("addr", required=True),
                timeout=c.duration("timeout", 0.0),
                interval=c.duration("interval", 0.0) or 10.0,
                threshold=c.integer("threshold"),
            )
        )
        c.done()
    result = HealthConfig(
        storage_driver=StorageDriverCheckerConfig(
            enabled=sd.flag("enabled"),
            interval=sd.duration("interval", 0.0) or 10.0,
            threshold=sd.integer("threshold"),
        ),
        file_checkers=tuple(files),
        http_checkers=tuple(https),
        tcp_checkers=tuple(tcps),
    )
    sd.done()
    s.done()
    return result
