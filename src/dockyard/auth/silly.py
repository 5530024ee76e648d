"""distribution's ``silly`` access controller: for development and tests only.

Any request with an ``Authorization`` header (whatever it holds) is granted everything
as user ``silly``; a request without one gets a Bearer challenge with the configured
realm and service and the scope of the requested accesses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dockyard.auth._util import bearer_challenge, check_keys, get_header, option_str
from dockyard.auth.access import Access, AuthChallenge, Grant, format_scope

__all__ = ["SillyAccessController"]

_SECTION = "auth.silly"


class SillyAccessController:
    """Grants everything to any request that has an ``Authorization`` header."""

    def __init__(self, realm: str, service: str) -> None:
        self.realm = realm
        self.service = service

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SillyAccessController:
        """From ``auth.silly``: ``realm`` and ``service``."""
        check_keys(options, _SECTION, ("realm", "service"))
        return cls(option_str(options, _SECTION, "realm"), option_str(options, _SECTION, "service"))

    async def authorize(self, headers: Mapping[str, str], accesses: Sequence[Access]) -> Grant:
        if not get_header(headers, "Authorization"):
            value = bearer_challenge(self.realm, self.service, format_scope(accesses))
            raise AuthChallenge.unauthorized(value, accesses)
        return Grant(subject="silly", unrestricted=True)
