"""Build the configured driver; optional backends are imported only when chosen."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dockyard.storage.drivers.base import CheckedDriver, StorageDriver

__all__ = ["DriverConfigError", "create_driver"]


class DriverConfigError(ValueError):
    """The driver cannot be built from its ``storage.<driver>`` parameters."""


def create_driver(
    name: str, params: Mapping[str, Any], *, redirect: bool = True
) -> CheckedDriver:
    """The driver ``name`` (``storage.<name>`` in config.yml), wrapped with path checks.

    ``redirect`` is ``not storage.redirect.disable``: object stores may then answer
    blob GETs with pre-signed URLs.
    """
    driver: StorageDriver
    if name == "filesystem":
        from dockyard.storage.drivers.filesystem import FilesystemDriver

        driver = FilesystemDriver.from_parameters(params)
    elif name == "inmemory":
        from dockyard.storage.drivers.inmemory import InMemoryDriver

        driver = InMemoryDriver()
    elif name == "s3":
        from dockyard.storage.drivers.s3 import S3Driver  # raises DriverConfigError without [s3]

        driver = S3Driver.from_parameters(params, redirect=redirect)
    elif name == "azure":
        try:
            from dockyard.storage.drivers.azure import AzureDriver
        except ImportError as exc:
            raise _missing_extra(name, exc) from exc
        driver = AzureDriver.from_parameters(params, redirect=redirect)
    elif name == "gcs":
        try:
            from dockyard.storage.drivers.gcs import GCSDriver
        except ImportError as exc:
            raise _missing_extra(name, exc) from exc
        driver = GCSDriver.from_parameters(params, redirect=redirect)
    else:
        raise DriverConfigError(f"storage.{name}: storage driver {name!r} is not supported yet")
    return CheckedDriver(driver)


def _missing_extra(name: str, exc: ImportError) -> DriverConfigError:
    return DriverConfigError(
        f"storage.{name}: the {name} driver needs the {name!r} extra "
        f"(pip install 'dockyard[{name}]'): {exc}"
    )
