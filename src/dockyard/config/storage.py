"""``storage``: the driver with its free-form parameters, and the common settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from dockyard.config.section import Section, unread_key
from dockyard.config.tree import (
    KeyPath,
    Leaf,
    Map,
    Node,
    at,
    describe,
    expand_type_name,
    fail,
    plain,
)

BlobDescriptorCache = Literal["", "inmemory", "redis"]

STORAGE_DRIVERS = ("filesystem", "inmemory", "s3", "azure", "gcs", "rados")
"""The storage driver names dockyard accepts under ``storage``."""

STORAGE_SUBSECTIONS = ("delete", "redirect", "cache", "maintenance", "tag", "index")
"""The keys of ``storage`` that are not a driver."""

# The object-store drivers refuse parameters they do not know (naming those they do);
# these two, like distribution's, would ignore them, so a misspelt one is a warning here.
_DRIVER_PARAMETERS: dict[str, tuple[str, ...]] = {
    "filesystem": ("rootdirectory", "maxthreads"),
    "inmemory": (),
}


@dataclass(frozen=True, kw_only=True)
class DeleteConfig:
    """``storage.delete``: deleting manifests and blobs through the API."""

    enabled: bool = False


@dataclass(frozen=True, kw_only=True)
class RedirectConfig:
    """``storage.redirect``: ``disable: true`` serves blobs instead of redirecting."""

    disable: bool = False


@dataclass(frozen=True, kw_only=True)
class CacheConfig:
    """``storage.cache``: the blob descriptor cache (``""`` means none)."""

    blob_descriptor: BlobDescriptorCache = ""
    blob_descriptor_size: int = 10000
    """Entries of the in-memory cache."""


@dataclass(frozen=True, kw_only=True)
class UploadPurgingConfig:
    """``storage.maintenance.uploadpurging``: removal of abandoned uploads."""

    enabled: bool = True
    age: float = 168 * 3600.0
    """Seconds after which an upload is abandoned."""
    interval: float = 24 * 3600.0
    """Seconds between two purges."""
    dry_run: bool = False


@dataclass(frozen=True, kw_only=True)
class ReadOnlyConfig:
    """``storage.maintenance.readonly``: refuse every write."""

    enabled: bool = False


@dataclass(frozen=True, kw_only=True)
class GarbageCollectConfig:
    """``storage.maintenance.garbagecollect`` (dockyard): online garbage collection on the
    metadata index. ``enabled`` fences manifest PUTs against the sweep; ``interval`` 0
    leaves collection to ``dockyard garbage-collect --online``."""

    enabled: bool = False
    interval: float = 24 * 3600.0
    grace_period: float = 3600.0
    """Blobs and manifests younger than this are never collected."""
    delete_untagged: bool = False
    dry_run: bool = False


@dataclass(frozen=True, kw_only=True)
class MaintenanceConfig:
    """``storage.maintenance``."""

    upload_purging: UploadPurgingConfig = field(default_factory=UploadPurgingConfig)
    read_only: ReadOnlyConfig = field(default_factory=ReadOnlyConfig)
    garbage_collect: GarbageCollectConfig = field(default_factory=GarbageCollectConfig)


@dataclass(frozen=True, kw_only=True)
class TagConfig:
    """``storage.tag``."""

    concurrency_limit: int = 0
    """Concurrent tag lookups; 0 means automatic."""


@dataclass(frozen=True, kw_only=True)
class IndexConfig:
    """``storage.index`` (dockyard): the metadata index beside the storage.

    ``driver`` ``""`` picks the default: SQLite for filesystem (``path`` defaults to
    ``<rootdirectory>/dockyard-index.db``) and inmemory storage, none (walking
    storage, as distribution does) for object stores.
    """

    driver: str = ""
    path: str = ""
    dsn: str = ""
    pool_size: int = 10
    rebuild_on_start: bool = False


@dataclass(frozen=True, kw_only=True)
class StorageConfig:
    """``storage``: one driver with its free-form parameters, and the common settings.

    ``parameters`` holds the driver section as written, with its top-level keys
    lower-cased (``rootdirectory``, ``regionendpoint``...); the driver validates
    them. The dataclass default is the in-memory driver, handy for tests;
    :func:`load_config` always sets a driver.
    """

    driver: str = "inmemory"
    parameters: Mapping[str, Any] = field(default_factory=dict)
    delete: DeleteConfig = field(default_factory=DeleteConfig)
    redirect: RedirectConfig = field(default_factory=RedirectConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    maintenance: MaintenanceConfig = field(default_factory=MaintenanceConfig)
    tag: TagConfig = field(default_factory=TagConfig)
    index: IndexConfig = field(default_factory=IndexConfig)


def read_storage(node: Node | None, warnings: list[str]) -> StorageConfig:
    """The validated ``storage`` section; unknown keys become warnings."""
    path: KeyPath = ("storage",)
    drivers_list = ", ".join(STORAGE_DRIVERS)
    if node is None:
        raise fail(path, None, f"missing; configure one storage driver: {drivers_list}")
    s = Section(expand_type_name(node), path, warnings)
    drivers = [k for k in s.items if k not in STORAGE_SUBSECTIONS]
    if not drivers:
        raise fail(path, node, f"no storage driver configured; expected one of {drivers_list}")
    if len(drivers) > 1:
        raise fail(path, node, f"exactly one storage driver expected, got {', '.join(drivers)}")
    driver = drivers[0]
    params_node = s.raw(driver)
    if driver not in STORAGE_DRIVERS:
        raise fail(
            (*path, driver),
            params_node or node,
            f"unsupported storage driver; expected one of {drivers_list}",
        )
    params: dict[str, Any] = {}
    if params_node is not None:
        if not isinstance(params_node, Map):
            raise fail(
                (*path, driver),
                params_node,
                f"expected a mapping of parameters, got {describe(params_node)}",
            )
        for key, value in params_node.items.items():
            if key.lower() in params:
                raise fail((*path, driver, key.lower()), value, "given twice (keys ignore case)")
            params[key.lower()] = plain(value)
            known = _DRIVER_PARAMETERS.get(driver)
            if known is not None and key.lower() not in known:
                warnings.append(unread_key((*path, driver, key), value.where, known))

    delete = s.section("delete")
    redirect = s.section("redirect")
    cache = s.section("cache")
    maintenance = s.section("maintenance")
    purging = maintenance.section("uploadpurging")
    readonly = maintenance.section("readonly")
    collect = maintenance.section("garbagecollect")
    tag = s.section("tag")
    index = s.section("index")

    kind = cache.text("blobdescriptor") if cache.raw("blobdescriptor") else cache.text("layerinfo")
    if kind not in ("", "inmemory", "redis"):
        warnings.append(
            f"storage.cache.blobdescriptor: unknown cache type {kind!r} (expected inmemory or "
            f"redis); caching disabled{at(cache.where)}"
        )
        kind = ""
    size_node = cache.raw("blobdescriptorsize")
    size_text = size_node.text if isinstance(size_node, Leaf) else ""
    if size_text.isascii() and size_text.isdigit():
        size = int(size_text)  # distribution takes "5000" as well
    else:
        size = cache.integer("blobdescriptorsize", 10000, minimum=1)
    if size < 1:
        raise fail(
            (*path, "cache", "blobdescriptorsize"), size_node, f"must be at least 1, got {size}"
        )
    result = StorageConfig(
        driver=driver,
        parameters=params,
        delete=DeleteConfig(enabled=delete.flag("enabled")),
        redirect=RedirectConfig(disable=redirect.flag("disable")),
        cache=CacheConfig(
            blob_descriptor=cast(BlobDescriptorCache, kind),
            blob_descriptor_size=size,
        ),
        maintenance=MaintenanceConfig(
            upload_purging=UploadPurgingConfig(
                enabled=purging.flag("enabled", True),
                age=purging.duration("age", 168 * 3600.0),
                interval=purging.duration("interval", 24 * 3600.0),
                dry_run=purging.flag("dryrun"),
            ),
            read_only=ReadOnlyConfig(enabled=readonly.flag("enabled")),
            garbage_collect=GarbageCollectConfig(
                enabled=collect.flag("enabled"),
                interval=collect.duration("interval", 24 * 3600.0),
                grace_period=collect.duration("graceperiod", 3600.0),
                delete_untagged=collect.flag("deleteuntagged"),
                dry_run=collect.flag("dryrun"),
            ),
        ),
        tag=TagConfig(concurrency_limit=tag.integer("concurrencylimit")),
        index=_read_index(index),
    )
    for section in (delete, redirect, cache, purging, readonly, collect, maintenance, tag,
                    index, s):
        section.done()
    return result


def _read_index(index: Section) -> IndexConfig:
    driver = index.choice("driver", ("sqlite", "postgres", "none"), "") if index.raw(
        "driver") is not None else ""
    dsn = index.text("dsn")
    if driver == "postgres" and not dsn:
        raise fail(("storage", "index", "dsn"), index.raw("dsn"),
                   "required with driver: postgres (e.g. postgresql://user:pass@host/db)")
    pool_size = index.integer("poolsize", 10, minimum=1)
    return IndexConfig(
        driver=driver,
        path=index.text("path"),
        dsn=dsn,
        pool_size=pool_size,
        rebuild_on_start=index.flag("rebuildonstart"),
    )
