"""``auth.silly``: any ``Authorization`` header passes; none gets the Bearer challenge."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from tests.support.auth import parse_challenge, scope_set, sha256_digest, unique_repo
from tests.support.servers import RegistryProcess

REALM = "http://127.0.0.1:9/silly-token"
SERVICE = "silly-service"


@pytest.fixture(scope="module")
def silly(tmp_path_factory: pytest.TempPathFactory, target: str) -> Iterator[RegistryProcess]:
    registry = RegistryProcess(
        tmp_path_factory.mktemp("registry"),
        kind=target,  # type: ignore[arg-type]
        overrides={"auth": {"silly": {"realm": REALM, "service": SERVICE}}},
    )
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


def test_no_authorization_gets_bearer_challenge(silly: RegistryProcess) -> None:
    cases = [
        ("GET", "/v2/", None),
        ("GET", "/v2/some/repo/tags/list", "repository:some/repo:pull"),
        ("POST", "/v2/some/repo/blobs/uploads/", "repository:some/repo:pull,push"),
        ("DELETE", f"/v2/some/repo/blobs/sha256:{'0' * 64}", "repository:some/repo:delete"),
        ("GET", "/v2/_catalog", "registry:catalog:*"),
    ]
    for method, path, scope in cases:
        response = httpx.request(method, silly.url + path, timeout=10)
        assert response.status_code == 401, (method, path)
        assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
        challenge = parse_challenge(response.headers["WWW-Authenticate"])
        assert challenge.scheme == "bearer"
        assert challenge.params["realm"] == REALM
        assert challenge.params["service"] == SERVICE
        assert scope_set(challenge.params.get("scope")) == scope_set(scope), (method, path)


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-even-a-jwt", "Basic bm9ib2R5Om5vdGhpbmc=", "Whatever"],
)
def test_any_authorization_passes(silly: RegistryProcess, authorization: str) -> None:
    headers = {"Authorization": authorization}
    repo = unique_repo("silly")
    data = os.urandom(1024)
    digest = sha256_digest(data)
    with httpx.Client(base_url=silly.url, headers=headers, timeout=10) as http:
        assert http.get("/v2/").status_code == 200
        started = http.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = httpx.URL(silly.url).join(started.headers["Location"])
        done = http.put(location.copy_merge_params({"digest": digest}), content=data)
        assert done.status_code == 201, done.text
        fetched = http.get(f"/v2/{repo}/blobs/{digest}")
        assert fetched.status_code == 200
        assert fetched.content == data
        assert http.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
        assert http.get("/v2/_catalog").status_code == 200
    # Without the header the same blob is refused.
    response = httpx.head(f"{silly.url}/v2/{repo}/blobs/{digest}", timeout=10)
    assert response.status_code == 401
