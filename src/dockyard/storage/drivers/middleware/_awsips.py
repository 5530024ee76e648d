"""The AWS address ranges for ``cloudfront``'s ``ipfilteredby``, fetched from ``iprangesurl``.

The document is AWS's ``ip-ranges.json`` (``prefixes[].ip_prefix``,
``ipv6_prefixes[].ipv6_prefix``, each with a ``region``); any URL serving that
format works, so an offline site can mirror it. It is fetched on the first download
that needs it (a failure is logged and every client goes through CloudFront, as in
distribution) and again in the background once ``updatefrequency`` has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Iterable
from typing import Any

import aiohttp

__all__ = ["AwsAddresses"]

log = logging.getLogger("dockyard.storage.middleware")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# A fetch that takes longer gives up (and is retried after updatefrequency).
_FETCH_TIMEOUT = 30.0


class AwsAddresses:
    """Which client addresses are inside AWS (or inside ``regions`` when given)."""

    def __init__(self, url: str, update_frequency: float, regions: Iterable[str] | None) -> None:
        self.url = url
        self.update_frequency = update_frequency
        self.regions = frozenset(r.lower() for r in regions) if regions is not None else None
        self.networks: tuple[Network, ...] = ()
        self.initialized = False
        self._attempted = 0.0  # monotonic time of the last fetch started (0: never)
        self._first = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None

    async def contains(self, address: str) -> bool:
        """Whether ``address`` is in the ranges; False until they could be fetched."""
        await self._keep_fresh()
        if not self.initialized:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            log.warning("cloudfront: invalid client address %r; going through CloudFront",
                        address)
            return False
        return any(ip in n for n in self.networks if n.version == ip.version)

    async def _keep_fresh(self) -> None:
        if not self._attempted:
            async with self._first:  # one first fetch, which the first downloads wait for
                if not self._attempted:
                    await self.update()
            return
        due = time.monotonic() - self._attempted >= self.update_frequency
        if due and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.get_running_loop().create_task(self.update())

    async def update(self) -> None:
        """Fetch the ranges once; on failure keep the previous ones and log why."""
        self._attempted = time.monotonic()
        try:
            timeout = aiohttp.ClientTimeout(total=_FETCH_TIMEOUT)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(self.url) as response,
            ):
                if response.status != 200:
                    body = (await response.text(errors="replace"))[:200]
                    raise ValueError(f"HTTP {response.status}: {body}")
                document = await response.json(content_type=None)
            self.networks = self._parse(document)
            self.initialized = True
        except (aiohttp.ClientError, TimeoutError, ValueError, TypeError) as exc:
            log.warning("cloudfront: cannot update the AWS address ranges from %s: %s",
                        self.url, exc)

    def _parse(self, document: Any) -> tuple[Network, ...]:
        if not isinstance(document, dict):
            raise ValueError("expected a JSON object")
        out: list[Network] = []
        for list_key, prefix_key in (("prefixes", "ip_prefix"), ("ipv6_prefixes", "ipv6_prefix")):
            for entry in document.get(list_key) or ():
                if not isinstance(entry, dict):
                    continue
                region = str(entry.get("region", "")).lower()
                if self.regions is not None and region not in self.regions:
                    continue
                try:
                    out.append(ipaddress.ip_network(str(entry.get(prefix_key)), strict=False))
                except ValueError:
                    log.error("cloudfront: unparseable CIDR %r in %s", entry.get(prefix_key),
                              self.url)
        return tuple(out)

    async def aclose(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
