"""dockyard's web UI: static pages that browse the registry from the browser.

The pages (``static/``: plain HTML, CSS and JavaScript, no build step, nothing fetched
from elsewhere) are served at ``<http.prefix>/ui/`` to anyone; every piece of data
they show is fetched by the browser from ``/v2/`` (and ``/dockyard/v1/`` where it
exists) with the user's own credentials, so the UI sees exactly what the API lets the
user see. :func:`ui_routes` gives the routes, wired in by :func:`dockyard.api.app.create_app`:

- ``GET <prefix>/``: redirects to ``<prefix>/ui/``;
- ``GET <prefix>/ui/`` and ``<prefix>/ui/<asset>``: the pages;
- ``GET <prefix>/ui/config.json``: what the pages must know of the server (prefix,
  whether deletes are enabled, the kind of access control);
- ``GET <prefix>/ui/token?scope=..``: with token auth, the token request relayed to the
  configured realm (the browser could not call another origin without CORS there).
"""

from __future__ import annotations

from dockyard.ui.routes import PUBLIC_ROUTE_PREFIX, UISettings, ui_routes

__all__ = ["PUBLIC_ROUTE_PREFIX", "UISettings", "ui_routes"]
