"""The controller of the config's ``auth`` section, built by name.

A controller module is imported only when configured, so a registry without
token auth never loads the JWT stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dockyard.auth.access import AccessController

__all__ = ["build_access_controller"]


def build_access_controller(kind: str, options: Mapping[str, Any]) -> AccessController:
    """Build the controller of the config's ``auth.<kind>`` section.

    ``kind`` is ``htpasswd``, ``token`` or ``silly``. Raises ``ValueError`` naming the
    option key on bad configuration.
    """
    if not isinstance(options, Mapping):
        raise ValueError(f"auth.{kind}: options must be a mapping")
    if kind == "htpasswd":
        from dockyard.auth.htpasswd import HtpasswdAccessController

        return HtpasswdAccessController.from_options(options)
    if kind == "token":
        from dockyard.auth.token import TokenAccessController

        return TokenAccessController.from_options(options)
    if kind == "silly":
        from dockyard.auth.silly import SillyAccessController

        return SillyAccessController.from_options(options)
    raise ValueError(f"auth: unknown access controller {kind!r} (htpasswd, token, silly)")
