"""Storage middleware (``middleware.storage``): wrappers around the driver.

As in distribution, each entry of ``middleware.storage`` wraps the driver built so
far, in order, and changes where blob downloads are redirected (``redirect_url``);
every other call goes to the driver unchanged (:class:`ForwardingDriver`). The
middleware:

``redirect``
    ``baseurl``: downloads go to ``<baseurl><storage path>`` (any driver).
``cloudfront``
    ``baseurl``, ``privatekey``, ``keypairid``, ``duration``, ``ipfilteredby``,
    ``awsregion``, ``updatefrequency``, ``iprangesurl``: downloads go to
    CloudFront URLs signed with the key pair (S3 only); see :mod:`.cloudfront`.

With ``storage.redirect.disable: true`` nothing is redirected, so the entries are
checked and then left out (a feature that is off costs nothing). An unknown name or
option is a :class:`~dockyard.storage.drivers.params.DriverConfigError` naming
``middleware.storage.<name>[.<option>]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from dockyard.storage.drivers.base import StorageDriver
from dockyard.storage.drivers.middleware._forwarding import ForwardingDriver
from dockyard.storage.drivers.middleware.redirect import RedirectMiddleware
from dockyard.storage.drivers.params import DriverConfigError

__all__ = [
    "ForwardingDriver",
    "MiddlewareSpec",
    "RedirectMiddleware",
    "wrap_middleware",
]


def _cloudfront(driver: StorageDriver, options: Mapping[str, Any]) -> StorageDriver:
    # Imported when configured: its signing loads `cryptography` (several MiB per process).
    from dockyard.storage.drivers.middleware.cloudfront import CloudFrontMiddleware

    return CloudFrontMiddleware.from_options(driver, options)


_BUILDERS: dict[str, Callable[[StorageDriver, Mapping[str, Any]], StorageDriver]] = {
    "redirect": RedirectMiddleware.from_options,
    "cloudfront": _cloudfront,
}


class MiddlewareSpec(Protocol):
    """One configured entry (``dockyard.config.MiddlewareEntry`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def options(self) -> Mapping[str, Any]: ...


def wrap_middleware(
    driver: StorageDriver, entries: Sequence[MiddlewareSpec], *, redirect: bool = True
) -> StorageDriver:
    """``driver`` wrapped in each entry in turn; unwrapped when ``redirect`` is off."""
    wrapped = driver
    for entry in entries:
        builder = _BUILDERS.get(entry.name)
        if builder is None:
            raise DriverConfigError(
                f"middleware.storage.{entry.name}: unknown storage middleware "
                f"(supported: {', '.join(sorted(_BUILDERS))})"
            )
        wrapped = builder(wrapped, entry.options)
    return wrapped if redirect else driver
