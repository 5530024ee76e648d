"""Prometheus metrics under distribution's names, served by the debug server.

Wired in by the server only when ``http.debug.prometheus.enabled`` is set (a feature
that is off is not wrapped in and costs nothing):

- :mod:`~._families`: :class:`Metrics`, every family of one worker, and
  :meth:`Metrics.add_source` for values collected at scrape time;
- :mod:`~.http`: the request middleware (``registry_http_*``);
- :mod:`~.driver`: :class:`TimedDriver` (``registry_storage_action_seconds``);
- :mod:`~.cache`: :class:`CountingCache` (``registry_storage_cache_*``);
- :mod:`~.exposition`: one scrape's text; :mod:`~.multiproc`: ``--workers N``.

This module imports nothing from prometheus-client, so that the supervisor can set up
multiprocess mode (:func:`~.multiproc.prepare_multiprocess`) before its first import.
"""

from __future__ import annotations
