"""Everything a handler needs, built once by the app factory (no global state)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiohttp import web

from dockyard.api.state import UploadStateSigner
from dockyard.auth import AccessController
from dockyard.notifications import Notifier
from dockyard.registry.namespace import Namespace

__all__ = ["CONTEXT", "AppContext", "UrlSettings", "context"]


# eq=False: compared and hashed by identity (one per application), in C; every
# notification's client key holds it, and a dataclass's own __hash__ is a Python call.
@dataclass(frozen=True, slots=True, eq=False)
class UrlSettings:
    """How Location URLs are built (``http.host``, ``http.relativeurls``, ``http.prefix``)."""

    host: str | None = None
    relative: bool = False
    prefix: str = "/"


@dataclass(frozen=True, slots=True)
class AppContext:
    """The registry one application serves."""

    namespace: Namespace
    signer: UploadStateSigner
    urls: UrlSettings = UrlSettings()
    headers: Mapping[str, Sequence[str]] = field(default_factory=dict)
    catalog_max_entries: int = 1000
    access: AccessController | None = None
    body_timeout: float = 60.0
    """``http.limits.bodytimeout``: the longest a body may stall, either way."""
    min_body_rate: int = 0
    """``http.limits.minbodyrate``: bytes/s a request body averages over each
    ``body_timeout`` spent waiting for it (0: no minimum)."""
    ui_enabled: bool = True
    """``ui.enabled``: serve the web UI (:mod:`dockyard.ui`) at ``<prefix>/ui/``."""
    notifier: Notifier | None = None
    """``notifications``: repositories are wrapped to emit events when it is set."""


CONTEXT = web.AppKey("dockyard.context", AppContext)


def context(request: web.Request) -> AppContext:
    """The typed context of the application serving ``request``."""
    return request.app[CONTEXT]
