"""Build the configured driver; optional backends are imported only when chosen."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dockyard.storage.drivers.base import CheckedDriver, StorageDriver
from dockyard.storage.drivers.filesystem import FilesystemDriver
from dockyard.storage.drivers.inmemory import InMemoryDriver
from dockyard.storage.drivers.middleware import MiddlewareSpec, wrap_middleware
from dockyard.storage.drivers.params import DriverConfigError, missing_extra

__all__ = ["DriverConfigError", "create_driver"]

#: ``from_parameters(params, *, redirect)`` of an object store's driver class.
_Builder = Callable[..., StorageDriver]


def create_driver(
    name: str,
    params: Mapping[str, Any],
    *,
    redirect: bool = True,
    middleware: Sequence[MiddlewareSpec] = (),
) -> CheckedDriver:
    """The driver ``name`` (``storage.<name>`` in config.yml), wrapped with path checks.

    ``redirect`` is ``not storage.redirect.disable``: object stores may then answer
    blob GETs with pre-signed URLs, and ``middleware`` (``middleware.storage``) wraps the
    driver to redirect them elsewhere (see :mod:`.middleware`). Raises
    :class:`DriverConfigError` naming the bad key, or the extra to install for an
    object store whose client library is missing.
    """
    driver: StorageDriver
    if name == "filesystem":
        driver = FilesystemDriver.from_parameters(params)
    elif name == "inmemory":
        driver = InMemoryDriver()
    else:
        driver = _object_store(name)(params, redirect=redirect)
    if middleware:
        driver = wrap_middleware(driver, middleware, redirect=redirect)
    return CheckedDriver(driver)


def _object_store(name: str) -> _Builder:
    """The builder of object store ``name``, imported now: its package imports its client
    library (the ``dockyard[<name>]`` extra) at the top."""
    try:
        if name == "s3":
            from dockyard.storage.drivers.s3 import S3Driver

            return S3Driver.from_parameters
        if name == "azure":
            from dockyard.storage.drivers.azure import AzureDriver

            return AzureDriver.from_parameters
        if name == "gcs":
            from dockyard.storage.drivers.gcs import GCSDriver

            return GCSDriver.from_parameters
        if name == "rados":  # Ceph's bindings are imported when built (install hint there)
            from dockyard.storage.drivers.rados import RadosDriver

            return RadosDriver.from_parameters
    except ImportError as exc:
        raise missing_extra(name, exc) from exc
    raise DriverConfigError(f"storage.{name}: storage driver {name!r} is not supported yet")
