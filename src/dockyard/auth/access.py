"""What a request asks for, what it is granted, and how it is told "no".

The HTTP layer turns each route into a list of :class:`Access` (``repository:foo/bar:pull``),
asks an :class:`AccessController` to ``authorize`` them, and either gets a :class:`Grant`
or catches an :class:`AuthChallenge` it turns into the spec's error envelope::

    controller = build_access_controller(kind, options)   # once, at start (auth.factory)
    try:
        grant = await controller.authorize(request.headers, accesses)
    except AuthChallenge as exc:
        ...   # status, code, message, detail, headers -> {"errors": [...]}

Controllers (as in distribution's ``registry/auth/*``):

- ``htpasswd``  Basic credentials checked against a bcrypt htpasswd file
  (:mod:`dockyard.auth.htpasswd`);
- ``token``     Bearer JWTs from a token issuer (:mod:`dockyard.auth.token`);
- ``silly``     any ``Authorization`` header passes; for development only
  (:mod:`dockyard.auth.silly`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "ALL_ACTIONS",
    "Access",
    "AccessController",
    "AuthChallenge",
    "Grant",
    "access_detail",
    "format_scope",
    "parse_scope",
    "resource_actions",
]

#: The wildcard action: granted, it allows every action on its resource.
ALL_ACTIONS = "*"


@dataclass(frozen=True)
class Access:
    """One action on one resource, as in a token scope ``repository:foo/bar:pull,push``."""

    type: str  # "repository" | "registry" | ...
    name: str  # "foo/bar" | "catalog"
    action: str  # "pull" | "push" | "delete" | "*"


def parse_scope(scope: str) -> list[Access]:
    """Parse a scope string into accesses, one per action.

    A scope is ``type:name:actions``; several are separated by spaces. As in docker's
    reference implementation the type ends at the *first* colon and the actions begin
    after the *last* one, so a name may contain colons (``repository:localhost:5000/a:pull``).
    Actions are comma separated; duplicates are dropped. Raises ``ValueError`` on a
    malformed scope.
    """
    accesses: list[Access] = []
    seen: set[Access] = set()
    for part in scope.split():
        first = part.find(":")
        last = part.rfind(":")
        if first <= 0 or last == first:
            raise ValueError(f"invalid scope {part!r}: expected type:name:actions")
        rtype, name, actions = part[:first], part[first + 1 : last], part[last + 1 :]
        if not name:
            raise ValueError(f"invalid scope {part!r}: empty resource name")
        names = [a for a in actions.split(",") if a]
        if not names:
            raise ValueError(f"invalid scope {part!r}: no actions")
        for action in names:
            access = Access(rtype, name, action)
            if access not in seen:
                seen.add(access)
                accesses.append(access)
    return accesses


def _group(accesses: Iterable[Access]) -> dict[tuple[str, str], list[str]]:
    """Actions per (type, name), both in order of first appearance, without duplicates."""
    groups: dict[tuple[str, str], list[str]] = {}
    for access in accesses:
        actions = groups.setdefault((access.type, access.name), [])
        if access.action not in actions:
            actions.append(access.action)
    return groups


def format_scope(accesses: Sequence[Access]) -> str:
    """``repository:foo/bar:pull,push registry:catalog:*``: one entry per resource."""
    return " ".join(
        f"{rtype}:{name}:{','.join(actions)}" for (rtype, name), actions in _group(accesses).items()
    )


def resource_actions(accesses: Iterable[Access]) -> list[dict[str, Any]]:
    """The ``access`` claim of a token: ``[{"type", "name", "actions"}]``, one per resource."""
    return [
        {"type": rtype, "name": name, "actions": actions}
        for (rtype, name), actions in _group(accesses).items()
    ]


@dataclass(frozen=True)
class Grant:
    """Who the request is, and what it may do.

    ``accesses`` are the granted accesses (a token's ``access`` claim); an access whose
    action is ``*`` grants every action on its resource. ``unrestricted`` grants
    everything (a valid htpasswd user, the silly controller).
    """

    subject: str | None  # user name, None for anonymous
    accesses: frozenset[Access] = frozenset()
    unrestricted: bool = False

    def allows(self, access: Access) -> bool:
        """True if ``access`` is granted (``*`` grants everything on the resource)."""
        if self.unrestricted or access in self.accesses:
            return True
        return Access(access.type, access.name, ALL_ACTIONS) in self.accesses


class AuthChallenge(Exception):
    """The request is not authorized.

    ``status`` 401 with ``code`` ``UNAUTHORIZED`` and a ``WWW-Authenticate`` header in
    ``headers`` (credentials missing, invalid, or lacking a scope), or 403 with ``code``
    ``DENIED``. ``detail`` is what distribution puts in the error envelope: the requested
    accesses as ``[{"Type", "Class", "Name", "Action"}]``.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers: dict[str, str] = dict(headers or {})

    @classmethod
    def unauthorized(cls, www_authenticate: str, accesses: Sequence[Access] = ()) -> AuthChallenge:
        """401 ``UNAUTHORIZED`` with the given ``WWW-Authenticate`` challenge."""
        return cls(
            401,
            "UNAUTHORIZED",
            "authentication required",
            access_detail(accesses),
            {"WWW-Authenticate": www_authenticate},
        )

    @classmethod
    def denied(cls, accesses: Sequence[Access] = ()) -> AuthChallenge:
        """403 ``DENIED``: authenticated, but not allowed."""
        return cls(
            403, "DENIED", "requested access to the resource is denied", access_detail(accesses)
        )

    def __repr__(self) -> str:
        return f"AuthChallenge({self.status}, {self.code!r}, {self.message!r})"


def access_detail(accesses: Sequence[Access]) -> list[dict[str, str]] | None:
    """The error detail distribution sends with a challenge (its ``[]auth.Access`` as JSON)."""
    if not accesses:
        return None
    return [{"Type": a.type, "Class": "", "Name": a.name, "Action": a.action} for a in accesses]


class AccessController(Protocol):
    """Decides whether a request may perform the given accesses."""

    async def authorize(self, headers: Mapping[str, str], accesses: Sequence[Access]) -> Grant:
        """Return the request's grant, or raise :class:`AuthChallenge`.

        Raises unless every access in ``accesses`` is granted. The returned grant may allow
        more (e.g. a token's other scopes), which callers use for optional checks such as
        pull on the source repository of a cross-repository mount.
        """
        ...
