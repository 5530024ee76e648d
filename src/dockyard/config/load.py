"""Reading a configuration: the file (or the embedded default), the environment, validation."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace

import yaml

from dockyard.config.auth import read_auth
from dockyard.config.catalog import read_catalog
from dockyard.config.compatibility import read_compatibility
from dockyard.config.env import apply_env
from dockyard.config.health import read_health
from dockyard.config.http import read_http
from dockyard.config.immutabletags import read_immutabletags
from dockyard.config.log import read_log
from dockyard.config.middleware import read_middleware
from dockyard.config.model import Config
from dockyard.config.notifications import read_notifications
from dockyard.config.proxy import read_proxy
from dockyard.config.reader import YamlReader
from dockyard.config.redis import read_redis
from dockyard.config.retention import read_retention
from dockyard.config.section import Section
from dockyard.config.storage import read_storage
from dockyard.config.tree import ConfigError, Leaf, Map, describe, expand_type_name, fail, is_null
from dockyard.config.ui import read_ui
from dockyard.config.validation import read_validation

__all__ = ["load_config"]


SECRET_FILE = "http.secret"
"""The file, in the embedded default's storage root, that keeps its generated secret."""


def _build(root: Map, warnings: list[str], default: bool) -> Config:
    top = Section(root, (), warnings)
    version = top.raw("version")
    if version is None:
        raise ConfigError(
            'version: missing; a registry configuration starts with "version: 0.1"', "version"
        )
    if not isinstance(version, Leaf) or version.text != "0.1":
        raise fail(("version",), version, f"unsupported version {describe(version)}; expected 0.1")
    storage = read_storage(top.raw("storage"), warnings)
    http = read_http(top.section("http"))
    redis = read_redis(top.section("redis"))
    proxy = read_proxy(top.section("proxy"))
    if storage.cache.blob_descriptor == "redis" and not redis.addr:
        raise ConfigError(
            "storage.cache.blobdescriptor: the redis cache needs redis.addr",
            "storage.cache.blobdescriptor",
        )
    data = storage.parameters.get("rootdirectory") if storage.driver == "filesystem" else None
    if not http.secret and not proxy.remote_url:
        if default and data:
            # One registry on local disk: a secret kept with the data lets uploads
            # continue across restarts and workers without anyone having to set one.
            http = replace(http, secret_file=os.path.join(str(data), SECRET_FILE))
        else:
            warnings.append(
                "http.secret is not set: a random secret will be generated at start, so "
                "uploads fail when they move between registry instances or outlive a "
                "restart (several instances must set the same http.secret or "
                "REGISTRY_HTTP_SECRET)"
            )
    config = Config(
        log=read_log(top),
        storage=storage,
        http=http,
        auth=read_auth(top.raw("auth"), warnings),
        notifications=read_notifications(top.section("notifications")),
        redis=redis,
        proxy=proxy,
        health=read_health(top.section("health")),
        validation=read_validation(top.section("validation")),
        compatibility=read_compatibility(top.section("compatibility")),
        catalog=read_catalog(top.section("catalog")),
        ui=read_ui(top.section("ui")),
        immutabletags=read_immutabletags(top.raw("immutabletags"), warnings),
        retention=read_retention(top.section("retention")),
        middleware=read_middleware(top.raw("middleware"), warnings),
    )
    top.done()
    return config


def _default_document() -> str:
    """distribution's stock config.yml, with a local data folder and deletes off."""
    return yaml.safe_dump(
        {
            "version": "0.1",
            "log": {"fields": {"service": "registry"}},
            "storage": {
                "cache": {"blobdescriptor": "inmemory"},
                "filesystem": {"rootdirectory": os.path.abspath("registry-data")},
                "delete": {"enabled": False},
            },
            "http": {"addr": ":5000", "headers": {"X-Content-Type-Options": ["nosniff"]}},
            "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
        },
        sort_keys=False,
    )


def load_config(
    path: str | os.PathLike[str] | None,
    environ: Mapping[str, str] = os.environ,
) -> tuple[Config, list[str]]:
    """Read ``path`` (or the embedded default if None), apply ``environ``, validate.

    Returns the settings and the warnings to report at start (unknown and unsupported
    keys, a missing ``http.secret``...). Raises :class:`ConfigError` naming the key.
    Without ``http.secret``, the embedded default keeps a generated one in the storage
    root (``http.secret_file``) instead of warning.
    """
    warnings: list[str] = []
    if path is None:
        text, source = _default_document(), ""
    else:
        source = os.fspath(path)
        try:
            with open(source, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read the configuration: {exc}") from None
    tree = YamlReader(source, False, warnings).read(text)
    if tree is None or is_null(tree):
        tree = Map({}, "")
    if not isinstance(tree, Map):
        raise ConfigError(f"configuration: expected a mapping of sections, got {describe(tree)}")
    for key in ("storage", "auth"):  # so that overrides can reach into `storage: inmemory`
        if key in tree.items:
            tree.items[key] = expand_type_name(tree.items[key])
    apply_env(tree, environ, warnings)
    return _build(tree, warnings, default=path is None), warnings
