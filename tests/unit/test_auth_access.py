"""Scopes, grants, challenges, the controller factory and the silly controller."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.auth import (
    Access,
    AuthChallenge,
    Grant,
    build_access_controller,
    format_scope,
    parse_scope,
)
from dockyard.auth.access import access_detail, resource_actions

PULL = Access("repository", "foo/bar", "pull")
PUSH = Access("repository", "foo/bar", "push")


def test_parse_scope_one_resource_several_actions() -> None:
    assert parse_scope("repository:foo/bar:pull,push") == [PULL, PUSH]


def test_parse_scope_several_resources_space_separated() -> None:
    assert parse_scope("repository:foo/bar:pull registry:catalog:*") == [
        PULL,
        Access("registry", "catalog", "*"),
    ]


def test_parse_scope_name_with_port_splits_at_first_and_last_colon() -> None:
    assert parse_scope("repository:localhost:5000/foo/bar:pull") == [
        Access("repository", "localhost:5000/foo/bar", "pull")
    ]


def test_parse_scope_keeps_resource_class_in_type() -> None:
    assert parse_scope("repository(plugin):foo:pull") == [
        Access("repository(plugin)", "foo", "pull")
    ]


def test_parse_scope_drops_duplicates_and_empty_actions() -> None:
    assert parse_scope("repository:foo/bar:pull,,pull,push repository:foo/bar:push") == [
        PULL,
        PUSH,
    ]


def test_parse_scope_empty_string() -> None:
    assert parse_scope("") == []
    assert parse_scope("   ") == []


@pytest.mark.parametrize(
    "scope",
    ["repository", "repository:foo", ":foo:pull", "repository::pull", "repository:foo:", "a:b:,"],
)
def test_parse_scope_rejects_malformed(scope: str) -> None:
    with pytest.raises(ValueError):
        parse_scope(scope)


def test_format_scope_groups_per_resource_in_order() -> None:
    accesses = [
        PULL,
        Access("registry", "catalog", "*"),
        PUSH,
        PULL,
        Access("repository", "other", "delete"),
    ]
    assert format_scope(accesses) == (
        "repository:foo/bar:pull,push registry:catalog:* repository:other:delete"
    )
    assert format_scope([]) == ""


def test_format_and_parse_round_trip() -> None:
    scope = "repository:localhost:5000/a:pull,push registry:catalog:*"
    assert format_scope(parse_scope(scope)) == scope


def test_resource_actions_is_the_token_access_claim() -> None:
    assert resource_actions([PULL, PUSH, Access("registry", "catalog", "*")]) == [
        {"type": "repository", "name": "foo/bar", "actions": ["pull", "push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]


def test_grant_allows_listed_accesses_only() -> None:
    grant = Grant("alice", frozenset({PULL}))
    assert grant.allows(PULL)
    assert not grant.allows(PUSH)
    assert not grant.allows(Access("repository", "foo/other", "pull"))


def test_grant_star_action_grants_everything_on_the_resource() -> None:
    grant = Grant("alice", frozenset({Access("repository", "foo/bar", "*")}))
    assert grant.allows(PULL)
    assert grant.allows(PUSH)
    assert grant.allows(Access("repository", "foo/bar", "delete"))
    assert grant.allows(Access("repository", "foo/bar", "*"))
    assert not grant.allows(Access("repository", "foo/barx", "pull"))
    assert not grant.allows(Access("registry", "foo/bar", "pull"))


def test_grant_unrestricted_and_anonymous() -> None:
    assert Grant("alice", unrestricted=True).allows(Access("registry", "catalog", "*"))
    anonymous = Grant(None)
    assert anonymous.subject is None
    assert not anonymous.allows(PULL)


def test_grant_is_frozen() -> None:
    grant = Grant("alice")
    with pytest.raises(AttributeError):
        grant.subject = "mallory"  # type: ignore[misc]


def test_auth_challenge_fields() -> None:
    exc = AuthChallenge.unauthorized('Basic realm="r"', [PULL])
    assert (exc.status, exc.code, exc.message) == (401, "UNAUTHORIZED", "authentication required")
    assert exc.headers == {"WWW-Authenticate": 'Basic realm="r"'}
    assert exc.detail == [{"Type": "repository", "Class": "", "Name": "foo/bar", "Action": "pull"}]
    denied = AuthChallenge.denied([PUSH])
    assert (denied.status, denied.code, denied.headers) == (403, "DENIED", {})
    assert access_detail([]) is None
    plain = AuthChallenge(403, "DENIED", "no")
    assert plain.detail is None and plain.headers == {}


def test_build_unknown_kind() -> None:
    with pytest.raises(ValueError, match="ldap"):
        build_access_controller("ldap", {})


@pytest.mark.parametrize(
    ("kind", "options", "key"),
    [
        ("silly", {"service": "s"}, "realm"),
        ("silly", {"realm": "r"}, "service"),
        ("silly", {"realm": "r", "service": "s", "bogus": 1}, "bogus"),
        ("htpasswd", {"path": "/nonexistent"}, "realm"),
        ("htpasswd", {"realm": "r"}, "path"),
        ("token", {"service": "s", "issuer": "i", "rootcertbundle": "x"}, "realm"),
        ("token", {"realm": "r", "issuer": "i", "rootcertbundle": "x"}, "service"),
        ("token", {"realm": "r", "service": "s", "rootcertbundle": "x"}, "issuer"),
        ("token", {"realm": "r", "service": "s", "issuer": "i"}, "rootcertbundle"),
        (
            "token",
            {"realm": "r", "service": "s", "issuer": "i", "rootcertbundle": "/nonexistent"},
            "rootcertbundle",
        ),
    ],
)
def test_build_errors_name_the_option(kind: str, options: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        build_access_controller(kind, options)


def test_silly_challenges_without_authorization() -> None:
    controller = build_access_controller("silly", {"realm": "https://auth/token", "service": "reg"})
    with pytest.raises(AuthChallenge) as info:
        asyncio.run(controller.authorize({}, [PULL, PUSH]))
    assert info.value.status == 401
    assert info.value.headers["WWW-Authenticate"] == (
        'Bearer realm="https://auth/token",service="reg",scope="repository:foo/bar:pull,push"'
    )


def test_silly_challenge_without_accesses_has_no_scope() -> None:
    controller = build_access_controller("silly", {"realm": "r", "service": "s"})
    with pytest.raises(AuthChallenge) as info:
        asyncio.run(controller.authorize({}, []))
    assert info.value.headers["WWW-Authenticate"] == 'Bearer realm="r",service="s"'


def test_silly_grants_everything_with_any_authorization() -> None:
    controller = build_access_controller("silly", {"realm": "r", "service": "s"})
    grant = asyncio.run(controller.authorize({"authorization": "whatever"}, [PUSH]))
    assert grant.subject == "silly"
    assert grant.allows(Access("registry", "catalog", "*"))
