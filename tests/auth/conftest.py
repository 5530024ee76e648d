"""Fixtures for access control and TLS: real registry and token-issuer processes.

``DOCKYARD_TEST_TARGET=distribution`` runs the registries as Debian's docker-registry 2.8
(the token issuer is always dockyard's own), which proves that what these tests assert is
what the original does, and that its tokens are good for the original too.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.support.auth import PKI, OciImage, Skopeo, TokenServer, make_oci_image, write_htpasswd
from tests.support.servers import RegistryProcess

ISSUER = "dockyard-test-issuer"
SERVICE = "dockyard-test-registry"

ImageFactory = Callable[..., OciImage]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """A CA made for this session; ``pki.issue(name, server=...)`` makes leaves."""
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def skopeo(tmp_path_factory: pytest.TempPathFactory) -> Skopeo:
    return Skopeo(tmp_path_factory.mktemp("skopeo"))


@pytest.fixture
def make_image(tmp_path: Path) -> ImageFactory:
    """``make_image(tag="v1", payload=None)``: a one-layer OCI layout for skopeo."""
    count = 0

    def factory(**kwargs: Any) -> OciImage:
        nonlocal count
        count += 1
        return make_oci_image(tmp_path / f"image{count}", **kwargs)

    return factory


@dataclass
class TokenEnv:
    """A registry with ``auth.token`` and the dockyard token issuer it trusts.

    Users (passwords random per session):

    - ``alice``: every action on every repository, and the catalog;
    - ``bob`` (group ``readers``): ``pull`` on ``team/*`` only;
    - ``carol``: ``pull,push`` on ``team/*`` only.
    """

    issuer: TokenServer
    registry: RegistryProcess
    passwords: dict[str, str]
    #: Every secret the tests saw (passwords, tokens): none may be logged.
    secrets: set[str] = field(default_factory=set)

    def token(self, user: str | None, *scopes: str, password: str | None = None) -> str:
        """A token from the issuer for ``scopes`` (asserts the issuer said 200)."""
        if user is not None and password is None:
            password = self.passwords[user]
        response = self.issuer.token(scopes, user, password)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token"] == body["access_token"]
        self.secrets.add(body["token"])
        return str(body["token"])

    def creds(self, user: str) -> str:
        return f"{user}:{self.passwords[user]}"


def issuer_settings() -> dict[str, Any]:
    return {
        "issuer": ISSUER,
        "service": SERVICE,
        "expiration": 300,
        "certificate": "certs/issuer.crt",  # with the key, generated at first start
        "key": "certs/issuer.key",
        "htpasswd": "users.htpasswd",
        "anonymous": False,
        "groups": {"readers": ["bob"]},
        "acl": [
            {"subject": "alice", "repository": "*", "actions": ["*"]},
            {"subject": "alice", "type": "registry", "repository": "catalog", "actions": ["*"]},
            {"subject": "group:readers", "repository": "team/*", "actions": ["pull"]},
            {"subject": "carol", "repository": "team/*", "actions": ["pull", "push"]},
        ],
    }


def start_token_env(
    tmp_path_factory: pytest.TempPathFactory, target: str, **token_options: Any
) -> TokenEnv:
    passwords = {user: secrets.token_urlsafe(18) for user in ("alice", "bob", "carol")}
    workdir = tmp_path_factory.mktemp("issuer")
    write_htpasswd(workdir / "users.htpasswd", passwords)
    issuer = TokenServer(workdir, issuer_settings())
    issuer.start()
    registry = RegistryProcess(
        tmp_path_factory.mktemp("registry"),
        kind=target,  # type: ignore[arg-type]
        log_level="debug",  # secrets must stay out of the most verbose log too
        overrides={
            "auth": {
                "token": {
                    "realm": issuer.realm,
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "rootcertbundle": str(issuer.path("certificate")),
                    **token_options,
                }
            }
        },
    )
    try:
        registry.start()
    except BaseException:
        issuer.stop()
        raise
    return TokenEnv(issuer, registry, passwords, set(passwords.values()))


@pytest.fixture(scope="module")
def token_env(tmp_path_factory: pytest.TempPathFactory, target: str) -> Iterator[TokenEnv]:
    env = start_token_env(tmp_path_factory, target)
    try:
        yield env
    finally:
        env.registry.stop()
        env.issuer.stop()
