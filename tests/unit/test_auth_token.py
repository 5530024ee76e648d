"""The token access controller: trust (x5c, kid, jwks), algorithms, claims, challenges."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from dockyard.auth import Access, AuthChallenge, Grant, build_access_controller
from dockyard.auth.keys import libtrust_key_id, verify_chain
from dockyard.auth.token import TokenAccessController

ISSUER = "test-issuer"
SERVICE = "test-registry"
REALM = "https://auth.example.com/token"
PULL = Access("repository", "foo/bar", "pull")
PUSH = Access("repository", "foo/bar", "push")

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _cert(
    subject: str,
    key: PrivateKey,
    issuer_name: str | None = None,
    issuer_key: PrivateKey | None = None,
    *,
    ca: bool = False,
    path_length: int | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name or subject)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(hours=1))
        .not_valid_after(not_after or now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    )
    signer = issuer_key or key
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(signer, algorithm)


def _der_b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now,
        "iat": now,
        "jti": "j1",
        "access": [{"type": "repository", "name": "foo/bar", "actions": ["pull", "push"]}],
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Trust:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    bundle: Path

    @property
    def kid(self) -> str:
        return libtrust_key_id(self.key.public_key())

    def token(
        self,
        claims: Mapping[str, Any] | None = None,
        *,
        x5c: bool = True,
        kid: bool = True,
        key: Any = None,
        alg: str = "ES256",
    ) -> str:
        headers: dict[str, Any] = {}
        if kid:
            headers["kid"] = self.kid
        if x5c:
            headers["x5c"] = [_der_b64(self.cert)]
        return jwt.encode(
            dict(claims if claims is not None else _claims()),
            key if key is not None else self.key,
            algorithm=alg,
            headers=headers,
        )


@pytest.fixture
def trust(tmp_path: Path) -> Trust:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("token-signer", key)
    bundle = tmp_path / "root.pem"
    other = _cert("unrelated-root", ec.generate_private_key(ec.SECP256R1()))
    bundle.write_bytes(_pem(other, cert))
    return Trust(key, cert, bundle)


def _controller(bundle: Path | None = None, **options: Any) -> TokenAccessController:
    opts: dict[str, Any] = {"realm": REALM, "service": SERVICE, "issuer": ISSUER}
    if bundle is not None:
        opts["rootcertbundle"] = str(bundle)
    opts.update(options)
    controller = build_access_controller("token", opts)
    assert isinstance(controller, TokenAccessController)
    return controller


def _authorize(
    controller: TokenAccessController,
    token: str | None,
    accesses: Sequence[Access] = (PULL,),
    headers: Mapping[str, str] | None = None,
) -> Grant:
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    return asyncio.run(controller.authorize(all_headers, accesses))


def _challenge(
    controller: TokenAccessController,
    token: str | None,
    accesses: Sequence[Access] = (PULL,),
    headers: Mapping[str, str] | None = None,
) -> str:
    with pytest.raises(AuthChallenge) as info:
        _authorize(controller, token, accesses, headers)
    assert (info.value.status, info.value.code) == (401, "UNAUTHORIZED")
    return info.value.headers["WWW-Authenticate"]


INVALID = (
    f'Bearer realm="{REALM}",service="{SERVICE}",scope="repository:foo/bar:pull",'
    'error="invalid_token"'
)


def test_libtrust_key_id_matches_reference_vector() -> None:
    # Public key and key ID from libtrust's test fixtures.
    key = jwt.PyJWK(
        {
            "kty": "EC",
            "crv": "P-256",
            "x": "4pBqYlc5IU5pJh5AOvijtEccStyJu0dSAiz4OlDGGFk",
            "y": "OT70pUofsKlHEsqdWUUj-ZF-z5bqH-9oOTJ4mqBayyo",
        }
    ).key
    assert libtrust_key_id(key) == "UEV2:PPF2:4DMU:WZYF:WOWU:677P:B7XU:SGFA:BMUG:NCTC:R7CL:XFKZ"


def test_valid_token_via_x5c(trust: Trust) -> None:
    grant = _authorize(_controller(trust.bundle), trust.token(kid=False), [PULL, PUSH])
    assert grant.subject == "alice"
    assert grant.allows(PULL) and grant.allows(PUSH)
    assert not grant.allows(Access("repository", "foo/bar", "delete"))


def test_valid_token_via_kid(trust: Trust) -> None:
    grant = _authorize(_controller(trust.bundle), trust.token(x5c=False))
    assert grant.subject == "alice"


def test_grant_carries_other_scopes(trust: Trust) -> None:
    claims = _claims(
        access=[
            {"type": "repository", "name": "foo/bar", "actions": ["push"]},
            {"type": "repository", "name": "src/img", "actions": ["pull"]},
        ]
    )
    grant = _authorize(_controller(trust.bundle), trust.token(claims), [PUSH])
    assert grant.allows(Access("repository", "src/img", "pull"))
    assert not grant.allows(Access("repository", "src/img", "push"))


def test_star_action_in_token(trust: Trust) -> None:
    claims = _claims(access=[{"type": "repository", "name": "foo/bar", "actions": ["*"]}])
    grant = _authorize(
        _controller(trust.bundle),
        trust.token(claims),
        [PULL, PUSH, Access("repository", "foo/bar", "delete")],
    )
    assert grant.subject == "alice"


def test_anonymous_token_has_no_subject(trust: Trust) -> None:
    grant = _authorize(_controller(trust.bundle), trust.token(_claims(sub="")))
    assert grant.subject is None


def test_catalog_scope(trust: Trust) -> None:
    catalog = Access("registry", "catalog", "*")
    claims = _claims(access=[{"type": "registry", "name": "catalog", "actions": ["*"]}])
    assert _authorize(_controller(trust.bundle), trust.token(claims), [catalog]).allows(catalog)
    header = _challenge(_controller(trust.bundle), trust.token(), [catalog])
    assert 'scope="registry:catalog:*"' in header and 'error="insufficient_scope"' in header


def test_missing_token_gets_plain_challenge(trust: Trust) -> None:
    header = _challenge(_controller(trust.bundle), None, [PULL, PUSH])
    assert header == (
        f'Bearer realm="{REALM}",service="{SERVICE}",scope="repository:foo/bar:pull,push"'
    )


def test_basic_credentials_get_plain_challenge(trust: Trust) -> None:
    header = _challenge(_controller(trust.bundle), None, headers={"Authorization": "Basic eDp5"})
    assert "error=" not in header


def test_insufficient_scope(trust: Trust) -> None:
    claims = _claims(access=[{"type": "repository", "name": "foo/bar", "actions": ["pull"]}])
    header = _challenge(_controller(trust.bundle), trust.token(claims), [PULL, PUSH])
    assert header == (
        f'Bearer realm="{REALM}",service="{SERVICE}",scope="repository:foo/bar:pull,push",'
        'error="insufficient_scope"'
    )


# Times are offsets from when the test runs (not from collection, which can be
# minutes earlier in a long run and would let the leeway swallow them).
@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": -120},
        {"nbf": +120},
        {"aud": "other-registry"},
        {"aud": None},
        {"iss": "evil-issuer"},
        {"iss": None},
        {"exp": None},
        {"access": "repository:foo/bar:pull"},
        {"access": [{"type": "repository", "name": "foo/bar", "actions": "pull"}]},
    ],
)
def test_bad_claims_are_invalid(trust: Trust, overrides: dict[str, Any]) -> None:
    now = int(time.time())
    claims = {k: now + v if k in ("exp", "nbf") and v is not None else v
              for k, v in overrides.items()}
    assert _challenge(_controller(trust.bundle), trust.token(_claims(**claims))) == INVALID


def test_clock_skew_leeway(trust: Trust) -> None:
    now = int(time.time())
    claims = _claims(exp=now - 30, nbf=now + 30)
    assert _authorize(_controller(trust.bundle), trust.token(claims)).subject == "alice"


def test_audience_list(trust: Trust) -> None:
    claims = _claims(aud=["somewhere-else", SERVICE])
    assert _authorize(_controller(trust.bundle), trust.token(claims)).subject == "alice"


def test_forged_signature_with_copied_header(trust: Trust) -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    forged = trust.token(key=attacker)  # header names the trusted cert and kid
    assert _challenge(_controller(trust.bundle), forged) == INVALID
    forged_kid = trust.token(key=attacker, x5c=False)
    assert _challenge(_controller(trust.bundle), forged_kid) == INVALID


def test_tampered_payload(trust: Trust) -> None:
    header, _, signature = trust.token().split(".")
    claims = _claims(access=[{"type": "repository", "name": "*", "actions": ["*"]}])
    payload = _b64url(json.dumps(claims).encode())
    assert _challenge(_controller(trust.bundle), f"{header}.{payload}.{signature}") == INVALID


def test_alg_none_is_refused(trust: Trust) -> None:
    header = {"alg": "none", "typ": "JWT", "kid": trust.kid, "x5c": [_der_b64(trust.cert)]}
    token = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(_claims()).encode())}."
    assert _challenge(_controller(trust.bundle), token) == INVALID


@pytest.mark.parametrize("secret_format", ["pem", "der"])
def test_hs256_with_public_key_as_secret_is_refused(trust: Trust, secret_format: str) -> None:
    public = trust.key.public_key()
    secret = (
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if secret_format == "pem"
        else public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for headers in (
        {"alg": "HS256", "typ": "JWT", "kid": trust.kid},
        {"alg": "HS256", "typ": "JWT", "x5c": [_der_b64(trust.cert)]},
    ):
        signing_input = (
            f"{_b64url(json.dumps(headers).encode())}.{_b64url(json.dumps(_claims()).encode())}"
        )
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{_b64url(mac)}"
        assert _challenge(_controller(trust.bundle), token) == INVALID


@pytest.mark.parametrize("token", ["abc", "a.b.c", "....", "Zm9v.YmFy.YmF6"])
def test_malformed_tokens(trust: Trust, token: str) -> None:
    assert _challenge(_controller(trust.bundle), token) == INVALID


def test_unknown_kid_and_no_key_reference(trust: Trust) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    unknown = jwt.encode(_claims(), other, algorithm="ES256", headers={"kid": "AAAA:BBBB"})
    assert _challenge(_controller(trust.bundle), unknown) == INVALID
    bare = jwt.encode(_claims(), trust.key, algorithm="ES256")
    assert _challenge(_controller(trust.bundle), bare) == INVALID


def test_x5c_not_chaining_to_root(trust: Trust) -> None:
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_cert = _cert("token-signer", other_key)  # same name, different key
    token = jwt.encode(
        _claims(), other_key, algorithm="ES256", headers={"x5c": [_der_b64(other_cert)]}
    )
    assert _challenge(_controller(trust.bundle), token) == INVALID


def test_algorithm_must_fit_key(trust: Trust) -> None:
    # ES384 claimed on a P-256 key.
    headers = {"alg": "ES384", "typ": "JWT", "kid": trust.kid}
    signing_input = (
        f"{_b64url(json.dumps(headers).encode())}.{_b64url(json.dumps(_claims()).encode())}"
    )
    assert _challenge(_controller(trust.bundle), signing_input + ".AAAA") == INVALID


def test_signingalgorithms_option(trust: Trust) -> None:
    controller = _controller(trust.bundle, signingalgorithms=["RS256"])
    assert _challenge(controller, trust.token()) == INVALID
    with pytest.raises(ValueError, match="signingalgorithms"):
        _controller(trust.bundle, signingalgorithms=["HS256"])


class TestChain:
    def setup_method(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = _cert("root", self.root_key, ca=True)
        self.mid_key = ec.generate_private_key(ec.SECP256R1())
        self.mid = _cert("mid", self.mid_key, "root", self.root_key, ca=True, path_length=0)
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        self.leaf = _cert("leaf", self.leaf_key, "mid", self.mid_key)

    def _token(self, chain: Sequence[x509.Certificate]) -> str:
        return jwt.encode(
            _claims(),
            self.leaf_key,
            algorithm="ES256",
            headers={"x5c": [_der_b64(c) for c in chain]},
        )

    def test_leaf_intermediate_root(self, tmp_path: Path) -> None:
        bundle = tmp_path / "root.pem"
        bundle.write_bytes(_pem(self.root))
        controller = _controller(bundle)
        assert _authorize(controller, self._token([self.leaf, self.mid])).subject == "alice"
        # Order of intermediates does not matter; the root may be included too.
        assert _authorize(controller, self._token([self.leaf, self.root, self.mid]))
        # Without the intermediate there is no path.
        assert _challenge(controller, self._token([self.leaf])) == INVALID

    def test_intermediate_must_be_a_ca(self, tmp_path: Path) -> None:
        fake_mid = _cert("mid", self.mid_key, "root", self.root_key, ca=False)
        bundle = tmp_path / "root.pem"
        bundle.write_bytes(_pem(self.root))
        assert _challenge(_controller(bundle), self._token([self.leaf, fake_mid])) == INVALID

    def test_path_length_is_enforced(self) -> None:
        mid2_key = ec.generate_private_key(ec.SECP256R1())
        mid2 = _cert("mid2", mid2_key, "mid", self.mid_key, ca=True)
        leaf = _cert("leaf", self.leaf_key, "mid2", mid2_key)
        with pytest.raises(ValueError):
            verify_chain([leaf, mid2, self.mid], [self.root])
        unconstrained = _cert("mid", self.mid_key, "root", self.root_key, ca=True)
        assert verify_chain([leaf, mid2, unconstrained], [self.root]) == leaf

    def test_expired_and_future_certificates(self, tmp_path: Path) -> None:
        now = dt.datetime.now(dt.UTC)
        bundle = tmp_path / "root.pem"
        bundle.write_bytes(_pem(self.root))
        controller = _controller(bundle)
        expired = _cert(
            "leaf",
            self.leaf_key,
            "mid",
            self.mid_key,
            not_before=now - dt.timedelta(days=2),
            not_after=now - dt.timedelta(days=1),
        )
        future = _cert(
            "leaf", self.leaf_key, "mid", self.mid_key, not_before=now + dt.timedelta(days=1)
        )
        assert _challenge(controller, self._token([expired, self.mid])) == INVALID
        assert _challenge(controller, self._token([future, self.mid])) == INVALID

    def test_expired_root(self, tmp_path: Path) -> None:
        now = dt.datetime.now(dt.UTC)
        old_root = _cert(
            "root",
            self.root_key,
            ca=True,
            not_before=now - dt.timedelta(days=2),
            not_after=now - dt.timedelta(days=1),
        )
        bundle = tmp_path / "root.pem"
        bundle.write_bytes(_pem(old_root))
        assert _challenge(_controller(bundle), self._token([self.leaf, self.mid])) == INVALID


def test_rs256(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _cert("rsa-signer", key)
    bundle = tmp_path / "root.pem"
    bundle.write_bytes(_pem(cert))
    for alg in ("RS256", "RS512"):
        token = jwt.encode(_claims(), key, algorithm=alg, headers={"x5c": [_der_b64(cert)]})
        assert _authorize(_controller(bundle), token).subject == "alice"
    # An RSA key presented for an EC algorithm is refused.
    headers = {"alg": "ES256", "x5c": [_der_b64(cert)]}
    token = f"{_b64url(json.dumps(headers).encode())}.{_b64url(json.dumps(_claims()).encode())}.AA"
    assert _challenge(_controller(bundle), token) == INVALID


def test_eddsa_via_x5c_and_kid(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    cert = _cert("ed-signer", key)
    bundle = tmp_path / "root.pem"
    bundle.write_bytes(_pem(cert))
    controller = _controller(bundle)
    by_chain = jwt.encode(_claims(), key, algorithm="EdDSA", headers={"x5c": [_der_b64(cert)]})
    assert _authorize(controller, by_chain).subject == "alice"
    kid = libtrust_key_id(key.public_key())
    by_kid = jwt.encode(_claims(), key, algorithm="EdDSA", headers={"kid": kid})
    assert _authorize(controller, by_kid).subject == "alice"
    forged = jwt.encode(
        _claims(), ed25519.Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid}
    )
    assert _challenge(controller, forged) == INVALID


def test_jwks_trust(tmp_path: Path) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    keys = [
        jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True) | {"kid": "ec-1"},
        jwt.algorithms.OKPAlgorithm.to_jwk(ed_key.public_key(), as_dict=True) | {"kid": "ed-1"},
    ]
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": keys}))
    controller = _controller(None, jwks=str(jwks))
    token = jwt.encode(_claims(), ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    assert _authorize(controller, token).subject == "alice"
    token = jwt.encode(_claims(), ed_key, algorithm="EdDSA", headers={"kid": "ed-1"})
    assert _authorize(controller, token).subject == "alice"
    # A key of the set under the wrong kid, and an unknown kid, are refused.
    token = jwt.encode(_claims(), ec_key, algorithm="ES256", headers={"kid": "ed-1"})
    assert _challenge(controller, token) == INVALID
    token = jwt.encode(_claims(), ec_key, algorithm="ES256", headers={"kid": "nope"})
    assert _challenge(controller, token) == INVALID


def test_jwk_header_trusted_only_if_key_is_trusted(trust: Trust) -> None:
    controller = _controller(trust.bundle)
    public_jwk = jwt.algorithms.ECAlgorithm.to_jwk(trust.key.public_key(), as_dict=True)
    token = jwt.encode(_claims(), trust.key, algorithm="ES256", headers={"jwk": public_jwk})
    assert _authorize(controller, token).subject == "alice"
    attacker = ec.generate_private_key(ec.SECP256R1())
    attacker_jwk = jwt.algorithms.ECAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    token = jwt.encode(_claims(), attacker, algorithm="ES256", headers={"jwk": attacker_jwk})
    assert _challenge(controller, token) == INVALID


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        json.dumps({"keys": []}),
        json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]}),
        json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}),
    ],
)
def test_bad_jwks_is_a_config_error(tmp_path: Path, document: str) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(document)
    with pytest.raises(ValueError, match="'jwks'"):
        _controller(None, jwks=str(jwks))


def test_empty_bundle_is_a_config_error(tmp_path: Path) -> None:
    bundle = tmp_path / "root.pem"
    bundle.write_text("no certificates here\n")
    with pytest.raises(ValueError, match="'rootcertbundle'"):
        _controller(bundle)


def test_autoredirect(trust: Trust) -> None:
    controller = _controller(trust.bundle, autoredirect=True)
    header = _challenge(controller, None, headers={"Host": "registry.local:5000"})
    assert header.startswith('Bearer realm="https://registry.local:5000/token",')
    header = _challenge(
        controller, None, headers={"host": "reg.example", "X-Forwarded-Proto": "http"}
    )
    assert header.startswith('Bearer realm="http://reg.example/token",')
    controller = _controller(trust.bundle, autoredirect="true", autoredirectpath="/auth/token")
    header = _challenge(controller, "bad", headers={"Host": "r.example"})
    assert header.startswith('Bearer realm="https://r.example/auth/token",')
    assert header.endswith('error="invalid_token"')


def test_autoredirect_off_ignores_host(trust: Trust) -> None:
    header = _challenge(_controller(trust.bundle), None, headers={"Host": "evil.example"})
    assert f'realm="{REALM}"' in header


def test_untrusted_x5c_falls_back_to_trusted_kid(trust: Trust, tmp_path: Path) -> None:
    # A registry trusting the key through jwks only still accepts a token with x5c + kid.
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(trust.key.public_key(), as_dict=True)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk | {"kid": trust.kid}]}))
    controller = _controller(None, jwks=str(jwks))
    assert _authorize(controller, trust.token()).subject == "alice"
    # The fallback key must still have made the signature.
    forged = trust.token(key=ec.generate_private_key(ec.SECP256R1()))
    assert _challenge(controller, forged) == INVALID
