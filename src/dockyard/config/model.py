"""The whole configuration: one frozen dataclass per section, picklable for workers."""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.config.auth import AuthConfig
from dockyard.config.catalog import CatalogConfig
from dockyard.config.compatibility import CompatibilityConfig
from dockyard.config.health import HealthConfig
from dockyard.config.http import HTTPConfig
from dockyard.config.immutabletags import ImmutableTagsRuleConfig
from dockyard.config.log import LogConfig
from dockyard.config.middleware import MiddlewareConfig
from dockyard.config.notifications import NotificationsConfig
from dockyard.config.proxy import ProxyConfig
from dockyard.config.redis import RedisConfig
from dockyard.config.retention import RetentionConfig
from dockyard.config.storage import StorageConfig
from dockyard.config.ui import UIConfig
from dockyard.config.validation import ValidationConfig


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole configuration (``version`` is always ``"0.1"``)."""

    version: str = "0.1"
    log: LogConfig = field(default_factory=LogConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    http: HTTPConfig = field(default_factory=HTTPConfig)
    auth: AuthConfig | None = None
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    compatibility: CompatibilityConfig = field(default_factory=CompatibilityConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    ui: UIConfig = field(default_factory=UIConfig)
    immutabletags: tuple[ImmutableTagsRuleConfig, ...] = ()
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    middleware: MiddlewareConfig = field(default_factory=MiddlewareConfig)
