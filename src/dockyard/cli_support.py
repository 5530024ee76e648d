"""What the ``dockyard`` commands share: progress lines, opening storage, closing it."""

from __future__ import annotations

import sys
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

from dockyard.config import Config
from dockyard.storage.drivers.factory import DriverConfigError

if TYPE_CHECKING:
    from dockyard.storage.drivers.base import CheckedDriver

T = TypeVar("T")

__all__ = ["_closing", "_open_storage", "_progress", "_where"]


def _progress(message: str) -> None:
    """Progress of the offline commands goes to stderr; their summary to stdout."""
    print(message, file=sys.stderr, flush=True)


def _open_storage(config: Config) -> CheckedDriver | None:
    """The configured driver for an offline command, or None after saying why."""
    from dockyard.storage.drivers.factory import create_driver

    try:
        return create_driver(config.storage.driver, config.storage.parameters)
    except DriverConfigError as exc:
        print(f"dockyard: configuration error: {exc}", file=sys.stderr)
        return None


def _where(config: Config, verb: str) -> str:
    from dockyard.server import storage_location

    if config.storage.driver == "inmemory":
        return f"inmemory (lives inside the server process: nothing to {verb} from here)"
    return storage_location(config)


async def _closing(driver: CheckedDriver, work: Awaitable[T]) -> T:
    """Run ``work``, then close the driver's clients (object stores hold sessions)."""
    try:
        return await work
    finally:
        await driver.aclose()
