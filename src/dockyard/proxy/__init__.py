"""Pull-through cache of a remote registry (config.yml's ``proxy`` section).

:mod:`~.remote` talks to the upstream (with :mod:`~.auth`'s challenge handling),
:mod:`~.namespace` serves the cache as another Namespace (:mod:`~.routes`
says which repositories are caches of which upstream, :mod:`~.fill` shares and
streams each blob's download), and :mod:`~.scheduler` expires cached content after
``proxy.ttl``. Nothing here is imported or built
unless ``proxy.remoteurl`` or ``proxy.upstreams`` is set.
"""

from __future__ import annotations

from dockyard.proxy.namespace import ProxyNamespace, ProxyRepository
from dockyard.proxy.remote import RemoteRegistry, UpstreamUnavailable
from dockyard.proxy.routes import Upstream
from dockyard.proxy.scheduler import STATE_PATH, TTLScheduler

__all__ = [
    "STATE_PATH",
    "ProxyNamespace",
    "ProxyRepository",
    "RemoteRegistry",
    "TTLScheduler",
    "Upstream",
    "UpstreamUnavailable",
]
