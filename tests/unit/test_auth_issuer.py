"""The token issuer: config, ACL, signing material, and its HTTP API on a real server."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import jwt
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from dockyard.auth import Access, AuthChallenge, build_access_controller
from dockyard.auth.issuer import (
    AclRule,
    IssuerConfig,
    TokenSigner,
    create_token_app,
    granted_accesses,
    load_issuer_config,
    parse_issuer_config,
)
from dockyard.auth.keys import libtrust_key_id

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}

CONFIG_YAML = """\
issuer: dockyard-token-issuer
service: dockyard
addr: 127.0.0.1:5001
expiration: 300            # seconds
certificate: keys/token.crt
key: keys/token.key
htpasswd: htpasswd
anonymous: false
groups: {admins: [alice]}
acl:
  - {subject: "group:admins", repository: "*", actions: ["*"]}
  - {subject: "bob", repository: "team/*", actions: ["pull", "push"]}
  - {subject: "anonymous", repository: "public/*", actions: ["pull"]}
  - {subject: "*", repository: "shared/*", actions: ["pull"]}
  - {subject: "group:admins", type: registry, repository: "catalog", actions: ["*"]}
"""


def _write_htpasswd(path: Path, passwords: Mapping[str, str]) -> None:
    lines = [
        f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(4)).decode()}"
        for user, pw in passwords.items()
    ]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    _write_htpasswd(tmp_path / "htpasswd", PASSWORDS)
    path = tmp_path / "issuer.yml"
    path.write_text(CONFIG_YAML)
    return path


@pytest.fixture
def cfg(config_path: Path) -> IssuerConfig:
    return load_issuer_config(config_path)


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@asynccontextmanager
async def _serve(app: web.Application) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession() as session:
            yield session, f"http://{host}:{port}"
    finally:
        await runner.cleanup()


Scenario = Callable[[aiohttp.ClientSession, str], Awaitable[None]]


def _run(cfg: IssuerConfig, scenario: Scenario) -> None:
    async def main() -> None:
        async with _serve(create_token_app(cfg)) as (session, base):
            await scenario(session, base)

    asyncio.run(main())


async def _get_token(
    session: aiohttp.ClientSession,
    base: str,
    scopes: Sequence[str] = (),
    auth: tuple[str, str] | None = None,
    **params: str,
) -> tuple[int, dict[str, Any], Mapping[str, str]]:
    query: list[tuple[str, str]] = [("service", "dockyard")]
    query += [("scope", s) for s in scopes]
    query += list(params.items())
    headers = _basic(*auth) if auth else {}
    async with session.get(f"{base}/token", params=query, headers=headers) as resp:
        return resp.status, await resp.json(), resp.headers


def _access(token: str) -> list[dict[str, Any]]:
    claims = jwt.decode(token, options={"verify_signature": False})
    access: list[dict[str, Any]] = claims["access"]
    return access


# Configuration


def test_example_config_parses(cfg: IssuerConfig, config_path: Path) -> None:
    assert cfg.issuer == "dockyard-token-issuer"
    assert cfg.service == "dockyard"
    assert (cfg.host, cfg.port) == ("127.0.0.1", 5001)
    assert cfg.expiration == 300
    assert cfg.certificate == config_path.parent / "keys/token.crt"
    assert cfg.htpasswd == config_path.parent / "htpasswd"
    assert cfg.anonymous is False
    assert cfg.groups == {"admins": frozenset({"alice"})}
    assert cfg.acl[0] == AclRule("group:admins", "*", ("*",), "repository")
    assert cfg.acl[4] == AclRule("group:admins", "catalog", ("*",), "registry")
    with pytest.raises(AttributeError):
        cfg.issuer = "x"  # type: ignore[misc]


BASE = {"certificate": "/c", "key": "/k"}


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"key": "/k"}, "certificate"),
        ({"certificate": "/c"}, "key"),
        ({**BASE, "expiratoin": 5}, "expiratoin"),
        ({**BASE, "expiration": 0}, "expiration"),
        ({**BASE, "expiration": "5m"}, "expiration"),
        ({**BASE, "anonymous": "yes"}, "anonymous"),
        ({**BASE, "addr": "localhost"}, "addr"),
        ({**BASE, "groups": ["admins"]}, "groups"),
        ({**BASE, "groups": {"admins": "alice"}}, "groups.admins"),
        ({**BASE, "acl": {"subject": "bob"}}, "acl"),
        ({**BASE, "acl": [{"subject": "bob", "repository": "x"}]}, "acl[0].actions"),
        ({**BASE, "acl": [{"subject": "bob", "actions": ["pull"]}]}, "acl[0].repository"),
        ({**BASE, "acl": [{"repository": "x", "actions": ["pull"]}]}, "acl[0].subject"),
        (
            {**BASE, "acl": [{"subject": "group:ghosts", "repository": "x", "actions": ["pull"]}]},
            "acl[0].subject",
        ),
        (
            {**BASE, "acl": [{"subject": "b", "repository": "x", "actions": ["*"], "glob": 1}]},
            "glob",
        ),
    ],
)
def test_config_errors_name_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=key.replace("[", r"\[").replace("]", r"\]")):
        parse_issuer_config(data)


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_issuer_config(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="mapping"):
        load_issuer_config(bad)


# ACL


def _acl_cfg(anonymous: bool = False) -> IssuerConfig:
    return parse_issuer_config(
        {
            **BASE,
            "anonymous": anonymous,
            "groups": {"admins": ["alice"], "devs": ["bob", "carol"]},
            "acl": [
                {"subject": "group:admins", "repository": "*", "actions": ["*"]},
                {"subject": "bob", "repository": "team/*", "actions": ["pull", "push"]},
                {"subject": "group:devs", "repository": "team/shared", "actions": ["delete"]},
                {"subject": "anonymous", "repository": "public/*", "actions": ["pull"]},
                {"subject": "*", "repository": "lib?/x", "actions": ["pull"]},
                {
                    "subject": "group:admins",
                    "type": "registry",
                    "repository": "catalog",
                    "actions": ["*"],
                },
            ],
        }
    )


def _r(name: str, action: str) -> Access:
    return Access("repository", name, action)


CATALOG = Access("registry", "catalog", "*")


def test_acl_glob_matching() -> None:
    cfg = _acl_cfg()
    requested = [
        _r("team/app", "pull"),
        _r("team/app", "push"),
        _r("team/app", "delete"),
        _r("team/a/b", "pull"),
        _r("team", "pull"),
        _r("other/x", "pull"),
        _r("teamx/app", "pull"),
    ]
    assert granted_accesses(cfg, "bob", requested) == [
        _r("team/app", "pull"),
        _r("team/app", "push"),
        _r("team/a/b", "pull"),
    ]


def test_acl_rules_accumulate_across_groups() -> None:
    cfg = _acl_cfg()
    requested = [_r("team/shared", a) for a in ("pull", "push", "delete")]
    assert granted_accesses(cfg, "bob", requested) == requested
    assert granted_accesses(cfg, "carol", requested) == [_r("team/shared", "delete")]


def test_acl_star_subject_and_question_mark_glob() -> None:
    cfg = _acl_cfg()
    requested = [_r("lib1/x", "pull"), _r("lib12/x", "pull"), _r("lib1/x", "push")]
    assert granted_accesses(cfg, "carol", requested) == [_r("lib1/x", "pull")]
    assert granted_accesses(cfg, None, requested) == []


def test_acl_star_action_and_catalog() -> None:
    cfg = _acl_cfg()
    star = _r("anything/at/all", "*")
    assert granted_accesses(cfg, "alice", [star, CATALOG]) == [star, CATALOG]
    # bob may pull and push team/*, but was not granted the action "*" nor the catalog.
    assert granted_accesses(cfg, "bob", [_r("team/app", "*"), CATALOG]) == []


def test_acl_anonymous() -> None:
    closed, opened = _acl_cfg(anonymous=False), _acl_cfg(anonymous=True)
    requested = [_r("public/img", "pull"), _r("public/img", "push"), _r("team/app", "pull")]
    assert granted_accesses(closed, None, requested) == []
    assert granted_accesses(opened, None, requested) == [_r("public/img", "pull")]
    # With anonymous access on, logging in never loses what anonymous may do.
    assert granted_accesses(opened, "carol", requested) == [_r("public/img", "pull")]
    assert granted_accesses(closed, "carol", requested) == []


def test_acl_default_deny() -> None:
    cfg = parse_issuer_config(BASE)
    assert granted_accesses(cfg, "alice", [_r("x", "pull"), CATALOG]) == []


# Signing material


def test_key_and_certificate_generated_once(cfg: IssuerConfig, caplog: Any) -> None:
    with caplog.at_level(logging.WARNING, logger="dockyard.auth.issuer"):
        create_token_app(cfg)
    assert stat.S_IMODE(cfg.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(cfg.certificate.stat().st_mode) == 0o644
    assert any("generated token signing key" in r.getMessage() for r in caplog.records)
    key_pem = cfg.key.read_bytes()
    cert = x509.load_pem_x509_certificate(cfg.certificate.read_bytes())
    signer = TokenSigner.load(cfg.certificate, cfg.key)
    assert signer.algorithm == "ES256"
    assert signer.key_id == libtrust_key_id(cert.public_key())  # type: ignore[arg-type]
    create_token_app(cfg)  # second start reuses them
    assert cfg.key.read_bytes() == key_pem
    assert not [p for p in cfg.key.parent.iterdir() if p.name.startswith(".")]


def test_half_present_signing_material_is_an_error(cfg: IssuerConfig) -> None:
    create_token_app(cfg)
    cfg.certificate.unlink()
    with pytest.raises(ValueError, match="'certificate'"):
        create_token_app(cfg)


def test_mismatched_certificate_is_an_error(cfg: IssuerConfig, tmp_path: Path) -> None:
    create_token_app(cfg)
    other = replace(cfg, certificate=tmp_path / "o.crt", key=tmp_path / "o.key")
    create_token_app(other)
    mixed = replace(cfg, certificate=other.certificate)
    with pytest.raises(ValueError, match=r"'certificate'.*does not match"):
        create_token_app(mixed)


def test_unsupported_htpasswd_hash_is_an_error(cfg: IssuerConfig) -> None:
    assert cfg.htpasswd is not None
    cfg.htpasswd.write_text("alice:$apr1$abcdefgh$0123456789abcdefghijkl\n")
    with pytest.raises(ValueError, match=r"'htpasswd'.*'alice'.*MD5"):
        create_token_app(cfg)


def test_missing_htpasswd_is_an_error(cfg: IssuerConfig) -> None:
    assert cfg.htpasswd is not None
    cfg.htpasswd.unlink()
    with pytest.raises(ValueError, match="'htpasswd'"):
        create_token_app(cfg)


# HTTP API


def test_get_token_grants_intersection(cfg: IssuerConfig) -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        status, body, headers = await _get_token(
            session,
            base,
            ["repository:team/app:pull,push,delete", "repository:other/x:pull"],
            auth=("bob", "bob-pw"),
        )
        assert status == 200, body
        assert headers["Cache-Control"] == "no-store"
        assert body["token"] == body["access_token"]
        assert body["expires_in"] == 300
        issued = dt.datetime.strptime(body["issued_at"], "%Y-%m-%dT%H:%M:%SZ")
        assert abs(issued.replace(tzinfo=dt.UTC) - dt.datetime.now(dt.UTC)) < dt.timedelta(
            seconds=30
        )
        assert "refresh_token" not in body
        assert _access(body["token"]) == [
            {"type": "repository", "name": "team/app", "actions": ["pull", "push"]}
        ]
        header = jwt.get_unverified_header(body["token"])
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        assert header["alg"] == "ES256"
        signer = TokenSigner.load(cfg.certificate, cfg.key)
        assert header["kid"] == signer.key_id
        assert header["x5c"] == signer.x5c
        assert claims["iss"] == cfg.issuer and claims["aud"] == cfg.service
        assert claims["sub"] == "bob"
        assert claims["exp"] - claims["iat"] == 300
        assert {"nbf", "jti"} <= claims.keys()

    _run(cfg, scenario)


def test_get_token_glob_and_catalog(cfg: IssuerConfig) -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        scopes = ["repository:team:pull", "repository:other/x:pull", "registry:catalog:*"]
        _, body, _ = await _get_token(session, base, scopes, auth=("bob", "bob-pw"))
        assert _access(body["token"]) == []
        _, body, _ = await _get_token(session, base, scopes, auth=("alice", "alice-pw"))
        assert _access(body["token"]) == [
            {"type": "repository", "name": "team", "actions": ["pull"]},
            {"type": "repository", "name": "other/x", "actions": ["pull"]},
            {"type": "registry", "name": "catalog", "actions": ["*"]},
        ]

    _run(cfg, scenario)


def test_login_without_scope(cfg: IssuerConfig) -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        status, body, _ = await _get_token(
            session, base, auth=("carol", "carol-pw"), account="carol"
        )
        assert status == 200 and _access(body["token"]) == []

    _run(cfg, scenario)


@pytest.mark.parametrize(
    "auth", [("alice", "wrong"), ("mallory", "alice-pw"), ("alice", "")], ids=str
)
def test_wrong_password(cfg: IssuerConfig, auth: tuple[str, str]) -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        status, body, headers = await _get_token(
            session, base, ["repository:team/app:pull"], auth=auth
        )
        assert status == 401
        assert body["errors"][0]["code"] == "UNAUTHORIZED"
        assert headers["WWW-Authenticate"] == 'Basic realm="dockyard-token-issuer"'
        assert "token" not in body

    _run(cfg, scenario)


def test_anonymous_refused_when_disabled(cfg: IssuerConfig) -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        status, body, headers = await _get_token(session, base, ["repository:public/x:pull"])
        assert status == 401 and body["errors"][0]["code"] == "UNAUTHORIZED"
        assert headers["WWW-Authenticate"].startswith("Basic ")

    _run(cfg, scenario)


def test_anonymous_when_enabled(cfg: IssuerConfig) -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        status, body, _ = await _get_token(
            session,
            base,
            ["repository:public/x:pull,push", "repository:team/app:pull", "registry:catalog:*"],
            offline_token="true",
        )
        assert status == 200
        assert _access(body["token"]) == [
            {"type": "repository", "name": "public/x", "actions": ["pull"]}
        ]
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        assert claims["sub"] == ""
        assert "refresh_token" not in body

    _run(replace(cfg, anonymous=True), scenario)


@pytest.mark.parametrize(
    ("params", "scopes", "fragment"),
    [
        ({"service": "other"}, [], "service"),
        ({"account": "alice"}, [], "account"),
        ({}, ["repository:team/app"], "scope"),
    ],
)
def test_bad_requests(
    cfg: IssuerConfig, params: dict[str, str], scopes: list[str], fragment: str
) -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        query = [("service", params.pop("service", "dockyard")), *params.items()]
        query += [("scope", s) for s in scopes]
        async with session.get(
            f"{base}/token", params=query, headers=_basic("bob", "bob-pw")
        ) as resp:
            body = await resp.json()
        assert resp.status == 400
        assert fragment in body["errors"][0]["message"]

    _run(cfg, scenario)


def test_post_password_and_refresh_grants(cfg: IssuerConfig) -> None:
    assert cfg.htpasswd is not None
    htpasswd = cfg.htpasswd

    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        form = {
            "grant_type": "password",
            "username": "bob",
            "password": "bob-pw",
            "service": "dockyard",
            "scope": "repository:team/app:pull,push repository:other/x:pull",
            "client_id": "docker",
            "access_type": "offline",
        }
        async with session.post(f"{base}/token", data=form) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["access_token"] == body["token"]
        assert body["scope"] == "repository:team/app:pull,push"
        refresh = body["refresh_token"]
        # The refresh token is no access token for the registry.
        assert jwt.decode(refresh, options={"verify_signature": False}).get("access") is None

        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "service": "dockyard",
            "scope": "repository:team/app:pull",
            "client_id": "docker",
        }
        async with session.post(f"{base}/token", data=form) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert _access(body["access_token"]) == [
            {"type": "repository", "name": "team/app", "actions": ["pull"]}
        ]
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["sub"] == "bob"

        async with session.post(f"{base}/token", data={**form, "refresh_token": "x.y.z"}) as r:
            assert r.status == 401
        async with session.post(f"{base}/token", data={**form, "username": "alice"}) as r:
            assert r.status == 401

        # A password change revokes the refresh token.
        _write_htpasswd(htpasswd, {**PASSWORDS, "bob": "new-pw"})
        st = htpasswd.stat()
        os.utime(htpasswd, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        async with session.post(f"{base}/token", data=form) as resp:
            assert resp.status == 401
            assert (await resp.json())["errors"][0]["code"] == "UNAUTHORIZED"

    _run(cfg, scenario)


def test_get_offline_token(cfg: IssuerConfig) -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        status, body, _ = await _get_token(
            session, base, auth=("alice", "alice-pw"), offline_token="true", client_id="docker"
        )
        assert status == 200 and body["refresh_token"]
        form = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
        async with session.post(f"{base}/token", data=form) as resp:
            assert resp.status == 200

    _run(cfg, scenario)


def test_post_errors(cfg: IssuerConfig) -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        form = {"grant_type": "password", "username": "bob", "password": "nope"}
        async with session.post(f"{base}/token", data=form) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Basic realm=")
            assert (await resp.json())["errors"][0]["code"] == "UNAUTHORIZED"
        async with session.post(f"{base}/token", data={"grant_type": "implicit"}) as resp:
            assert resp.status == 400
            assert (await resp.json())["errors"][0]["code"] == "UNSUPPORTED"
        async with session.post(f"{base}/token", data={"grant_type": "password"}) as resp:
            assert resp.status == 400

    _run(cfg, scenario)


def test_secrets_never_logged(cfg: IssuerConfig, caplog: Any) -> None:
    tokens: list[str] = []

    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        _, body, _ = await _get_token(
            session,
            base,
            ["repository:team/app:pull"],
            auth=("bob", "bob-pw"),
            offline_token="true",
        )
        tokens.extend([body["token"], body["refresh_token"]])
        await _get_token(session, base, auth=("bob", "bad-password"))

    with caplog.at_level(logging.DEBUG):
        _run(cfg, scenario)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "issued token to bob" in text
    for secret in ["bob-pw", "bad-password", *tokens]:
        assert secret not in text


# End to end: issuer tokens accepted by the registry's token controller


def _registry_controller(cfg: IssuerConfig, **options: Any) -> Any:
    return build_access_controller(
        "token",
        {
            "realm": "http://127.0.0.1:5001/token",
            "service": cfg.service,
            "issuer": cfg.issuer,
            **options,
        },
    )


def test_issued_token_accepted_by_token_controller(cfg: IssuerConfig) -> None:
    pull, push = _r("team/app", "pull"), _r("team/app", "push")

    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        via_x5c = _registry_controller(cfg, rootcertbundle=str(cfg.certificate))
        _, body, _ = await _get_token(
            session, base, ["repository:team/app:pull"], auth=("bob", "bob-pw")
        )
        grant = await via_x5c.authorize({"Authorization": f"Bearer {body['token']}"}, [pull])
        assert grant.subject == "bob" and not grant.allows(push)
        with pytest.raises(AuthChallenge) as info:
            await via_x5c.authorize({"Authorization": f"Bearer {body['token']}"}, [pull, push])
        assert 'error="insufficient_scope"' in info.value.headers["WWW-Authenticate"]

        # The same key trusted by kid only (a token without x5c).
        signer = TokenSigner.load(cfg.certificate, cfg.key)
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        by_kid = signer.sign(claims, x5c=False)
        assert "x5c" not in jwt.get_unverified_header(by_kid)
        grant = await via_x5c.authorize({"Authorization": f"Bearer {by_kid}"}, [pull])
        assert grant.subject == "bob"

        # A registry for another service refuses it.
        other = build_access_controller(
            "token",
            {
                "realm": "r",
                "service": "elsewhere",
                "issuer": cfg.issuer,
                "rootcertbundle": str(cfg.certificate),
            },
        )
        with pytest.raises(AuthChallenge) as info:
            await other.authorize({"Authorization": f"Bearer {body['token']}"}, [pull])
        assert 'error="invalid_token"' in info.value.headers["WWW-Authenticate"]

    _run(cfg, scenario)


def test_refresh_token_is_useless_at_the_registry(cfg: IssuerConfig) -> None:
    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        controller = _registry_controller(cfg, rootcertbundle=str(cfg.certificate))
        _, body, _ = await _get_token(
            session, base, auth=("alice", "alice-pw"), offline_token="true"
        )
        with pytest.raises(AuthChallenge) as info:
            await controller.authorize(
                {"Authorization": f"Bearer {body['refresh_token']}"}, [_r("x", "pull")]
            )
        assert 'error="invalid_token"' in info.value.headers["WWW-Authenticate"]

    _run(cfg, scenario)


def test_eddsa_issuer_key(cfg: IssuerConfig) -> None:
    # An operator-provided Ed25519 key and self-signed certificate.
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, None)
    )
    cfg.key.parent.mkdir(parents=True, exist_ok=True)
    cfg.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cfg.certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        _, body, _ = await _get_token(
            session, base, ["repository:team/app:push"], auth=("bob", "bob-pw")
        )
        assert jwt.get_unverified_header(body["token"])["alg"] == "EdDSA"
        controller = _registry_controller(cfg, rootcertbundle=str(cfg.certificate))
        grant = await controller.authorize(
            {"Authorization": f"Bearer {body['token']}"}, [_r("team/app", "push")]
        )
        assert grant.subject == "bob"

    _run(cfg, scenario)


def test_jwks_trust_of_issuer_key(cfg: IssuerConfig, tmp_path: Path) -> None:
    signer = TokenSigner.load_or_create(cfg.certificate, cfg.key, cfg.issuer)
    assert isinstance(signer.public_key, ec.EllipticCurvePublicKey)
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(signer.public_key, as_dict=True)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk | {"kid": signer.key_id}]}))
    controller = _registry_controller(cfg, jwks=str(jwks))

    async def scenario(session: aiohttp.ClientSession, base: str) -> None:
        _, body, _ = await _get_token(
            session, base, ["repository:team/app:pull"], auth=("bob", "bob-pw")
        )
        # The x5c chain cannot be verified without a root bundle; the kid is trusted.
        grant = await controller.authorize(
            {"Authorization": f"Bearer {body['token']}"}, [_r("team/app", "pull")]
        )
        assert grant.subject == "bob"
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        token = signer.sign(claims, x5c=False)
        grant = await controller.authorize(
            {"Authorization": f"Bearer {token}"}, [_r("team/app", "pull")]
        )
        assert grant.subject == "bob"

    _run(cfg, scenario)


def test_concurrent_first_starts_agree_on_one_key(cfg: IssuerConfig) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        signers = list(
            pool.map(
                lambda _: TokenSigner.load_or_create(cfg.certificate, cfg.key, cfg.issuer),
                range(4),
            )
        )
    assert len({s.key_id for s in signers}) == 1
