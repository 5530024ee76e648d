"""Tests for dockyard.config: distribution's config.yml and REGISTRY_* overrides."""

from __future__ import annotations

import dataclasses
import os
import pickle
import textwrap
from pathlib import Path

import pytest

from dockyard.config import (
    Config,
    ConfigError,
    HtpasswdAuthConfig,
    HTTPLimitsConfig,
    SillyAuthConfig,
    TokenAuthConfig,
    UnknownKeyWarning,
    load_config,
    parse_duration,
    split_host_port,
)

# Debian's /etc/docker/registry/config.yml (docker-registry 2.8.2+ds1), verbatim.
DEBIAN_CONFIG = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/docker-registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: basic-realm
    path: /etc/docker/registry
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""

BASE = """\
version: 0.1
storage:
  inmemory:
http:
  secret: s3cr3t
"""


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> tuple[Config, list[str]]:
    path = tmp_path / "config.yml"
    path.write_text(textwrap.dedent(text))
    return load_config(path, env or {})


def with_base(tmp_path: Path, extra: str, env: dict[str, str] | None = None) -> Config:
    """BASE plus ``extra`` (top-level sections other than storage/http); no warnings."""
    config, warnings = load(tmp_path, BASE + textwrap.dedent(extra), env)
    assert warnings == []
    return config


def error(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, env)
    return str(info.value)


# --- the embedded default and Debian's stock file -----------------------------------


def test_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config, warnings = load_config(None, {})
    assert config.storage.driver == "filesystem"
    assert config.storage.parameters == {"rootdirectory": str(tmp_path / "registry-data")}
    assert os.path.isabs(config.storage.parameters["rootdirectory"])
    assert config.storage.cache.blob_descriptor == "inmemory"
    assert config.storage.delete.enabled is False
    assert config.http.addr == ":5000"
    assert config.http.net == "tcp"
    assert config.http.workers is None  # the server runs one worker per CPU
    assert config.auth is None
    assert config.log.level == "info"
    # No warning about http.secret: the server keeps a generated one with the data.
    assert warnings == []
    assert config.http.secret == ""
    assert config.http.secret_file == str(tmp_path / "registry-data" / "http.secret")


def test_default_without_filesystem_warns_about_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config, warnings = load_config(None, {"REGISTRY_STORAGE": "inmemory"})
    assert config.http.secret_file == ""
    assert len(warnings) == 1 and warnings[0].startswith("http.secret is not set")
    config, warnings = load_config(None, {"REGISTRY_HTTP_SECRET": "s"})
    assert (config.http.secret, config.http.secret_file, warnings) == ("s", "", [])


def test_a_config_file_without_secret_keeps_nothing(tmp_path: Path) -> None:
    config, warnings = load(
        tmp_path, f"version: 0.1\nstorage: {{filesystem: {{rootdirectory: {tmp_path}}}}}\n"
    )
    assert config.http.secret_file == ""
    assert len(warnings) == 1
    assert "several instances must set the same http.secret" in warnings[0]


def test_default_takes_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config, warnings = load_config(
        None, {"REGISTRY_HTTP_ADDR": "127.0.0.1:5001", "REGISTRY_HTTP_SECRET": "x"}
    )
    assert config.http.addr == "127.0.0.1:5001"
    assert warnings == []


def test_default_uses_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REGISTRY_LOG_LEVEL", "debug")
    config, _ = load_config(None)
    assert config.log.level == "debug"


def test_debian_stock_config(tmp_path: Path) -> None:
    config, warnings = load(tmp_path, DEBIAN_CONFIG)
    assert config.version == "0.1"
    assert config.log.fields == {"service": "registry"}
    assert config.storage.driver == "filesystem"
    assert config.storage.parameters == {"rootdirectory": "/var/lib/docker-registry"}
    assert config.storage.cache.blob_descriptor == "inmemory"
    assert config.storage.delete.enabled is True
    assert config.http.addr == ":5000"
    assert config.http.headers == {"X-Content-Type-Options": ("nosniff",)}
    assert config.auth == HtpasswdAuthConfig(realm="basic-realm", path="/etc/docker/registry")
    assert config.health.storage_driver.enabled is True
    assert config.health.storage_driver.interval == 10.0
    assert config.health.storage_driver.threshold == 3
    assert len(warnings) == 1 and warnings[0].startswith("http.secret is not set")


def test_installed_debian_config_if_present() -> None:
    path = Path("/etc/docker/registry/config.yml")
    if not path.exists():
        pytest.skip("docker-registry is not installed")
    config, _ = load_config(path, {})
    assert config.storage.driver


def test_dataclass_defaults() -> None:
    config = Config()
    assert config.storage.driver == "inmemory"
    assert config.http.addr == ":5000"
    assert config.storage.maintenance.upload_purging.age == 168 * 3600
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.http.addr = ":1"  # type: ignore[misc]


def test_picklable_for_worker_processes(tmp_path: Path) -> None:
    config = with_base(
        tmp_path, "validation:\n  manifests:\n    urls:\n      allow: ['^https://']\n"
    )
    assert pickle.loads(pickle.dumps(config)) == config


# --- each section --------------------------------------------------------------------


def test_log(tmp_path: Path) -> None:
    config = with_base(
        tmp_path,
        """
        log:
          level: DEBUG
          formatter: json
          fields: {service: registry, environment: staging}
          accesslog:
            disabled: true
        """,
    )
    assert config.log.level == "debug"
    assert config.log.formatter == "json"
    assert config.log.fields == {"service": "registry", "environment": "staging"}
    assert config.log.access_log.disabled is True


def test_deprecated_loglevel(tmp_path: Path) -> None:
    config, warnings = load(tmp_path, BASE + "loglevel: warn\n")
    assert config.log.level == "warn"
    assert any('"loglevel" is deprecated' in w for w in warnings)
    config, _ = load(tmp_path, BASE + "loglevel: warn\nlog:\n  level: error\n")
    assert config.log.level == "error"


def test_storage_sections(tmp_path: Path) -> None:
    config, warnings = load(
        tmp_path,
        """\
        version: 0.1
        http: {secret: x}
        storage:
          s3:
            region: us-east-1
            regionEndpoint: http://127.0.0.1:9000
            bucket: registry
            secure: false
            frobnicate: 1
          delete: {enabled: true}
          redirect: {disable: true}
          cache:
            blobdescriptor: redis
            blobdescriptorsize: 5000
          maintenance:
            uploadpurging:
              enabled: false
              age: 1h30m
              interval: 30m
              dryrun: true
            readonly:
              enabled: true
          tag:
            concurrencylimit: 8
        redis:
          addr: localhost:6379
        """,
    )
    assert warnings == []  # driver parameters are free-form: frobnicate is the driver's business
    s = config.storage
    assert s.driver == "s3"
    assert s.parameters == {
        "region": "us-east-1",
        "regionendpoint": "http://127.0.0.1:9000",
        "bucket": "registry",
        "secure": False,
        "frobnicate": 1,
    }
    assert s.delete.enabled and s.redirect.disable
    assert s.cache.blob_descriptor == "redis" and s.cache.blob_descriptor_size == 5000
    purging = s.maintenance.upload_purging
    assert (purging.enabled, purging.age, purging.interval, purging.dry_run) == (
        False,
        5400.0,
        1800.0,
        True,
    )
    assert s.maintenance.read_only.enabled is True
    assert s.tag.concurrency_limit == 8


def test_storage_defaults(tmp_path: Path) -> None:
    s = with_base(tmp_path, "").storage
    assert s.driver == "inmemory" and s.parameters == {}
    assert s.cache.blob_descriptor == "" and s.cache.blob_descriptor_size == 10000
    purging = s.maintenance.upload_purging
    assert (purging.enabled, purging.age, purging.interval, purging.dry_run) == (
        True,
        604800.0,
        86400.0,
        False,
    )
    assert not s.delete.enabled and not s.redirect.disable and not s.maintenance.read_only.enabled


@pytest.mark.parametrize("driver", ["filesystem", "inmemory", "s3", "azure", "gcs"])
def test_every_driver_name(tmp_path: Path, driver: str) -> None:
    config, _ = load(tmp_path, f"version: 0.1\nstorage:\n  {driver}:\n    a: 1\n")
    assert config.storage.driver == driver and config.storage.parameters == {"a": 1}


def test_storage_driver_as_scalar(tmp_path: Path) -> None:
    config, _ = load(tmp_path, "version: 0.1\nstorage: inmemory\n")
    assert config.storage.driver == "inmemory" and config.storage.parameters == {}
    config, _ = load(
        tmp_path,
        "version: 0.1\nstorage: inmemory\nauth: silly\n",
        {
            "REGISTRY_STORAGE_DELETE_ENABLED": "true",
            "REGISTRY_AUTH_SILLY_REALM": "r",
            "REGISTRY_AUTH_SILLY_SERVICE": "s",
        },
    )
    assert config.storage.driver == "inmemory" and config.storage.delete.enabled
    assert config.auth == SillyAuthConfig(realm="r", service="s")


def test_storage_cache_quirks(tmp_path: Path) -> None:
    config, _ = load(
        tmp_path, "version: 0.1\nstorage:\n  inmemory:\n  cache:\n    layerinfo: inmemory\n"
    )
    assert config.storage.cache.blob_descriptor == "inmemory"  # the pre-2.0 name
    config, _ = load(
        tmp_path,
        "version: 0.1\nstorage:\n  inmemory:\n  cache:\n"
        "    blobdescriptor: inmemory\n    blobdescriptorsize: '500'\n",
    )
    assert config.storage.cache.blob_descriptor_size == 500
    config, warnings = load(
        tmp_path, "version: 0.1\nstorage:\n  inmemory:\n  cache:\n    blobdescriptor: memcached\n"
    )
    assert config.storage.cache.blob_descriptor == ""
    assert any("unknown cache type 'memcached'" in w for w in warnings)


def test_http(tmp_path: Path) -> None:
    config, warnings = load(
        tmp_path,
        """\
        version: 0.1
        storage: {inmemory: {}}
        http:
          addr: "[::1]:5001"
          net: tcp6
          prefix: registry
          host: https://registry.example.com
          secret: 12345
          relativeurls: true
          draintimeout: 60s
          headers:
            X-Content-Type-Options: [nosniff]
            Strict-Transport-Security: [max-age=31536000, includeSubDomains]
          http2:
            disabled: true
          tls:
            certificate: /cert.pem
            key: /key.pem
            clientcas: [/ca1.pem, /ca2.pem]
            minimumtls: tls1.3
            ciphersuites: [TLS_AES_128_GCM_SHA256]
          debug:
            addr: 127.0.0.1:5002
            prometheus:
              enabled: true
              path: /m
          workers: 4
        """,
    )
    assert warnings == []
    h = config.http
    assert (h.addr, h.net, h.prefix, h.host) == (
        "[::1]:5001",
        "tcp6",
        "/registry/",
        "https://registry.example.com",
    )
    assert h.secret == "12345"  # any scalar is a string, as written
    assert h.relative_urls is True and h.drain_timeout == 60.0
    assert h.headers["Strict-Transport-Security"] == ("max-age=31536000", "includeSubDomains")
    assert h.http2.disabled is True
    assert h.tls.certificate == "/cert.pem" and h.tls.key == "/key.pem"
    assert h.tls.client_cas == ("/ca1.pem", "/ca2.pem")
    assert h.tls.minimum_tls == "tls1.3"
    assert h.tls.cipher_suites == ("TLS_AES_128_GCM_SHA256",)
    assert h.debug.addr == "127.0.0.1:5002"
    assert h.debug.prometheus.enabled and h.debug.prometheus.path == "/m"
    assert h.workers == 4


def test_http_limits(tmp_path: Path) -> None:
    """``http.limits``: dockyard's guards against slow and hostile clients."""
    config, warnings = load(
        tmp_path,
        """\
        version: 0.1
        storage: {inmemory: {}}
        http:
          secret: s
          limits:
            headertimeout: 5s
            bodytimeout: 2m
            minbodyrate: 512
            maxheaderbytes: 32768
            maxconnections: 50
        """,
    )
    assert warnings == []
    limits = config.http.limits
    assert (limits.header_timeout, limits.body_timeout) == (5.0, 120.0)
    assert limits.min_body_rate == 512
    assert (limits.max_header_bytes, limits.max_connections) == (32768, 50)
    default, _ = load(tmp_path, "version: 0.1\nstorage: {inmemory: {}}\n")
    assert default.http.limits == HTTPLimitsConfig()
    assert default.http.limits.max_header_bytes >= 32768  # tokens with certificate chains


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("headertimeout: 0s", "http.limits.headertimeout"),
        ("bodytimeout: 0", "http.limits.bodytimeout"),
        ("minbodyrate: -1", "http.limits.minbodyrate"),
        ("maxheaderbytes: 100", "http.limits.maxheaderbytes"),
        ("maxconnections: 0", "http.limits.maxconnections"),
    ],
)
def test_http_limits_invalid(tmp_path: Path, setting: str, problem: str) -> None:
    text = f"version: 0.1\nstorage: {{inmemory: {{}}}}\nhttp:\n  limits:\n    {setting}\n"
    assert problem in error(tmp_path, text)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("/", ""), ("", ""), ("/v", "/v/"), ("v/", "/v/"), ("/a/b", "/a/b/"), ("/a/b/", "/a/b/")],
)
def test_http_prefix_normalised(tmp_path: Path, given: str, expected: str) -> None:
    config = with_base(tmp_path, "", {"REGISTRY_HTTP_PREFIX": given})
    assert config.http.prefix == expected


def test_http_unix_socket(tmp_path: Path) -> None:
    config = with_base(tmp_path, "", {"REGISTRY_HTTP_NET": "unix", "REGISTRY_HTTP_ADDR": "/r.sock"})
    assert (config.http.net, config.http.addr) == ("unix", "/r.sock")


def test_http_defaults(tmp_path: Path) -> None:
    h = with_base(tmp_path, "").http
    assert (h.addr, h.net, h.prefix, h.host, h.workers) == (":5000", "tcp", "", "", None)
    assert h.tls.minimum_tls == "tls1.2" and h.debug.prometheus.path == "/metrics"


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (
            "{htpasswd: {realm: r, path: /htpasswd}}",
            HtpasswdAuthConfig(realm="r", path="/htpasswd"),
        ),
        (
            "{token: {realm: 'https://auth/token', service: reg, issuer: iss, "
            "rootcertbundle: /root.pem, autoredirect: true}}",
            TokenAuthConfig(
                realm="https://auth/token",
                service="reg",
                issuer="iss",
                root_cert_bundle="/root.pem",
                auto_redirect=True,
            ),
        ),
        (
            "{token: {realm: r, service: s, issuer: i, jwks: /jwks.json}}",
            TokenAuthConfig(realm="r", service="s", issuer="i", jwks="/jwks.json"),
        ),
        ("{silly: {realm: r, service: s}}", SillyAuthConfig(realm="r", service="s")),
        ("none", None),
        ("{}", None),
    ],
)
def test_auth(tmp_path: Path, auth: str, expected: object) -> None:
    assert with_base(tmp_path, f"auth: {auth}\n").auth == expected


def test_notifications(tmp_path: Path) -> None:
    config = with_base(
        tmp_path,
        """
        notifications:
          events:
            includereferences: true
          endpoints:
            - name: alistener
              disabled: false
              url: https://my.listener.com/event
              headers:
                Authorization: [Bearer abc]
              timeout: 1s
              threshold: 5
              backoff: 10s
              ignoredmediatypes:
                - application/octet-stream
              ignore:
                mediatypes: [application/octet-stream]
                actions: [pull]
            - name: second
              url: http://127.0.0.1:8080/
        """,
    )
    n = config.notifications
    assert n.events.include_references is True
    first, second = n.endpoints
    assert (first.name, first.url, first.disabled) == (
        "alistener",
        "https://my.listener.com/event",
        False,
    )
    assert first.headers == {"Authorization": ("Bearer abc",)}
    assert (first.timeout, first.threshold, first.backoff) == (1.0, 5, 10.0)
    assert first.ignored_media_types == ("application/octet-stream",)
    assert first.ignore.media_types == ("application/octet-stream",)
    assert first.ignore.actions == ("pull",)
    assert (second.timeout, second.threshold, second.backoff) == (1.0, 10, 1.0)


def test_redis(tmp_path: Path) -> None:
    config = with_base(
        tmp_path,
        """
        redis:
          addr: localhost:6379
          password: asecret
          db: 2
          dialtimeout: 10ms
          readtimeout: 10ms
          writetimeout: 10ms
          pool:
            maxidle: 16
            maxactive: 64
            idletimeout: 300s
          tls:
            enabled: true
        """,
    )
    r = config.redis
    assert (r.addr, r.password, r.db) == ("localhost:6379", "asecret", 2)
    assert r.dial_timeout == r.read_timeout == r.write_timeout == pytest.approx(0.01)
    assert (r.pool.max_idle, r.pool.max_active, r.pool.idle_timeout) == (16, 64, 300.0)
    assert r.tls.enabled is True


def test_proxy(tmp_path: Path) -> None:
    config, warnings = load(
        tmp_path,
        """\
        version: 0.1
        storage: {inmemory: {}}
        proxy:
          remoteurl: https://registry-1.docker.io
          username: u
          password: p
          ttl: 0
        """,
    )
    assert warnings == []  # a proxy needs no http.secret
    p = config.proxy
    assert (p.remote_url, p.username, p.password, p.ttl) == (
        "https://registry-1.docker.io",
        "u",
        "p",
        0.0,
    )
    assert with_base(tmp_path, "").proxy.ttl == 7 * 24 * 3600


def test_health(tmp_path: Path) -> None:
    config = with_base(
        tmp_path,
        """
        health:
          storagedriver: {enabled: true, interval: 20s, threshold: 2}
          file:
            - file: /path/to/checked/file
              interval: 10s
          http:
            - uri: http://server.to.check/must/return/200
              headers:
                Authorization: [Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==]
              statuscode: 204
              timeout: 3s
              interval: 10s
              threshold: 3
          tcp:
            - addr: redis-server.domain.com:6379
              timeout: 3s
              interval: 10s
              threshold: 3
        """,
    )
    h = config.health
    assert (h.storage_driver.enabled, h.storage_driver.interval, h.storage_driver.threshold) == (
        True,
        20.0,
        2,
    )
    (f,) = h.file_checkers
    assert (f.file, f.interval, f.threshold) == ("/path/to/checked/file", 10.0, 0)
    (web,) = h.http_checkers
    assert web.uri == "http://server.to.check/must/return/200"
    assert web.headers == {"Authorization": ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",)}
    assert (web.status_code, web.timeout, web.interval, web.threshold) == (204, 3.0, 10.0, 3)
    (tcp,) = h.tcp_checkers
    assert (tcp.addr, tcp.timeout, tcp.interval, tcp.threshold) == (
        "redis-server.domain.com:6379",
        3.0,
        10.0,
        3,
    )


def test_health_defaults(tmp_path: Path) -> None:
    config = with_base(tmp_path, "health:\n  http:\n    - uri: http://x/\n")
    (web,) = config.health.http_checkers
    assert (web.status_code, web.timeout, web.interval) == (200, 0.0, 10.0)
    assert config.health.storage_driver.enabled is False


def test_validation(tmp_path: Path) -> None:
    config = with_base(
        tmp_path,
        """
        validation:
          manifests:
            urls:
              allow: ['^https?://([^/]+\\.)*example\\.com/']
              deny: ['^https?://www\\.example\\.com/']
        """,
    )
    v = config.validation
    assert v.disabled is False
    (allow,) = v.manifests.urls.allow
    (deny,) = v.manifests.urls.deny
    assert allow.search("https://cdn.example.com/layer")
    assert deny.search("https://www.example.com/x")


@pytest.mark.parametrize(
    ("section", "disabled"),
    [
        ("{disabled: true}", True),
        ("{disabled: true, enabled: true}", False),  # the older key wins, as in distribution
        ("{enabled: false}", False),
        ("{}", False),
    ],
)
def test_validation_disabled(tmp_path: Path, section: str, disabled: bool) -> None:
    assert with_base(tmp_path, f"validation: {section}\n").validation.disabled is disabled


def test_compatibility_and_catalog(tmp_path: Path) -> None:
    config = with_base(
        tmp_path,
        """
        compatibility:
          schema1:
            signingkeyfile: /etc/registry/key.json
            enabled: true
        catalog:
          maxentries: 50
        """,
    )
    assert config.compatibility.schema1.signing_key_file == "/etc/registry/key.json"
    assert config.compatibility.schema1.enabled is True
    assert config.catalog.max_entries == 50
    assert with_base(tmp_path, "catalog: {maxentries: 0}\n").catalog.max_entries == 1000


def test_ui_is_on_unless_turned_off(tmp_path: Path) -> None:
    assert with_base(tmp_path, "").ui.enabled is True
    assert with_base(tmp_path, "ui: {enabled: false}\n").ui.enabled is False
    assert with_base(tmp_path, "", {"REGISTRY_UI_ENABLED": "false"}).ui.enabled is False
    assert "ui.enabled: expected a boolean" in error(tmp_path, H + "ui: {enabled: maybe}\n")


def test_yaml_anchors_and_merge_keys(tmp_path: Path) -> None:
    cfg, warnings = load(
        tmp_path,
        """\
        version: 0.1
        storage: {inmemory: {}}
        http: {secret: x}
        health:
          tcp:
            - &first
              addr: a:1
              interval: 5s
              threshold: 2
            - <<: *first
              addr: b:2
              threshold: 7
        """,
    )
    assert warnings == []
    a, b = cfg.health.tcp_checkers
    assert (a.addr, a.interval, a.threshold) == ("a:1", 5.0, 2)
    assert (b.addr, b.interval, b.threshold) == ("b:2", 5.0, 7)


# --- environment overrides -----------------------------------------------------------


def test_env_overrides_like_distribution(tmp_path: Path) -> None:
    config, warnings = load(
        tmp_path,
        DEBIAN_CONFIG,
        {
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/x",
            "REGISTRY_HTTP_SECRET": "topsecret",
            "REGISTRY_STORAGE_DELETE_ENABLED": "false",
            "REGISTRY_LOG_LEVEL": "debug",
            "REGISTRY_HTTP_ADDR": "0.0.0.0:6000",
            "REGISTRY_HEALTH_STORAGEDRIVER_INTERVAL": "30s",
            "PATH": "/usr/bin",
            "MY_REGISTRY_THING": "ignored",
        },
    )
    assert warnings == []
    assert config.storage.parameters == {"rootdirectory": "/x"}
    assert config.http.secret == "topsecret"
    assert config.storage.delete.enabled is False
    assert config.log.level == "debug"
    assert config.http.addr == "0.0.0.0:6000"
    assert config.health.storage_driver.interval == 30.0


def test_env_values_are_yaml_scalars(tmp_path: Path) -> None:
    config = with_base(
        tmp_path,
        "",
        {
            "REGISTRY_STORAGE_DELETE_ENABLED": "yes",
            "REGISTRY_HTTP_WORKERS": "3",
            "REGISTRY_HTTP_SECRET": "007",
            "REGISTRY_LOG_FIELDS_COUNT": "12",
        },
    )
    assert config.storage.delete.enabled is True
    assert config.http.workers == 3
    assert config.http.secret == "007"
    assert config.log.fields == {"count": 12}


def test_env_creates_absent_section(tmp_path: Path) -> None:
    config = with_base(
        tmp_path,
        "",
        {
            "REGISTRY_REDIS_ADDR": "127.0.0.1:6379",
            "REGISTRY_REDIS_POOL_MAXIDLE": "4",
            "REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR": "redis",
            "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED": "false",
        },
    )
    assert config.redis.addr == "127.0.0.1:6379" and config.redis.pool.max_idle == 4
    assert config.storage.cache.blob_descriptor == "redis"
    assert config.storage.maintenance.upload_purging.enabled is False


def test_env_overrides_nested_map_from_file(tmp_path: Path) -> None:
    config = with_base(
        tmp_path,
        "",
        {"REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE": "2h"},
    )
    assert config.storage.maintenance.upload_purging.age == 7200.0
    config, _ = load(
        tmp_path,
        BASE.replace(
            "  inmemory:\n",
            "  inmemory:\n  maintenance:\n    uploadpurging:\n      age: 1h\n      dryrun: true\n",
        ),
        {"REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE": "2h"},
    )
    assert config.storage.maintenance.upload_purging.age == 7200.0
    assert config.storage.maintenance.upload_purging.dry_run is True


def test_env_selects_storage_driver(tmp_path: Path) -> None:
    config, warnings = load(
        tmp_path,
        DEBIAN_CONFIG,
        {
            "REGISTRY_HTTP_SECRET": "x",
            "REGISTRY_STORAGE": "s3",
            "REGISTRY_STORAGE_S3_REGION": "us-east-1",
            "REGISTRY_STORAGE_S3_REGIONENDPOINT": "http://127.0.0.1:9000",
            "REGISTRY_STORAGE_S3_BUCKET": "reg",
        },
    )
    assert warnings == []
    assert config.storage.driver == "s3"
    assert config.storage.parameters == {
        "region": "us-east-1",
        "regionendpoint": "http://127.0.0.1:9000",
        "bucket": "reg",
    }
    # the file's non-driver subsections survive (a deliberate difference from distribution)
    assert config.storage.delete.enabled is True
    assert config.storage.cache.blob_descriptor == "inmemory"


def test_env_replaces_storage_section_with_mapping(tmp_path: Path) -> None:
    config, _ = load(
        tmp_path,
        DEBIAN_CONFIG,
        {"REGISTRY_STORAGE": "{gcs: {bucket: b}, delete: {enabled: false}}"},
    )
    assert config.storage.driver == "gcs" and config.storage.parameters == {"bucket": "b"}
    assert config.storage.delete.enabled is False
    assert config.storage.cache.blob_descriptor == ""


def test_env_driver_parameter_on_other_driver_is_two_drivers(tmp_path: Path) -> None:
    message = error(tmp_path, DEBIAN_CONFIG, {"REGISTRY_STORAGE_S3_REGION": "x"})
    assert message.startswith("storage: exactly one storage driver expected, got filesystem, s3")


def test_env_selects_auth(tmp_path: Path) -> None:
    config, _ = load(
        tmp_path,
        DEBIAN_CONFIG,
        {
            "REGISTRY_AUTH": "silly",
            "REGISTRY_AUTH_SILLY_REALM": "r",
            "REGISTRY_AUTH_SILLY_SERVICE": "s",
        },
    )
    assert config.auth == SillyAuthConfig(realm="r", service="s")
    config, _ = load(tmp_path, DEBIAN_CONFIG, {"REGISTRY_AUTH": "none"})
    assert config.auth is None


def test_env_lists(tmp_path: Path) -> None:
    config = with_base(
        tmp_path,
        "notifications:\n  endpoints:\n    - {name: a, url: 'http://a/'}\n",
        {
            "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT": "5s",
            "REGISTRY_NOTIFICATIONS_ENDPOINTS_1_NAME": "b",
            "REGISTRY_NOTIFICATIONS_ENDPOINTS_1_URL": "http://b/",
            "REGISTRY_NOTIFICATIONS_ENDPOINTS_1_IGNORE_ACTIONS_0": "pull",
            "REGISTRY_HTTP_TLS_CLIENTCAS": "[/a.pem, /b.pem]",
            "REGISTRY_VALIDATION_MANIFESTS_URLS_ALLOW_0": "^https://",
        },
    )
    a, b = config.notifications.endpoints
    assert a.timeout == 5.0 and (b.name, b.url) == ("b", "http://b/")
    assert b.ignore.actions == ("pull",)
    assert config.http.tls.client_cas == ("/a.pem", "/b.pem")
    assert [p.pattern for p in config.validation.manifests.urls.allow] == ["^https://"]


def test_env_go_field_names(tmp_path: Path) -> None:
    config = with_base(
        tmp_path,
        "",
        {
            "REGISTRY_NOTIFICATIONS_EVENTCONFIG_INCLUDEREFERENCES": "true",
            "REGISTRY_HEALTH_FILECHECKERS_0_FILE": "/down",
            "REGISTRY_HEALTH_TCP_0_ADDR": "db:5432",
            "REGISTRY_COMPATIBILITY_SCHEMA1_TRUSTKEY": "/key.json",
        },
    )
    assert config.notifications.events.include_references is True
    assert config.health.file_checkers[0].file == "/down"
    assert config.health.tcp_checkers[0].addr == "db:5432"
    assert config.compatibility.schema1.signing_key_file == "/key.json"


def test_env_matches_file_keys_case_insensitively(tmp_path: Path) -> None:
    config, _ = load(
        tmp_path,
        "version: 0.1\nstorage:\n  s3:\n    regionEndpoint: http://a\n",
        {"REGISTRY_STORAGE_S3_REGIONENDPOINT": "http://b"},
    )
    assert config.storage.parameters == {"regionendpoint": "http://b"}


def test_env_empty_value_restores_default(tmp_path: Path) -> None:
    config, _ = load(tmp_path, DEBIAN_CONFIG, {"REGISTRY_HTTP_ADDR": ""})
    assert config.http.addr == ":5000"
    config, _ = load(tmp_path, BASE, {"REGISTRY_HTTP_SECRET": ""})
    assert config.http.secret == ""


def test_explicit_empty_strings_mean_default(tmp_path: Path) -> None:
    config = with_base(tmp_path, "log: {level: '', formatter: ''}\n", {"REGISTRY_HTTP_NET": "''"})
    assert (config.log.level, config.log.formatter, config.http.net) == ("info", "text", "tcp")


def test_env_list_index_must_be_ascii_digits(tmp_path: Path) -> None:
    message = error(tmp_path, BASE, {"REGISTRY_NOTIFICATIONS_ENDPOINTS_\u00b2_NAME": "a"})
    assert message.startswith("notifications.endpoints: ")


def test_env_whole_section(tmp_path: Path) -> None:
    config = with_base(tmp_path, "", {"REGISTRY_PROXY": "{remoteurl: 'https://r.example'}"})
    assert config.proxy.remote_url == "https://r.example"


def test_env_ignored_variables_warn(tmp_path: Path) -> None:
    _, warnings = load(
        tmp_path,
        BASE,
        {
            "REGISTRY_CONFIGURATION_PATH": "/etc/docker/registry/config.yml",
            "REGISTRY_VERSION": "0.2",
            "REGISTRY_http_addr": ":1",
            "REGISTRY_HTTP__ADDR": ":1",
            "REGISTRY_HTTP_SECRET_FILE": "/run/secret",
            "REGISTRY_PORT": "tcp://10.0.0.1:5000",  # what Kubernetes injects
        },
    )
    assert len(warnings) == 5, warnings
    joined = "\n".join(warnings)
    assert "REGISTRY_CONFIGURATION_PATH" not in joined
    assert "ignoring environment variable REGISTRY_VERSION" in joined
    assert "ignoring environment variable REGISTRY_http_addr" in joined
    assert "ignoring environment variable REGISTRY_HTTP__ADDR" in joined
    assert 'REGISTRY_HTTP_SECRET_FILE: "http.secret" is a value, not a section' in joined
    assert 'unknown configuration key "port" (from REGISTRY_PORT)' in joined


def test_env_errors_name_key_and_variable(tmp_path: Path) -> None:
    message = error(tmp_path, BASE, {"REGISTRY_STORAGE_DELETE_ENABLED": "yes please"})
    assert message == (
        "storage.delete.enabled: expected a boolean, got 'yes please' "
        "(from REGISTRY_STORAGE_DELETE_ENABLED)"
    )
    message = error(tmp_path, BASE, {"REGISTRY_NOTIFICATIONS_ENDPOINTS_X_NAME": "a"})
    assert message.startswith("notifications.endpoints: REGISTRY_NOTIFICATIONS_ENDPOINTS_X_NAME")
    message = error(tmp_path, BASE, {"REGISTRY_NOTIFICATIONS_ENDPOINTS_2_NAME": "a"})
    assert message.startswith("notifications.endpoints[2]: ")
    message = error(tmp_path, BASE, {"REGISTRY_HTTP_ADDR_PORT": "1"})
    assert message == "http.addr: expected a string, got a mapping (from REGISTRY_HTTP_ADDR_PORT)"
    message = error(tmp_path, BASE, {"REGISTRY_HTTP_HEADERS": "{a: [b"})
    assert message.startswith("REGISTRY_HTTP_HEADERS: malformed YAML")


# --- durations and addresses ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("168h", 604800.0),
        ("30m", 1800.0),
        ("10s", 10.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("10us", 1e-5),
        ("10µs", 1e-5),
        ("100ns", 1e-7),
        ("0", 0.0),
        ("+5s", 5.0),
        (".5s", 0.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "1d", "-5s", "5 s", "1h 30m", "five"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "seconds"), [("10s", 10.0), ("90", 90.0), ("1.5", 1.5), ("0", 0.0), ("'0'", 0.0)]
)
def test_durations_in_yaml(tmp_path: Path, value: str, seconds: float) -> None:
    config = with_base(tmp_path, f"redis:\n  dialtimeout: {value}\n")
    assert config.redis.dial_timeout == seconds


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("'10'", "invalid duration '10'"),
        ("-1", "must be a non-negative duration, got -1"),
        ("-1s", "negative duration '-1s'"),
        ("true", 'expected a duration such as "10s", got true'),
        ("[1s]", 'expected a duration such as "10s", got a list'),
        (".nan", "must be a non-negative duration, got nan"),
    ],
)
def test_bad_durations(tmp_path: Path, value: str, problem: str) -> None:
    message = error(tmp_path, BASE + f"redis:\n  dialtimeout: {value}\n")
    assert message.startswith(f"redis.dialtimeout: {problem}")


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        (":5000", ("", 5000)),
        ("0.0.0.0:5000", ("0.0.0.0", 5000)),
        ("127.0.0.1:5001", ("127.0.0.1", 5001)),
        ("[::1]:5000", ("::1", 5000)),
        ("[::]:0", ("::", 0)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_split_host_port(addr: str, expected: tuple[str, int]) -> None:
    assert split_host_port(addr) == expected


@pytest.mark.parametrize(
    "addr", ["5000", "::1:5000", "[::1]5000", "[nothost]:1", ":", ":http", ":65536", "a b:1", ":-1"]
)
def test_split_host_port_rejects(addr: str) -> None:
    with pytest.raises(ValueError):
        split_host_port(addr)


# --- errors name the key -------------------------------------------------------------


def test_error_example_from_file(tmp_path: Path) -> None:
    message = error(
        tmp_path, "version: 0.1\nstorage:\n  inmemory:\n  delete:\n    enabled: yes please\n"
    )
    assert message == (
        "storage.delete.enabled: expected a boolean, got 'yes please' "
        f"({tmp_path / 'config.yml'}, line 5)"
    )
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "version: 0.1\nstorage:\n  inmemory:\n  delete:\n    enabled: 1\n")
    assert info.value.key == "storage.delete.enabled"


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    message = error(tmp_path, "version: 0.1\nstorage:\n  inmemory: {\nhttp: x\n")
    assert message.startswith(f"malformed YAML ({path}, line ")
    message = error(tmp_path, "version: 0.1\nstorage: [a\n")
    assert "line 2" in message or "line 3" in message
    assert error(tmp_path, "a: 1\n---\nb: 2\n").startswith(f"malformed YAML ({path}, line 2")


H = "version: 0.1\nstorage: inmemory\n"  # the least configuration that loads


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "storage: {inmemory: {}}\n",
            'version: missing; a registry configuration starts with "version',
        ),
        (
            "version: 0.2\nstorage: {inmemory: {}}\n",
            "version: unsupported version 0.2; expected 0.1",
        ),
        ("version: '1'\nstorage: inmemory\n", "version: unsupported version '1'; expected 0.1"),
        ("", "version: missing"),
        ("[1, 2]\n", "configuration: expected a mapping of sections, got a list"),
        ("version: 0.1\n", "storage: missing; configure one storage driver"),
        (
            "version: 0.1\nstorage:\n  delete: {enabled: true}\n",
            "storage: no storage driver configured",
        ),
        (
            "version: 0.1\nstorage:\n  filesystem: {}\n  s3: {}\n",
            "storage: exactly one storage driver expected, got filesystem, s3",
        ),
        ("version: 0.1\nstorage:\n  swift: {}\n", "storage.swift: unsupported storage driver"),
        ("version: 0.1\nstorage:\n  s3: bucket\n", "storage.s3: expected a mapping of parameters"),
        (
            "version: 0.1\nstorage:\n  s3: {Bucket: a, bucket: b}\n",
            "storage.s3.bucket: given twice",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}, cache: redis}\n",
            "storage.cache: expected a mapping, got 'redis'",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}, cache: {blobdescriptor: redis}}\n",
            "storage.cache.blobdescriptor: the redis cache needs redis.addr",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}, cache: {blobdescriptorsize: 0}}\n",
            "storage.cache.blobdescriptorsize: must be at least 1, got 0",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}, maintenance: {uploadpurging: false}}\n",
            "storage.maintenance.uploadpurging: expected a mapping, got false",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}, maintenance: {uploadpurging: {age: 7d}}}\n",
            "storage.maintenance.uploadpurging.age: invalid duration '7d'",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}, redirect: {disable: 'no way'}}\n",
            "storage.redirect.disable: expected a boolean, got 'no way'",
        ),
        (
            "version: 0.1\nstorage: {inmemory: {}, tag: {concurrencylimit: -1}}\n",
            "storage.tag.concurrencylimit: must be at least 0, got -1",
        ),
        (
            H + "log: {level: loud}\n",
            "log.level: expected one of error, warn, info, debug, got 'loud'",
        ),
        (H + "loglevel: loud\n", "loglevel: expected one of error"),
        (
            H + "log: {formatter: xml}\n",
            "log.formatter: expected one of text, json, logstash",
        ),
        (
            H + "log: {fields: [a]}\n",
            "log.fields: expected a mapping, got a list",
        ),
        (
            H + "log: {accesslog: {disabled: 2}}\n",
            "log.accesslog.disabled: expected a boolean, got 2",
        ),
        (H + "http: 5000\n", "http: expected a mapping, got 5000"),
        (
            H + "http: {addr: 5000}\n",
            "http.addr: invalid address '5000'",
        ),
        (
            H + "http: {addr: ':99999'}\n",
            "http.addr: invalid address ':99999'",
        ),
        (
            H + "http: {addr: '::1:5000'}\n",
            "http.addr: invalid address '::1:5000'",
        ),
        (
            H + "http: {addr: [a]}\n",
            "http.addr: expected a string, got a list",
        ),
        (
            H + "http: {net: udp}\n",
            "http.net: expected one of tcp, tcp4, tcp6, unix, got 'udp'",
        ),
        (H + "http: {net: unix}\n", "http.addr: required"),
        (
            H + "http: {host: registry.local}\n",
            "http.host: expected an absolute http(s) URL, got 'registry.local'",
        ),
        (
            H + "http: {relativeurls: 'true'}\n",
            "http.relativeurls: expected a boolean, got 'true'",
        ),
        (
            H + "http: {workers: 0}\n",
            "http.workers: must be at least 1, got 0",
        ),
        (
            H + "http: {workers: two}\n",
            "http.workers: expected an integer, got 'two'",
        ),
        (
            H + "http: {workers: 1.5}\n",
            "http.workers: expected an integer, got 1.5",
        ),
        (
            H + "http: {headers: {X-A: b}}\n",
            "http.headers.X-A: expected a list of strings, got 'b'",
        ),
        (
            H + "http: {headers: {'X A': [b]}}\n",
            "http.headers.X A: invalid header name",
        ),
        (
            H + "http: {headers: {X-A: [~]}}\n",
            "http.headers.X-A[0]: expected a string, got null",
        ),
        (
            H + "http: {tls: {certificate: /c.pem}}\n",
            "http.tls.key: required when http.tls.certificate is set",
        ),
        (
            H + "http: {tls: {minimumtls: ssl3}}\n",
            "http.tls.minimumtls: expected one of tls1.0, tls1.1, tls1.2, tls1.3, got 'ssl3'",
        ),
        (
            H + "http: {tls: {clientcas: /ca.pem}}\n",
            "http.tls.clientcas: expected a list of strings, got '/ca.pem'",
        ),
        (
            H + "http: {debug: {addr: localhost}}\n",
            "http.debug.addr: invalid address 'localhost'",
        ),
        (
            H + "http: {debug: {prometheus: {path: metrics}}}\n",
            "http.debug.prometheus.path: must start with /",
        ),
        (
            H + "http: {draintimeout: soon}\n",
            "http.draintimeout: invalid duration 'soon'",
        ),
        (
            H + "auth: {htpasswd: {realm: r}, silly: {realm: r, service: s}}\n",
            "auth: exactly one auth type expected, got htpasswd, silly",
        ),
        (H + "auth: {ldap: {}}\n", "auth.ldap: unsupported auth type"),
        (
            H + "auth: {htpasswd: {realm: r}}\n",
            "auth.htpasswd.path: required",
        ),
        (
            H + "auth: {htpasswd: {path: /p}}\n",
            "auth.htpasswd.realm: required",
        ),
        (
            H + "auth: {silly: {realm: r}}\n",
            "auth.silly.service: required",
        ),
        (
            H + "auth: {token: {realm: r, service: s, issuer: i}}\n",
            "auth.token.rootcertbundle: required (or auth.token.jwks)",
        ),
        (
            H + "auth: {token: {realm: r, service: s}}\n",
            "auth.token.issuer: required",
        ),
        (
            H + "auth: [htpasswd]\n",
            "auth: expected a mapping, got a list",
        ),
        (
            H + "notifications: {endpoints: [{name: a}]}\n",
            "notifications.endpoints[0].url: required",
        ),
        (
            H + "notifications: {endpoints: [{name: a, url: 'ftp://x'}]}\n",
            "notifications.endpoints[0].url: expected an absolute http(s) URL, got 'ftp://x'",
        ),
        (
            H + "notifications: {endpoints: [{url: 'http://x/'}]}\n",
            "notifications.endpoints[0].name: required",
        ),
        (
            H + "notifications: {endpoints: {name: a}}\n",
            "notifications.endpoints: expected a list, got a mapping",
        ),
        (
            H + "notifications: {endpoints: [{name: a, url: 'http://x/', threshold: many}]}\n",
            "notifications.endpoints[0].threshold: expected an integer, got 'many'",
        ),
        (
            H + "notifications: {endpoints: [a]}\n",
            "notifications.endpoints[0]: expected a mapping, got 'a'",
        ),
        (
            H + "redis: {addr: localhost}\n",
            "redis.addr: invalid address 'localhost'",
        ),
        (
            H + "redis: {db: -1}\n",
            "redis.db: must be at least 0, got -1",
        ),
        (
            H + "redis: {pool: {maxidle: x}}\n",
            "redis.pool.maxidle: expected an integer, got 'x'",
        ),
        (
            H + "proxy: {remoteurl: docker.io}\n",
            "proxy.remoteurl: expected an absolute http(s) URL",
        ),
        (
            H + "proxy: {ttl: forever}\n",
            "proxy.ttl: invalid duration 'forever'",
        ),
        (
            H + "health: {file: [{interval: 1s}]}\n",
            "health.file[0].file: required",
        ),
        (
            H + "health: {http: [{uri: /ping}]}\n",
            "health.http[0].uri: expected an absolute http(s) URL",
        ),
        (
            H + "health: {tcp: [{addr: db}]}\n",
            "health.tcp[0].addr: invalid address 'db'",
        ),
        (
            H + "health: {storagedriver: {threshold: -1}}\n",
            "health.storagedriver.threshold: must be at least 0",
        ),
        (
            H + "validation: {manifests: {urls: {allow: ['^ok', '(unclosed']}}}\n",
            "validation.manifests.urls.allow[1]: invalid regular expression '(unclosed'",
        ),
        (
            H + "validation: {manifests: {urls: {deny: '^x'}}}\n",
            "validation.manifests.urls.deny: expected a list of strings, got '^x'",
        ),
        (
            H + "validation: {disabled: nope}\n",
            "validation.disabled: expected a boolean, got 'nope'",
        ),
        (
            H + "compatibility: {schema1: {enabled: sure}}\n",
            "compatibility.schema1.enabled: expected a boolean",
        ),
        (
            H + "catalog: {maxentries: lots}\n",
            "catalog.maxentries: expected an integer",
        ),
        (
            H + "http: {addr: !custom x}\n",
            "http.addr: could not determine a constructor",
        ),
        (H + "? [a]\n: b\n", "configuration: keys must be plain scalars"),
        (
            H + "http: {<<: 5}\n",
            "http: a << merge key takes mappings only",
        ),
        (H + "http: {host: 'http://[::1'}\n", "http.host: expected an absolute http(s) URL"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    assert error(tmp_path, text).startswith(expected)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_config(tmp_path / "missing.yml", {})
    bad = tmp_path / "latin1.yml"
    bad.write_bytes(b"version: 0.1\nstorage: inmemory\nhttp: {secret: \xe9}\n")
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_config(bad, {})


def test_recursive_alias_is_an_error(tmp_path: Path) -> None:
    message = error(tmp_path, "version: 0.1\nstorage: inmemory\nlog:\n  fields: &a {x: *a}\n")
    assert "recursive YAML alias" in message


# --- warnings ------------------------------------------------------------------------


def test_unsupported_keys_warn_with_full_path(tmp_path: Path) -> None:
    _, warnings = load(
        tmp_path,
        """\
        version: 0.1
        storage:
          s3: {frobnicate: 1}
          delete: {enabled: true, soft: true}
          maintenance:
            readonly: {enabled: false, reason: x}
        http:
          secret: x
          tls:
            letsencrypt:
              cachefile: /c
        auth:
          token: {realm: r, service: s, issuer: i, jwks: /j, signingalgorithms: [RS256]}
        reporting:
          bugsnag: {apikey: k}
        token_server:
          issuer: x
        log:
          hooks: []
        notifications:
          endpoints:
            - {name: a, url: 'http://a/', queue: 5}
        """,
    )
    # distribution's keys that dockyard does not read, and keys neither knows.
    unsupported = sorted(w.split('"')[1] for w in warnings if w.startswith("unsupported"))
    assert unsupported == [
        "auth.token.signingalgorithms",
        "http.tls.letsencrypt",
        "log.hooks",
        "reporting",
    ]
    unknown = sorted(w.key for w in warnings if isinstance(w, UnknownKeyWarning))
    assert unknown == [
        "notifications.endpoints[0].queue",
        "storage.delete.soft",
        "storage.maintenance.readonly.reason",
        "token_server",
    ]
    assert len(warnings) == len(unsupported) + len(unknown)
    assert (
        f'unsupported configuration key "reporting" ({tmp_path / "config.yml"}, line 14): '
        "supported by distribution but not by dockyard, ignored"
    ) in warnings
    assert f'unknown configuration key "token_server" ({tmp_path / "config.yml"}, line 16)' in (
        warnings
    )


@pytest.mark.parametrize(
    ("text", "key", "nearest"),
    [
        ("http: {adress: ':5000'}", "http.adress", "http.addr"),
        ("http: {secrte: x}", "http.secrte", "http.secret"),
        (
            "storage: {filesystem: {rootdirectroy: /srv}}",
            "storage.filesystem.rootdirectroy",
            "storage.filesystem.rootdirectory",
        ),
        (
            "storage: {filesystem: {maxthread: 4}}",
            "storage.filesystem.maxthread",
            "storage.filesystem.maxthreads",
        ),
        ("log: {levle: debug}", "log.levle", "log.level"),
        ("reportng: {}", "reportng", "reporting"),  # a key of distribution's is near too
        ("storage: {inmemory: {x: 1}}", "storage.inmemory.x", None),
        (
            "validation: {manifests: {urls: {alow: [x]}}}",
            "validation.manifests.urls.alow",
            "validation.manifests.urls.allow",
        ),
    ],
)
def test_unknown_key_names_the_nearest_known_one(
    tmp_path: Path, text: str, key: str, nearest: str | None
) -> None:
    storage = "" if text.startswith("storage") else "storage: {inmemory: {}}\n"
    http = "" if text.startswith("http") else "http: {secret: s}\n"
    doc = f"version: 0.1\n{storage}{http}{text}\n"
    _, warnings = load(tmp_path, doc)
    unknown = [w for w in warnings if isinstance(w, UnknownKeyWarning)]
    assert [w.key for w in unknown] == [key], warnings
    hint = f'; did you mean "{nearest}"?' if nearest else ""
    assert unknown[0].startswith(f'unknown configuration key "{key}" (')
    assert unknown[0].endswith(")" + hint)


def test_middleware_storage_read_others_warn(tmp_path: Path) -> None:
    config, warnings = load(
        tmp_path,
        BASE
        + """\
middleware:
  registry: []
  storage:
    - name: cloudfront
      options: {baseurl: https://x}
    - name: redirect
      disabled: true
      options: {baseurl: https://y}
  repository:
    - {name: a}
    - {name: b}
""",
    )
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "middleware.repository: dockyard has no repository middleware; ignoring a, b"
    )
    assert [(m.name, dict(m.options)) for m in config.middleware.storage] == [
        ("cloudfront", {"baseurl": "https://x"})
    ]


def test_middleware_storage_entry_needs_a_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^middleware\.storage\[0\]\.name: required"):
        load(tmp_path, BASE + "middleware:\n  storage:\n    - options: {baseurl: x}\n")


def test_duplicate_key_warns_and_last_wins(tmp_path: Path) -> None:
    config, warnings = load(tmp_path, BASE + "log:\n  level: info\n  level: debug\n")
    assert config.log.level == "debug"
    assert warnings == [
        f'duplicate configuration key "log.level" ({tmp_path / "config.yml"}, line 8): '
        "the last value wins"
    ]


def test_env_unknown_key_warns(tmp_path: Path) -> None:
    _, warnings = load(tmp_path, BASE, {"REGISTRY_HTTP_FROBNICATE": "1"})
    assert warnings == [
        'unknown configuration key "http.frobnicate" (from REGISTRY_HTTP_FROBNICATE)'
    ]
    assert isinstance(warnings[0], UnknownKeyWarning)
    _, warnings = load(tmp_path, BASE, {"REGISTRY_HTTP_ADRESS": ":1"})
    assert warnings == [
        'unknown configuration key "http.adress" (from REGISTRY_HTTP_ADRESS); '
        'did you mean "http.addr"?'
    ]
