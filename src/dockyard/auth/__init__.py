"""Access control: htpasswd, token (JWT) and silly controllers, and a token issuer.

The HTTP layer needs only what this package exports; the token issuer's aiohttp
application lives in :mod:`dockyard.auth.issuer`.
"""

from dockyard.auth.access import (
    Access,
    AccessController,
    AuthChallenge,
    Grant,
    format_scope,
    parse_scope,
)
from dockyard.auth.factory import build_access_controller

__all__ = [
    "Access",
    "AccessController",
    "AuthChallenge",
    "Grant",
    "build_access_controller",
    "format_scope",
    "parse_scope",
]
