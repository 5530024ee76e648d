"""Every route refuses a request without the right scope: a table derived from the router.

``ACCESS`` says what each route needs. The route list comes from dockyard's own router,
so a new route (a ``/dockyard/v1/`` endpoint, the UI...) fails here until the table
names its access, and then every row is tried against a real server with token auth:
no credentials, a token that grants nothing, a token for the wrong action or the wrong
repository (all 401), and a token with exactly the access named (not 401 or 403).
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from tests.support.auth import bearer, parse_challenge, scope_set
from tests.support.routes import router_routes

from .conftest import TokenEnv

# (method, route) -> the scope it needs ("{name}" is the repository in the path);
# None: only a valid identity, as /v2/ in distribution; PUBLIC: no access control (the
# web UI's pages, whose data the browser then fetches from /v2/ as the user).
PUBLIC = "public"
ACCESS: dict[tuple[str, str], str | None] = {
    ("GET", "/v2/"): None,
    ("HEAD", "/v2/"): None,
    ("GET", "/v2"): None,
    ("HEAD", "/v2"): None,
    ("GET", "/dockyard/v1/openapi.json"): None,
    ("HEAD", "/dockyard/v1/openapi.json"): None,
    ("GET", "/dockyard/v1/repositories"): "registry:catalog:*",
    ("HEAD", "/dockyard/v1/repositories"): "registry:catalog:*",
    ("GET", "/dockyard/v1/repositories/{name}"): "repository:{name}:pull",
    ("HEAD", "/dockyard/v1/repositories/{name}"): "repository:{name}:pull",
    ("DELETE", "/dockyard/v1/repositories/{name}"): "repository:{name}:delete",
    ("GET", "/v2/_catalog"): "registry:catalog:*",
    ("HEAD", "/v2/_catalog"): "registry:catalog:*",
    ("GET", "/v2/{name}/tags/list"): "repository:{name}:pull",
    ("HEAD", "/v2/{name}/tags/list"): "repository:{name}:pull",
    ("GET", "/v2/{name}/referrers/{digest}"): "repository:{name}:pull",
    ("HEAD", "/v2/{name}/referrers/{digest}"): "repository:{name}:pull",
    ("GET", "/v2/{name}/manifests/{reference}"): "repository:{name}:pull",
    ("HEAD", "/v2/{name}/manifests/{reference}"): "repository:{name}:pull",
    ("PUT", "/v2/{name}/manifests/{reference}"): "repository:{name}:pull,push",
    ("DELETE", "/v2/{name}/manifests/{reference}"): "repository:{name}:delete",
    ("GET", "/v2/{name}/blobs/{digest}"): "repository:{name}:pull",
    ("HEAD", "/v2/{name}/blobs/{digest}"): "repository:{name}:pull",
    ("DELETE", "/v2/{name}/blobs/{digest}"): "repository:{name}:delete",
    ("POST", "/v2/{name}/blobs/uploads/"): "repository:{name}:pull,push",
    ("GET", "/v2/{name}/blobs/uploads/{uuid}"): "repository:{name}:pull",
    ("PATCH", "/v2/{name}/blobs/uploads/{uuid}"): "repository:{name}:pull,push",
    ("PUT", "/v2/{name}/blobs/uploads/{uuid}"): "repository:{name}:pull,push",
    ("DELETE", "/v2/{name}/blobs/uploads/{uuid}"): "repository:{name}:delete",
    **{
        (method, route): PUBLIC
        for method in ("GET", "HEAD")
        for route in ("/", "/ui", "/ui/", "/ui/config.json", "/ui/{asset}")
    },
}

# Actions a token may hold on the repository that are not enough for each need.
_SHORT_OF = {
    "pull": ("push", "delete"),
    "pull,push": ("pull", "push", "delete"),
    "delete": ("pull,push",),
    "*": ("pull,push,delete",),  # registry:catalog:* is not repository access
}
_DIGEST = "sha256:" + "0" * 64

ROUTES = sorted(router_routes(), key=lambda route: (route[1], route[0]))


@pytest.fixture(scope="module", autouse=True)
def _dockyard_only(target: str) -> None:
    if target != "dockyard":
        pytest.skip("the route table is dockyard's router (distribution has no /dockyard/v1/)")


def _url(env: TokenEnv, route: str, name: str) -> str:
    path = route.format(
        name=name, digest=_DIGEST, reference="latest", uuid=str(uuid.uuid4()), asset="app.js"
    )
    return env.registry.url + path


def _request(method: str, url: str, token: str | None) -> httpx.Response:
    headers = bearer(token) if token is not None else {}
    return httpx.request(method, url, headers=headers, timeout=30)


def _assert_refused(response: httpx.Response, method: str, needed: str | None) -> None:
    assert response.status_code == 401, f"{method} {response.url}: {response.status_code}"
    challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
    assert challenge.scheme == "bearer"
    assert scope_set(challenge.params.get("scope")) == scope_set(needed)
    if method != "HEAD":
        assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_the_table_names_the_access_of_every_route() -> None:
    unlisted = set(ROUTES) - ACCESS.keys()
    assert not unlisted, f"routes whose access control is not in ACCESS: {sorted(unlisted)}"
    assert not ACCESS.keys() - set(ROUTES), "ACCESS names routes the router does not have"


@pytest.mark.parametrize(("method", "route"), ROUTES, ids=[f"{m} {r}" for m, r in ROUTES])
def test_a_route_refuses_requests_without_its_scope(
    token_env: TokenEnv, method: str, route: str
) -> None:
    needed_template = ACCESS.get((method, route), "unlisted")
    assert needed_template != "unlisted", "see test_the_table_names_the_access_of_every_route"
    name = f"team/{uuid.uuid4().hex[:12]}"
    needed = needed_template.format(name=name) if needed_template is not None else None
    url = _url(token_env, route, name)
    if needed_template == PUBLIC:
        response = _request(method, url, None)
        assert response.status_code in (200, 302), f"{method} {url}: {response.status_code}"
        assert "WWW-Authenticate" not in response.headers
        return

    # No credentials at all: every route challenges.
    _assert_refused(_request(method, url, None), method, needed)
    # A valid token that grants nothing: enough only for the identity-only routes.
    nothing = token_env.token("alice")
    if needed is None:
        assert _request(method, url, nothing).status_code == 200
        return
    _assert_refused(_request(method, url, nothing), method, needed)

    kind, _, actions = needed.rpartition(":")
    for short in _SHORT_OF[actions]:
        wrong_action = token_env.token("alice", f"repository:{name}:{short}")
        _assert_refused(_request(method, url, wrong_action), method, needed)
    if kind.startswith("repository:"):
        other = f"repository:team/{uuid.uuid4().hex[:12]}:pull,push,delete"
        _assert_refused(_request(method, url, token_env.token("alice", other)), method, needed)

    # Exactly the access named: past access control (whatever the resource's answer).
    allowed = _request(method, url, token_env.token("alice", needed))
    assert allowed.status_code not in (401, 403), f"{method} {url}: {allowed.text}"
