"""The UI under access control: the API's rules, a login form, never the browser's dialog.

With htpasswd the form's credentials go to ``/v2/`` as Basic; with token auth the UI
gets tokens for each challenged scope through ``/ui/token`` (relayed to dockyard's
token issuer, a real process). A user sees what its scopes allow and nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from tests.auth.conftest import TokenEnv, start_token_env
from tests.support.auth import PKI, write_htpasswd
from tests.support.interop import Skopeo
from tests.support.net import free_port
from tests.support.servers import RegistryProcess
from tests.support.ui import Pushed, open_ui, push_sample, rows, settled, wait_for

from .conftest import Shot

PASSWORD = "correct horse battery staple"
UI_REQUEST = {"X-Requested-With": "XMLHttpRequest"}


def sign_in(page: Any, user: str, password: str) -> None:
    form = wait_for(page, "form.login")
    form.find_element(By.NAME, "user").send_keys(user)
    form.find_element(By.NAME, "password").send_keys(password)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    settled(page)


def notice(page: Any) -> str:
    return str(wait_for(page, "form.login .notice").text)


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """htpasswd with user ``alice``; deletes disabled."""
    workdir = tmp_path_factory.mktemp("ui-htpasswd")
    write_htpasswd(workdir / "htpasswd", {"alice": PASSWORD})
    server = RegistryProcess(
        workdir,
        overrides={
            "auth": {"htpasswd": {"realm": "dockyard", "path": str(workdir / "htpasswd")}},
            "storage": {"delete": {"enabled": False}},
        },
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def basic_sample(
    basic_registry: RegistryProcess, skopeo: Skopeo, tmp_path_factory: pytest.TempPathFactory
) -> Pushed:
    host = basic_registry.url.removeprefix("http://")
    workdir = tmp_path_factory.mktemp("layouts")
    return push_sample(skopeo, workdir, host, "demo/app", f"alice:{PASSWORD}")


@pytest.fixture(scope="module")
def token_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenEnv]:
    """Token auth (users of tests/auth: alice all, bob pull on team/*); deletes enabled."""
    env = start_token_env(tmp_path_factory, "dockyard")
    try:
        yield env
    finally:
        env.registry.stop()
        env.issuer.stop()


@pytest.fixture(scope="module")
def token_sample(
    token_env: TokenEnv, skopeo: Skopeo, tmp_path_factory: pytest.TempPathFactory
) -> Pushed:
    host = token_env.registry.url.removeprefix("http://")
    workdir = tmp_path_factory.mktemp("layouts")
    return push_sample(skopeo, workdir, host, "team/app", token_env.creds("alice"))


def test_ui_requests_get_no_basic_challenge(basic_registry: RegistryProcess) -> None:
    catalog = f"{basic_registry.url}/v2/_catalog"
    plain = httpx.get(catalog)
    assert plain.status_code == 401
    assert plain.headers["WWW-Authenticate"] == 'Basic realm="dockyard"'
    # What the UI sends: still refused, but nothing that opens the browser's dialog.
    scripted = httpx.get(catalog, headers=UI_REQUEST)
    assert scripted.status_code == 401
    assert "WWW-Authenticate" not in scripted.headers
    assert scripted.json()["errors"][0]["code"] == "UNAUTHORIZED"
    # The pages themselves are public; the data is not.
    assert httpx.get(f"{basic_registry.url}/ui/").status_code == 200
    config = httpx.get(f"{basic_registry.url}/ui/config.json").json()
    assert config == {"prefix": "/", "delete": False, "auth": "basic"}


def test_htpasswd_users_sign_in_with_the_form(
    page: Any, shot: Shot, basic_registry: RegistryProcess, basic_sample: Pushed
) -> None:
    open_ui(page, basic_registry.url)
    assert notice(page) == "Please sign in to see this."
    assert not page.find_elements(By.CSS_SELECTOR, "table")
    shot("login")

    sign_in(page, "alice", "wrong")
    assert notice(page) == "The user name or password is wrong."
    page.find_element(By.ID, "sign-out").click()
    settled(page)

    sign_in(page, "alice", PASSWORD)
    assert [row[0] for row in rows(page, "repositories")] == ["demo/app"]
    assert page.find_element(By.ID, "user").text == "Signed in as alice"
    open_ui(page, basic_registry.url, "#/r/demo/app")
    assert sorted(row[0] for row in rows(page, "tags")) == basic_sample.tags
    assert not page.find_elements(By.CSS_SELECTOR, "button.delete")  # deletes are disabled
    shot("tags")

    page.find_element(By.ID, "sign-out").click()
    assert notice(page) == "Please sign in to see this."


def test_the_token_relay_asks_the_configured_realm(token_env: TokenEnv) -> None:
    relay = f"{token_env.registry.url}/ui/token"
    scope = {"scope": "repository:team/app:pull"}
    anonymous = httpx.get(relay, params=scope)
    assert anonymous.status_code == 401
    assert "WWW-Authenticate" not in anonymous.headers
    answer = httpx.get(relay, params=scope, auth=("alice", token_env.passwords["alice"]))
    assert answer.status_code == 200
    token = answer.json()["token"]
    pulled = httpx.get(
        f"{token_env.registry.url}/v2/team/app/tags/list",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert pulled.status_code in (200, 404)  # past access control


def test_an_unreachable_realm_is_a_bad_gateway(tmp_path: Path) -> None:
    pki = PKI(tmp_path / "pki")
    realm = f"http://127.0.0.1:{free_port()}/token"  # nothing listens there
    server = RegistryProcess(
        tmp_path / "registry",
        overrides={
            "auth": {
                "token": {
                    "realm": realm,
                    "service": "registry",
                    "issuer": "nobody",
                    "rootcertbundle": str(pki.ca_path),
                }
            }
        },
    )
    server.start()
    try:
        answer = httpx.get(f"{server.url}/ui/token", params={"scope": "registry:catalog:*"})
        assert answer.status_code == 502
        assert answer.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert "Traceback" not in server.log_text()
    finally:
        server.stop()


def test_token_users_see_what_their_scopes_allow(
    page: Any, shot: Shot, token_env: TokenEnv, token_sample: Pushed
) -> None:
    url = token_env.registry.url
    open_ui(page, url)
    assert notice(page) == "Please sign in to see this."

    sign_in(page, "bob", "wrong")
    assert notice(page) == "The user name or password is wrong."
    page.find_element(By.ID, "sign-out").click()
    settled(page)

    # bob may pull team/* but not read the catalog: the catalog asks for another user.
    sign_in(page, "bob", token_env.passwords["bob"])
    assert notice(page) == "bob may not see this; sign in as another user?"
    shot("catalog-refused")
    page.find_element(By.NAME, "repository").send_keys("team/app")
    page.find_element(By.CSS_SELECTOR, "form.open-repository button").click()
    wait_for(page, "table.tags")
    settled(page)
    assert sorted(row[0] for row in rows(page, "tags")) == token_sample.tags
    assert not page.find_elements(By.CSS_SELECTOR, "button.delete")  # no delete scope
    open_ui(page, url, f"#/m/team/app/{token_sample.image.digest}")
    assert page.find_elements(By.CSS_SELECTOR, "table.layers")
    assert not page.find_elements(By.CSS_SELECTOR, "button.delete")
    page.find_element(By.ID, "sign-out").click()
    settled(page)

    sign_in(page, "alice", token_env.passwords["alice"])
    open_ui(page, url)
    assert [row[0] for row in rows(page, "repositories")] == ["team/app"]
    open_ui(page, url, "#/r/team/app")
    assert len(page.find_elements(By.CSS_SELECTOR, "button.delete")) == len(token_sample.tags)
    shot("tags")


def test_no_ui_when_turned_off(tmp_path: Path) -> None:
    server = RegistryProcess(tmp_path, overrides={"ui": {"enabled": False}})
    server.start()
    try:
        for path in ("/", "/ui/", "/ui/app.js", "/ui/config.json"):
            assert httpx.get(server.url + path).status_code == 404, path
        assert httpx.get(server.url + "/v2/").status_code == 200
    finally:
        server.stop()
