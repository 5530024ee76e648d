"""Prometheus metrics under distribution's names, served by the debug server.

Wired in by the server only when ``http.debug.prometheus.enabled`` is set (a feature
that is off is not wrapped in and costs nothing):

- :mod:`~._families`: ``Metrics``, every family of one worker, with ``counter``,
  ``gauge`` and ``add_source`` for other packages' values (notifications);
- :mod:`~._store`: the values (cheap updates) and the sum of the workers' snapshots;
- :mod:`~.http`: the request middleware (``registry_http_*``);
- :mod:`~.driver`: ``storage_timer``, the timings of the timed storage driver wrapper
  (``registry_storage_action_seconds``);
- :mod:`~.cache`: ``cache_counts``, where the cache counts lookups
  (``registry_storage_cache_*``);
- :mod:`~.exposition`: one scrape's text (with ``--workers N``, of every worker's
  snapshot in the directory the supervisor made).

The server imports this package only when metrics are on.
"""

from __future__ import annotations

from dockyard.metrics._families import Metrics, MetricsSource

__all__ = ["Metrics", "MetricsSource"]
