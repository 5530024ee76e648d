"""``redirect``: blob downloads go to ``baseurl`` + the storage path, on any driver.

As distribution's ``redirect`` middleware: ``baseurl`` needs a scheme and a host;
its path, if any, is joined before the driver path, so the file at
``/docker/registry/v2/blobs/sha256/ab/<hex>/data`` is fetched from
``<baseurl>/docker/registry/v2/blobs/sha256/ab/<hex>/data``. Whatever serves
``baseurl`` (a CDN, nginx over the same directory or bucket) must serve those paths.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from dockyard.storage.drivers.base import StorageDriver
from dockyard.storage.drivers.middleware._forwarding import ForwardingDriver
from dockyard.storage.drivers.middleware._options import OptionReader

__all__ = ["RedirectMiddleware"]


class RedirectMiddleware(ForwardingDriver):
    """Redirects every blob download to the same path under another base URL."""

    def __init__(self, inner: StorageDriver, scheme: str, host: str, base_path: str) -> None:
        super().__init__(inner)
        self.scheme, self.host, self.base_path = scheme, host, base_path

    @classmethod
    def from_options(cls, inner: StorageDriver, options: Mapping[str, Any]) -> RedirectMiddleware:
        o = OptionReader("redirect", options, frozenset({"baseurl"}))
        base = o.required("baseurl")
        o.check_unknown()
        try:
            parts = urlsplit(base)
        except ValueError:
            raise o.fail("baseurl", f"unable to parse {base!r}") from None
        if not parts.scheme:
            raise o.fail("baseurl", f"no scheme in {base!r}")
        if not parts.netloc:
            raise o.fail("baseurl", f"no host in {base!r}")
        return cls(inner, parts.scheme, parts.netloc, parts.path)

    async def redirect_url(self, path: str, method: str) -> str | None:
        if self.base_path:
            path = posixpath.join(self.base_path, path.lstrip("/"))
        return urlunsplit((self.scheme, self.host, quote(path), "", ""))
