"""``auth.token``: the Docker token flow against dockyard's own issuer (``dockyard token-server``).

Real clients (skopeo, the ``oras`` Python package, httpx) do the whole dance: 401 with a
Bearer challenge, a token from the issuer with Basic credentials, the request again with
the token. What a token grants is the issuer's ACL (see ``conftest.issuer_settings``);
the registry must enforce it per action and refuse any token it cannot trust.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import oras.client
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.support.auth import (
    PKI,
    Skopeo,
    TokenServer,
    TokenServerStartError,
    assert_not_logged,
    b64url,
    bearer,
    libtrust_kid,
    mint,
    parse_challenge,
    scope_set,
    sha256_digest,
    unique_repo,
    write_htpasswd,
    x5c_of,
)
from tests.support.servers import RegistryProcess

from .conftest import (
    ISSUER,
    SERVICE,
    ImageFactory,
    TokenEnv,
    issuer_settings,
    start_token_env,
)

pytestmark = pytest.mark.interop


def _push_blob(url: str, repo: str, token: str, data: bytes) -> str:
    """POST then PUT ?digest= (monolithic in two steps) with ``token``; returns the digest."""
    digest = sha256_digest(data)
    with httpx.Client(base_url=url, headers=bearer(token), timeout=30) as http:
        started = http.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = httpx.URL(url).join(started.headers["Location"])
        finished = http.put(
            location.copy_merge_params({"digest": digest}),
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert finished.status_code == 201, finished.text
    return digest


def _push_image(url: str, repo: str, tag: str, token: str) -> tuple[str, str]:
    """A minimal OCI image (config + one layer + manifest); returns (manifest, layer) digests."""
    layer = _push_blob(url, repo, token, f"layer of {repo}".encode())
    config = b'{"architecture":"amd64","os":"linux"}'
    config_digest = _push_blob(url, repo, token, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer,
                    "size": len(f"layer of {repo}".encode()),
                }
            ],
        }
    ).encode()
    response = httpx.put(
        f"{url}/v2/{repo}/manifests/{tag}",
        content=manifest,
        headers={**bearer(token), "Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return sha256_digest(manifest), layer


def _assert_challenge(
    response: httpx.Response, env: TokenEnv, scope: str | None, error: str | None
) -> None:
    """401 UNAUTHORIZED with ``Bearer realm,service[,scope][,error]`` as distribution sends."""
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
    assert challenge.scheme == "bearer"
    assert challenge.params["realm"] == env.issuer.realm
    assert challenge.params["service"] == SERVICE
    assert scope_set(challenge.params.get("scope")) == scope_set(scope)
    assert challenge.params.get("error") == error


@pytest.fixture(scope="module")
def seeded(token_env: TokenEnv) -> dict[str, Any]:
    """Images pushed by alice: ``team/app:v1`` and ``other/x:v1``."""
    url = token_env.registry.url
    result: dict[str, Any] = {}
    for repo in ("team/app", "other/x"):
        token = token_env.token("alice", f"repository:{repo}:pull,push")
        result[repo] = _push_image(url, repo, "v1", token)
    return result


# -- challenges --------------------------------------------------------------------------


def test_v2_answers_bearer_challenge(token_env: TokenEnv) -> None:
    response = httpx.get(f"{token_env.registry.url}/v2/", timeout=10)
    _assert_challenge(response, token_env, scope=None, error=None)
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_challenge_scope_per_action(token_env: TokenEnv) -> None:
    url = token_env.registry.url
    cases = [
        ("GET", "/v2/team/app/manifests/v1", "repository:team/app:pull"),
        ("HEAD", "/v2/team/app/blobs/sha256:" + "0" * 64, "repository:team/app:pull"),
        ("POST", "/v2/team/app/blobs/uploads/", "repository:team/app:pull,push"),
        ("PUT", "/v2/team/app/manifests/v2", "repository:team/app:pull,push"),
        ("DELETE", "/v2/team/app/manifests/v1", "repository:team/app:delete"),
        ("GET", "/v2/_catalog", "registry:catalog:*"),
    ]
    for method, path, scope in cases:
        response = httpx.request(method, url + path, timeout=10)
        assert response.status_code == 401, (method, path)
        challenge = parse_challenge(response.headers["WWW-Authenticate"])
        assert scope_set(challenge.params.get("scope")) == scope_set(scope), (method, path)
        assert "error" not in challenge.params


def test_issuer_grants_intersection_of_request_and_acl(token_env: TokenEnv) -> None:
    token = token_env.token(
        "bob", "repository:team/app:pull,push,delete", "repository:other/x:pull"
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == ISSUER
    assert claims["aud"] == SERVICE
    assert claims["sub"] == "bob"
    assert claims["access"] == [{"type": "repository", "name": "team/app", "actions": ["pull"]}]
    assert 0 < claims["exp"] - claims["nbf"] <= 300


def test_issuer_refuses_bad_credentials(token_env: TokenEnv) -> None:
    scope = ["repository:team/app:pull"]
    for user, password in (("alice", "wrong"), ("mallory", "x"), (None, None)):
        response = token_env.issuer.token(scope, user, password)
        assert response.status_code == 401, (user, response.text)
        assert parse_challenge(response.headers["WWW-Authenticate"]).scheme == "basic"
        assert "token" not in response.json()


def test_issuer_oauth_post_and_refresh_tokens(token_env: TokenEnv, seeded: dict[str, Any]) -> None:
    """``docker login`` asks for an offline token (identity token) and later trades it
    with ``POST grant_type=refresh_token``; containerd posts ``grant_type=password``."""
    issuer, url = token_env.issuer, token_env.registry.url
    scope = "repository:team/app:pull"
    response = issuer.token([scope], "bob", token_env.passwords["bob"], offline=True)
    assert response.status_code == 200
    refresh = response.json()["refresh_token"]
    token_env.secrets.update((refresh, response.json()["token"]))

    # A refresh token is not an access token: the registry refuses it.
    answer = httpx.get(f"{url}/v2/team/app/tags/list", headers=bearer(refresh), timeout=10)
    _assert_challenge(answer, token_env, scope=scope, error="invalid_token")

    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh,
        "service": SERVICE,
        "scope": scope,
        "client_id": "dockyard-tests",
    }
    response = httpx.post(issuer.realm, data=form, timeout=10)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    token_env.secrets.add(token)
    answer = httpx.get(f"{url}/v2/team/app/tags/list", headers=bearer(token), timeout=10)
    assert answer.status_code == 200

    form = {
        "grant_type": "password",
        "username": "bob",
        "password": token_env.passwords["bob"],
        "service": SERVICE,
        "scope": f"{scope},push",
        "client_id": "dockyard-tests",
    }
    response = httpx.post(issuer.realm, data=form, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == scope  # push left out, as the ACL says
    token_env.secrets.add(response.json()["access_token"])
    form["password"] = "wrong"
    assert httpx.post(issuer.realm, data=form, timeout=10).status_code == 401
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh[:-4] + "AAAA",
        "service": SERVICE,
        "scope": scope,
        "client_id": "dockyard-tests",
    }
    assert httpx.post(issuer.realm, data=form, timeout=10).status_code == 401


def _issuer_with_bad_htpasswd(tmp_path: Path) -> TokenServer:
    write_htpasswd(tmp_path / "good", {"alice": "alice-password"})
    users = tmp_path / "users.htpasswd"
    if shutil.which("htpasswd"):
        write_htpasswd(tmp_path / "bad", {"mallory": "mallory-password"}, flag="-m")
        users.write_text((tmp_path / "good").read_text() + (tmp_path / "bad").read_text())
    else:  # the same entry htpasswd -m would write
        users.write_text((tmp_path / "good").read_text() + "mallory:$apr1$abc$defghijk\n")
    issuer = TokenServer(tmp_path, issuer_settings())
    with pytest.raises(TokenServerStartError):
        issuer.start(deadline=10)
    return issuer


def test_issuer_refuses_non_bcrypt_htpasswd(tmp_path: Path) -> None:
    issuer = _issuer_with_bad_htpasswd(tmp_path)
    assert issuer.returncode not in (None, 0)
    log = issuer.log_text()
    assert "'mallory'" in log and "MD5 ($apr1$)" in log and "htpasswd -B" in log
    assert "mallory-password" not in log


def test_issuer_config_error_is_clean(tmp_path: Path) -> None:
    issuer = _issuer_with_bad_htpasswd(tmp_path)
    assert "Traceback" not in issuer.log_text()
    assert issuer.returncode == 2


# -- real clients ------------------------------------------------------------------------


def test_skopeo_push_and_pull(
    token_env: TokenEnv, skopeo: Skopeo, make_image: ImageFactory, tmp_path: Path
) -> None:
    image = make_image()
    repo = unique_repo("team")
    dest = f"docker://{token_env.registry.url.removeprefix('http://')}/{repo}:v1"
    pushed = skopeo.copy(
        image.ref, dest, "--dest-tls-verify=false", "--dest-creds", token_env.creds("alice")
    )
    assert pushed.returncode == 0, pushed.stderr

    # bob (pull on team/*) pulls it back: same manifest, same layer bytes.
    out = tmp_path / "pulled"
    pulled = skopeo.copy(
        dest, f"dir:{out}", "--src-tls-verify=false", "--src-creds", token_env.creds("bob")
    )
    assert pulled.returncode == 0, pulled.stderr
    assert sha256_digest((out / "manifest.json").read_bytes()) == image.manifest_digest
    layer = out / image.layer_digest.removeprefix("sha256:")
    assert sha256_digest(layer.read_bytes()) == image.layer_digest


def test_skopeo_wrong_or_no_credentials_fail(
    token_env: TokenEnv, seeded: dict[str, Any], skopeo: Skopeo, tmp_path: Path
) -> None:
    src = f"docker://{token_env.registry.url.removeprefix('http://')}/team/app:v1"
    for creds in (["--src-creds", "alice:wrong-password"], []):
        result = skopeo.copy(src, f"dir:{tmp_path / 'out'}", "--src-tls-verify=false", *creds)
        assert result.returncode != 0
        # The issuer refused the credentials (401), so skopeo got no token at all.
        assert "unable to retrieve auth token" in result.stderr, result.stderr


def test_pull_only_user_cannot_push_or_delete(
    token_env: TokenEnv,
    seeded: dict[str, Any],
    skopeo: Skopeo,
    make_image: ImageFactory,
) -> None:
    url = token_env.registry.url
    manifest_digest, layer_digest = seeded["team/app"]

    # skopeo asks the issuer for pull,push and gets pull only: the push is refused.
    dest = f"docker://{url.removeprefix('http://')}/team/app:pushed-by-bob"
    result = skopeo.copy(
        make_image().ref, dest, "--dest-tls-verify=false", "--dest-creds", token_env.creds("bob")
    )
    assert result.returncode != 0
    # containers/image reports the 401 insufficient_scope as "denied".
    assert "requested access to the resource is denied" in result.stderr, result.stderr

    # What clients get: 401 with error="insufficient_scope" naming the missing scope
    # (distribution's answer: it is what makes docker and containerd fetch a new token).
    token = token_env.token("bob", "repository:team/app:pull,push,delete")
    requests = [
        ("POST", "/v2/team/app/blobs/uploads/", "repository:team/app:pull,push"),
        ("PUT", "/v2/team/app/manifests/v2", "repository:team/app:pull,push"),
        ("DELETE", f"/v2/team/app/manifests/{manifest_digest}", "repository:team/app:delete"),
        ("DELETE", f"/v2/team/app/blobs/{layer_digest}", "repository:team/app:delete"),
    ]
    for method, path, scope in requests:
        response = httpx.request(method, url + path, headers=bearer(token), timeout=10)
        _assert_challenge(response, token_env, scope=scope, error="insufficient_scope")

    # Nothing changed, and what bob may do still works with the same token.
    response = httpx.get(
        f"{url}/v2/team/app/manifests/v1",
        headers={**bearer(token), "Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == manifest_digest
    response = httpx.get(f"{url}/v2/team/app/tags/list", headers=bearer(token), timeout=10)
    assert response.json()["tags"] == ["v1"]


def test_team_user_cannot_read_other_repositories(
    token_env: TokenEnv, seeded: dict[str, Any], skopeo: Skopeo, tmp_path: Path
) -> None:
    url = token_env.registry.url
    manifest_digest, layer_digest = seeded["other/x"]
    src = f"docker://{url.removeprefix('http://')}/other/x:v1"
    result = skopeo.copy(
        src,
        f"dir:{tmp_path / 'out'}",
        "--src-tls-verify=false",
        "--src-creds",
        token_env.creds("bob"),
    )
    assert result.returncode != 0
    assert "requested access to the resource is denied" in result.stderr, result.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()

    token = token_env.token("bob", "repository:other/x:pull")
    assert jwt.decode(token, options={"verify_signature": False})["access"] == []
    for path in (
        "/v2/other/x/manifests/v1",
        f"/v2/other/x/manifests/{manifest_digest}",
        f"/v2/other/x/blobs/{layer_digest}",
        "/v2/other/x/tags/list",
    ):
        response = httpx.get(url + path, headers=bearer(token), timeout=10)
        _assert_challenge(
            response, token_env, scope="repository:other/x:pull", error="insufficient_scope"
        )
    # A token for team/* is no good for other/x either.
    token = token_env.token("bob", "repository:team/app:pull")
    response = httpx.get(f"{url}/v2/other/x/manifests/v1", headers=bearer(token), timeout=10)
    _assert_challenge(
        response, token_env, scope="repository:other/x:pull", error="insufficient_scope"
    )


def _oras(token_env: TokenEnv, user: str) -> oras.client.OrasClient:
    host = token_env.registry.url.removeprefix("http://")
    client = oras.client.OrasClient(hostname=host, insecure=True)
    client.auth.set_basic_auth(user, token_env.passwords[user])
    return client


def test_oras_push_and_pull(
    token_env: TokenEnv, seeded: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = token_env.registry.url.removeprefix("http://")
    repo = unique_repo("team")
    monkeypatch.chdir(tmp_path)  # oras only pushes files below the working directory
    artifact = tmp_path / "artifact.txt"
    artifact.write_bytes(b"pushed by oras through the token flow\n")

    pusher = _oras(token_env, "alice")
    # oras-py (0.2.43) keeps the first token it gets and reuses it after a 401, so a push
    # that starts with a HEAD (scope pull) cannot get push later: the same happens against
    # docker-registry 2.8. One request that is challenged for pull,push first gives it the
    # right token; the rest is oras' own dance.
    primed = pusher.do_request(f"http://{host}/v2/{repo}/blobs/uploads/", "POST")
    assert primed.status_code == 202, primed.text
    response = pusher.push(f"{host}/{repo}:v1", files=["artifact.txt"])
    assert response.status_code == 201

    puller = _oras(token_env, "bob")
    files = puller.pull(f"{host}/{repo}:v1", outdir=str(tmp_path / "out"))
    assert [Path(f).read_bytes() for f in files] == [artifact.read_bytes()]
    with pytest.raises(ValueError):  # oras: "Cannot respond to request for authentication."
        puller.pull(f"{host}/other/x:v1", outdir=str(tmp_path / "denied"))
    assert not (tmp_path / "denied").exists() or not any((tmp_path / "denied").iterdir())

    # bob asked for pull,push (the same priming), got pull only: no push.
    bob = _oras(token_env, "bob")
    denied = bob.do_request(f"http://{host}/v2/{repo}/blobs/uploads/", "POST")
    _assert_challenge(
        denied, token_env, scope=f"repository:{repo}:pull,push", error="insufficient_scope"
    )
    assert bob.auth.token is not None
    granted = jwt.decode(bob.auth.token, options={"verify_signature": False})["access"]
    assert granted == [{"type": "repository", "name": repo, "actions": ["pull"]}]
    with pytest.raises(ValueError):  # oras: "Issue retrieving session url: {errors...}"
        bob.push(f"{host}/{repo}:v2", files=["artifact.txt"])
    tokens = (pusher.auth.token, puller.auth.token, bob.auth.token)
    token_env.secrets.update(t for t in tokens if t)


# -- tokens that must not be trusted -----------------------------------------------------


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 5,
        "iat": now - 5,
        "jti": f"test-{now}-{time.monotonic_ns()}",
        "access": [{"type": "repository", "name": "team/app", "actions": ["pull"]}],
    }
    for key, value in changes.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


def _issuer_headers(env: TokenEnv) -> dict[str, Any]:
    cert = env.issuer.certificate()
    return {"typ": "JWT", "kid": libtrust_kid(cert.public_key()), "x5c": x5c_of(cert)}


def _bad_tokens(env: TokenEnv, pki: PKI) -> dict[str, str]:
    key = env.issuer.signing_key()
    headers = _issuer_headers(env)
    now = int(time.time())
    other_key = ec.generate_private_key(ec.SECP256R1())

    def signed(claims: dict[str, Any]) -> str:
        return mint(key, claims, headers=headers)

    head, _, sig = signed(_claims()).split(".")
    tampered_payload = b64url(
        json.dumps(
            _claims(access=[{"type": "repository", "name": "team/app", "actions": ["*"]}])
        ).encode()
    )
    none_header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": headers["kid"]}).encode())
    hs_header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": headers["kid"]}).encode())
    hs_payload = b64url(json.dumps(_claims()).encode())
    # The public certificate as an HMAC secret: the classic algorithm confusion attack.
    hs_sig = b64url(
        hmac.new(
            env.issuer.path("certificate").read_bytes(),
            f"{hs_header}.{hs_payload}".encode(),
            hashlib.sha256,
        ).digest()
    )
    # A chain to our test CA, which the registry does not trust for tokens.
    leaf = pki.issue("token-signer", server=False)
    leaf_key = serialization.load_pem_private_key(leaf.key.read_bytes(), password=None)
    leaf_cert = x509.load_pem_x509_certificate(leaf.cert.read_bytes())
    return {
        "expired": signed(_claims(exp=now - 3600, nbf=now - 7200, iat=now - 7200)),
        "not yet valid": signed(_claims(nbf=now + 3600, iat=now + 3600, exp=now + 7200)),
        "wrong audience": signed(_claims(aud="another-registry")),
        "wrong issuer": signed(_claims(iss="someone-else")),
        "no exp": signed(_claims(exp=None)),
        "forged signature": mint(other_key, _claims(), headers=headers),
        "tampered payload": f"{head}.{tampered_payload}.{sig}",
        "alg none": f"{none_header}.{hs_payload}.",
        "alg HS256 keyed with the certificate": f"{hs_header}.{hs_payload}.{hs_sig}",
        "untrusted x5c chain": mint(
            leaf_key,
            _claims(),
            headers={"typ": "JWT", "x5c": x5c_of(leaf_cert) + x5c_of(pki.cert)},
        ),
        "unknown kid": mint(
            other_key,
            _claims(),
            headers={"typ": "JWT", "kid": libtrust_kid(other_key.public_key())},
        ),
        "garbage": "not.a.jwt",
    }


def test_minted_token_control(token_env: TokenEnv, seeded: dict[str, Any]) -> None:
    """A token minted here with the issuer's key is accepted, so the refusals below are
    about what was changed, not about how the tests mint tokens."""
    token = mint(token_env.issuer.signing_key(), _claims(), headers=_issuer_headers(token_env))
    token_env.secrets.add(token)
    response = httpx.get(
        f"{token_env.registry.url}/v2/team/app/tags/list", headers=bearer(token), timeout=10
    )
    assert response.status_code == 200, response.text
    # Trusted by kid alone (no x5c) as well: the libtrust key ID of the root's key.
    kid_only = {k: v for k, v in _issuer_headers(token_env).items() if k != "x5c"}
    token = mint(token_env.issuer.signing_key(), _claims(), headers=kid_only)
    token_env.secrets.add(token)
    response = httpx.get(
        f"{token_env.registry.url}/v2/team/app/tags/list", headers=bearer(token), timeout=10
    )
    assert response.status_code == 200, response.text


#: Why dockyard refuses each token (its log says so; the client only sees invalid_token).
_REASONS = {
    "expired": "Signature has expired",
    "not yet valid": "not yet valid",
    "wrong audience": "Audience doesn't match",
    "wrong issuer": "Invalid issuer",
    "no exp": '"exp"',
    "forged signature": "Signature verification failed",
    "tampered payload": "Signature verification failed",
    "alg none": "'none' is not accepted",
    "alg HS256 keyed with the certificate": "'HS256' is not accepted",
    "untrusted x5c chain": "untrusted x5c chain",
    "unknown kid": "untrusted key with ID",
    "garbage": "malformed token",
}


def test_untrusted_tokens_are_refused(
    token_env: TokenEnv, seeded: dict[str, Any], pki: PKI, target: str
) -> None:
    url = f"{token_env.registry.url}/v2/team/app/tags/list"
    for name, token in _bad_tokens(token_env, pki).items():
        token_env.secrets.add(token)
        seen = len(token_env.registry.log_text())
        response = httpx.get(url, headers=bearer(token), timeout=10)
        assert response.status_code == 401, f"{name}: {response.status_code} {response.text}"
        assert response.json()["errors"][0]["code"] == "UNAUTHORIZED", name
        challenge = parse_challenge(response.headers["WWW-Authenticate"])
        assert challenge.params.get("error") == "invalid_token", name
        assert scope_set(challenge.params.get("scope")) == scope_set("repository:team/app:pull")
        if target == "dockyard":
            assert _REASONS[name] in token_env.registry.log_text()[seen:], name


def test_jwks_trust(
    token_env: TokenEnv, tmp_path_factory: pytest.TempPathFactory, target: str
) -> None:
    """``auth.token.jwks`` instead of ``rootcertbundle``: the issuer's key by its ``kid``."""
    if target == "distribution":
        pytest.skip("auth.token.jwks is distribution 3; 2.8 knows rootcertbundle only")
    key = token_env.issuer.signing_key().public_key()
    kid = libtrust_kid(key)
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key, as_dict=True)
    jwks = tmp_path_factory.mktemp("jwks") / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": kid, "use": "sig"}]}))
    registry = RegistryProcess(
        tmp_path_factory.mktemp("registry"),
        kind="dockyard",
        overrides={
            "auth": {
                "token": {
                    "realm": token_env.issuer.realm,
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "jwks": str(jwks),
                }
            }
        },
    )
    registry.start()
    try:
        url = f"{registry.url}/v2/team/app/tags/list"
        # The issuer's own token (kid + x5c; the chain is not trusted here, the kid is).
        token = token_env.token("bob", "repository:team/app:pull")
        assert httpx.get(url, headers=bearer(token), timeout=10).status_code == 404
        # Another key claiming the same kid is refused.
        forged = mint(ec.generate_private_key(ec.SECP256R1()), _claims(), headers={"kid": kid})
        token_env.secrets.add(forged)
        response = httpx.get(url, headers=bearer(forged), timeout=10)
        assert response.status_code == 401
        assert parse_challenge(response.headers["WWW-Authenticate"]).params["error"] == (
            "invalid_token"
        )
        token_env.secrets.add(token)
        assert_not_logged({"registry log": registry.log_text()}, token_env.secrets)
    finally:
        registry.stop()


# -- catalog and mounts ------------------------------------------------------------------


def test_catalog_needs_registry_catalog_scope(token_env: TokenEnv, seeded: dict[str, Any]) -> None:
    url = f"{token_env.registry.url}/v2/_catalog"
    token = token_env.token("alice", "registry:catalog:*")
    response = httpx.get(url, headers=bearer(token), timeout=10)
    assert response.status_code == 200, response.text
    assert {"team/app", "other/x"} <= set(response.json()["repositories"])

    # bob's ACL has no catalog rule: the issuer leaves it out and the registry says no.
    token = token_env.token("bob", "registry:catalog:*")
    response = httpx.get(url, headers=bearer(token), timeout=10)
    _assert_challenge(response, token_env, scope="registry:catalog:*", error="insufficient_scope")
    # Pull on every repository is not the catalog either.
    token = token_env.token("alice", "repository:team/app:pull", "repository:other/x:pull")
    response = httpx.get(url, headers=bearer(token), timeout=10)
    _assert_challenge(response, token_env, scope="registry:catalog:*", error="insufficient_scope")


def _layer_link(env: TokenEnv, repo: str, digest: str) -> Path:
    """Where distribution's layout links a blob into a repository."""
    repositories = env.registry.root / "docker/registry/v2/repositories"
    return repositories / repo / "_layers/sha256" / digest.removeprefix("sha256:") / "link"


def test_mount_from_unreadable_repository_does_not_leak(
    token_env: TokenEnv, seeded: dict[str, Any], target: str
) -> None:
    url = token_env.registry.url
    secret_repo = unique_repo("other")
    secret = b"only alice may read this " + secret_repo.encode()
    alice = token_env.token("alice", f"repository:{secret_repo}:pull,push")
    digest = _push_blob(url, secret_repo, alice, secret)

    dest = unique_repo("team")
    # carol may push to team/*, but the issuer grants her nothing on other/*.
    carol = token_env.token(
        "carol", f"repository:{dest}:pull,push", f"repository:{secret_repo}:pull"
    )
    access = jwt.decode(carol, options={"verify_signature": False})["access"]
    assert access == [{"type": "repository", "name": dest, "actions": ["pull", "push"]}]

    response = httpx.post(
        f"{url}/v2/{dest}/blobs/uploads/",
        params={"mount": digest, "from": secret_repo},
        headers=bearer(carol),
        timeout=10,
    )
    if target == "distribution":
        # docker-registry 2.8 requires pull on the source for the whole request.
        expected = f"repository:{dest}:pull,push repository:{secret_repo}:pull"
        _assert_challenge(response, token_env, scope=expected, error="insufficient_scope")
    else:
        # dockyard (issue 4): no mount, a plain upload instead, so the push goes on.
        assert response.status_code == 202, response.text
        assert "Docker-Upload-UUID" in response.headers
        assert response.headers.get("Docker-Content-Digest") is None
    fallback = httpx.URL(url).join(response.headers.get("Location", ""))
    # The blob is not in the target: not served, not linked in storage.
    response = httpx.head(f"{url}/v2/{dest}/blobs/{digest}", headers=bearer(carol), timeout=10)
    assert response.status_code == 404
    response = httpx.get(f"{url}/v2/{dest}/blobs/{digest}", headers=bearer(carol), timeout=10)
    assert response.status_code == 404
    assert secret not in response.content
    link = _layer_link(token_env, dest, digest)
    assert not link.exists()

    # Nor by naming a source carol can read that lacks the blob, or no source at all:
    # the blob is only ever taken from a repository that links it.
    own = unique_repo("team")
    carol_own = token_env.token("carol", f"repository:{dest}:pull,push", f"repository:{own}:pull")
    _push_blob(url, own, token_env.token("carol", f"repository:{own}:pull,push"), b"carol's")
    for params in ({"mount": digest, "from": own}, {"mount": digest}):
        response = httpx.post(
            f"{url}/v2/{dest}/blobs/uploads/", params=params, headers=bearer(carol_own)
        )
        assert response.status_code == 202, (params, response.text)
        assert not link.exists()
    for repo in (dest, own):
        response = httpx.get(f"{url}/v2/{repo}/blobs/{digest}", headers=bearer(carol_own))
        assert response.status_code == 404, repo

    if target != "distribution":
        # The fallback is a working upload: whoever has the bytes can finish it.
        response = httpx.put(
            fallback.copy_merge_params({"digest": digest}),
            content=secret,
            headers={**bearer(carol), "Content-Type": "application/octet-stream"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        assert link.exists()

    # Control: alice, who may read the source, mounts it for real.
    dest = unique_repo("team")
    link = _layer_link(token_env, dest, digest)
    alice = token_env.token(
        "alice", f"repository:{dest}:pull,push", f"repository:{secret_repo}:pull"
    )
    response = httpx.post(
        f"{url}/v2/{dest}/blobs/uploads/",
        params={"mount": digest, "from": secret_repo},
        headers=bearer(alice),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest
    assert link.exists()


# -- autoredirect ------------------------------------------------------------------------


def test_autoredirect_uses_request_host(
    tmp_path_factory: pytest.TempPathFactory, target: str
) -> None:
    env = start_token_env(tmp_path_factory, target, autoredirect=True)
    try:
        url = f"{env.registry.url}/v2/team/app/manifests/v1"
        response = httpx.get(url, headers={"Host": "registry.example:8443"}, timeout=10)
        assert response.status_code == 401
        challenge = parse_challenge(response.headers["WWW-Authenticate"])
        assert challenge.params["service"] == SERVICE
        assert challenge.params["scope"] == "repository:team/app:pull"
        realm = challenge.params["realm"]
        if target == "distribution":
            # docker-registry 2.8: always https://<Host>/auth/token, whatever the realm.
            assert realm == "https://registry.example:8443/auth/token"
        else:
            # dockyard: the realm's scheme and path on the request's host (see docs/auth.md).
            assert realm == "http://registry.example:8443/token"
            response = httpx.get(
                url,
                headers={"Host": "registry.example", "X-Forwarded-Proto": "https"},
                timeout=10,
            )
            realm = parse_challenge(response.headers["WWW-Authenticate"]).params["realm"]
            assert realm == "https://registry.example/token"
        # Tokens are still verified as usual.
        token = env.token("alice", "repository:team/app:pull")
        response = httpx.get(f"{env.registry.url}/v2/", headers=bearer(token), timeout=10)
        assert response.status_code == 200
    finally:
        env.registry.stop()
        env.issuer.stop()


# -- nothing secret in the logs ----------------------------------------------------------


def test_zz_no_passwords_or_tokens_logged(token_env: TokenEnv) -> None:
    """Runs last in this module: every password and token the tests used, nowhere."""
    assert len(token_env.secrets) > 10
    logs = {
        "registry log": token_env.registry.log_text(),
        "issuer log": token_env.issuer.log_text(),
    }
    assert_not_logged(logs, token_env.secrets, token_env.passwords)
    # The logs do say what happened, without the secrets.
    assert "alice" in logs["issuer log"]
