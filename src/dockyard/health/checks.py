"""The checkers of the ``health`` section, as distribution's ``health/checks``.

Each is an async callable returning None when healthy, else the error text the
original reports for it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence

import aiohttp

from dockyard.errors import StorageError
from dockyard.storage.drivers.base import PathNotFound, StorageDriver

__all__ = ["Probe", "file_checker", "http_checker", "storage_driver_checker", "tcp_checker"]

#: One check: None when healthy, else why not.
Probe = Callable[[], Awaitable[str | None]]


def file_checker(path: str) -> Probe:
    """Unhealthy while ``path`` exists (the operator's switch to drain an instance)."""

    async def check() -> str | None:
        exists = await asyncio.to_thread(os.path.exists, path)
        return "file exists" if exists else None

    return check


def http_checker(
    uri: str, status_code: int, timeout: float, headers: Mapping[str, Sequence[str]]
) -> Probe:
    """Unhealthy unless a ``HEAD uri`` answers ``status_code`` within ``timeout`` seconds."""
    header_pairs = [(name, value) for name, values in headers.items() for value in values]

    async def check() -> str | None:
        client_timeout = aiohttp.ClientTimeout(total=timeout or None)
        try:
            async with (
                aiohttp.ClientSession(timeout=client_timeout) as session,
                session.head(uri, headers=header_pairs, allow_redirects=False) as response,
            ):
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
            return f"error while checking: {uri}"
        if status != status_code:
            return f"downstream service returned unexpected status: {status}"
        return None

    return check


def tcp_checker(host: str, port: int, timeout: float) -> Probe:
    """Unhealthy unless ``host:port`` accepts a TCP connection within ``timeout`` seconds."""
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def check() -> str | None:
        try:
            async with asyncio.timeout(timeout or None):
                _, writer = await asyncio.open_connection(host or "localhost", port)
        except (OSError, TimeoutError):
            return f"connection to {shown} failed"
        writer.close()
        return None

    return check


def storage_driver_checker(driver: StorageDriver) -> Probe:
    """Unhealthy while the storage backend fails a listing of the layout's root.

    A missing root is healthy: the backend answered (a fresh, empty registry).
    """

    async def check() -> str | None:
        try:
            await driver.list("/docker")
        except PathNotFound:
            return None
        except StorageError as exc:
            return str(exc) or type(exc).__name__
        return None

    return check
