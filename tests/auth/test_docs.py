"""docs/auth.md works as written: its YAML blocks start a registry and an issuer.

The blocks marked ``<!-- test: NAME -->`` are taken from the document verbatim; only the
folder ``/srv/dockyard`` and the ports 5000/5001 are replaced, so the test runs anywhere.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from tests.support.auth import (
    Skopeo,
    TokenServer,
    assert_not_logged,
    bearer,
    sha256_digest,
    write_htpasswd,
)
from tests.support.net import free_port
from tests.support.servers import RegistryProcess

from .conftest import ImageFactory

pytestmark = pytest.mark.interop

DOC = Path(__file__).resolve().parents[2] / "docs" / "auth.md"
README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"<!-- test: ([\w-]+) -->\s*```(\w+)\n(.*?)```", re.DOTALL)


def doc_blocks() -> dict[str, str]:
    return {name: body for name, _lang, body in BLOCK.findall(DOC.read_text())}


def localize(text: str, root: Path, registry_port: int, issuer_port: int) -> str:
    """The documented config with its folder and ports moved to this test's."""
    text = text.replace("/srv/dockyard", str(root))
    text = re.sub(r"addr: :5000\b", f"addr: 127.0.0.1:{registry_port}", text)
    text = re.sub(r"addr: :5001\b", f"addr: 127.0.0.1:{issuer_port}", text)
    text = text.replace("127.0.0.1:5001", f"127.0.0.1:{issuer_port}")
    assert ":5000" not in text and ":5001" not in text, text
    return text


def test_readme_pair_is_the_tested_pair() -> None:
    """The registry/issuer pair shown in the README is exactly the one started below."""
    readme = {name: body for name, _lang, body in BLOCK.findall(README.read_text())}
    blocks = doc_blocks()
    assert set(readme) == {"registry-config", "issuer-config"}
    for name, body in readme.items():
        assert body == blocks[name], name


def test_doc_has_the_tested_blocks() -> None:
    blocks = doc_blocks()
    assert set(blocks) == {"htpasswd-config", "registry-config", "issuer-config"}
    for name, body in blocks.items():
        assert isinstance(yaml.safe_load(body), dict), name
    registry = yaml.safe_load(blocks["registry-config"])["auth"]["token"]
    issuer = yaml.safe_load(blocks["issuer-config"])
    # The pair agrees with itself.
    assert registry["issuer"] == issuer["issuer"]
    assert registry["service"] == issuer["service"]
    assert registry["realm"].endswith(f":{issuer['addr'].rsplit(':', 1)[1]}/token")
    assert registry["rootcertbundle"] == "/srv/dockyard/token/" + issuer["certificate"]


@dataclass
class DocPair:
    registry: RegistryProcess
    issuer: TokenServer
    passwords: dict[str, str]

    @property
    def host(self) -> str:
        return self.registry.url.removeprefix("http://")

    def creds(self, user: str) -> str:
        return f"{user}:{self.passwords[user]}"


@pytest.fixture(scope="module")
def doc_pair(tmp_path_factory: pytest.TempPathFactory, target: str) -> Iterator[DocPair]:
    blocks = doc_blocks()
    root = tmp_path_factory.mktemp("srv-dockyard")
    registry = RegistryProcess(root / "registry", kind=target)  # type: ignore[arg-type]
    issuer_port = free_port()

    passwords = {user: secrets.token_urlsafe(18) for user in ("admin", "alice", "bob")}
    write_htpasswd(root / "token" / "users.htpasswd", passwords)
    issuer = TokenServer.from_text(
        root / "token",
        localize(blocks["issuer-config"], root, registry.port, issuer_port),
        issuer_port,
    )
    issuer.start()  # generates token.crt and token.key
    assert (root / "token" / "token.crt").exists()
    assert (root / "token" / "token.key").stat().st_mode & 0o077 == 0

    # The registry's config file is the document's block, nothing merged in.
    registry.config_path.write_text(
        localize(blocks["registry-config"], root, registry.port, issuer_port)
    )
    try:
        registry.start()
    except BaseException:
        issuer.stop()
        raise
    try:
        yield DocPair(registry, issuer, passwords)
    finally:
        registry.stop()
        issuer.stop()


def _copy_ok(skopeo: Skopeo, src: str, dest: str, *options: str) -> None:
    result = skopeo.copy(src, dest, *options)
    assert result.returncode == 0, result.stderr


def _copy_denied(skopeo: Skopeo, src: str, dest: str, *options: str) -> None:
    result = skopeo.copy(src, dest, *options)
    assert result.returncode != 0
    assert "requested access to the resource is denied" in result.stderr, result.stderr


def test_documented_pair_enforces_documented_acl(
    doc_pair: DocPair, skopeo: Skopeo, make_image: ImageFactory, tmp_path: Path
) -> None:
    push = "--dest-tls-verify=false"
    pull = "--src-tls-verify=false"
    registry = f"docker://{doc_pair.host}"
    base, app = make_image(), make_image()

    # admin: everything.
    _copy_ok(
        skopeo,
        base.ref,
        f"{registry}/library/base:1",
        push,
        "--dest-creds",
        doc_pair.creds("admin"),
    )
    # alice (developers): push team/*, pull library/*, no push to library/*.
    _copy_ok(
        skopeo, app.ref, f"{registry}/team/app:1", push, "--dest-creds", doc_pair.creds("alice")
    )
    _copy_denied(
        skopeo, app.ref, f"{registry}/library/app:1", push, "--dest-creds", doc_pair.creds("alice")
    )
    _copy_ok(
        skopeo,
        f"{registry}/library/base:1",
        f"dir:{tmp_path / 'a'}",
        pull,
        "--src-creds",
        doc_pair.creds("alice"),
    )
    # bob: pull library/* only.
    _copy_ok(
        skopeo,
        f"{registry}/library/base:1",
        f"dir:{tmp_path / 'b'}",
        pull,
        "--src-creds",
        doc_pair.creds("bob"),
    )
    assert sha256_digest((tmp_path / "b" / "manifest.json").read_bytes()) == base.manifest_digest
    _copy_denied(
        skopeo,
        f"{registry}/team/app:1",
        f"dir:{tmp_path / 'c'}",
        pull,
        "--src-creds",
        doc_pair.creds("bob"),
    )

    # The catalog is admin's alone.
    catalog = f"{doc_pair.registry.url}/v2/_catalog"
    for user, status in (("admin", 200), ("alice", 401)):
        response = doc_pair.issuer.token(["registry:catalog:*"], user, doc_pair.passwords[user])
        token = response.json()["token"]
        assert httpx.get(catalog, headers=bearer(token), timeout=10).status_code == status


def test_documented_htpasswd_config(tmp_path_factory: pytest.TempPathFactory, target: str) -> None:
    root = tmp_path_factory.mktemp("srv-dockyard")
    registry = RegistryProcess(root / "registry", kind=target)  # type: ignore[arg-type]
    password = secrets.token_urlsafe(18)
    write_htpasswd(root / "htpasswd", {"alice": password})
    registry.config_path.write_text(
        localize(doc_blocks()["htpasswd-config"], root, registry.port, free_port())
    )
    registry.start()
    try:
        url = f"{registry.url}/v2/"
        response = httpx.get(url, timeout=10)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="dockyard"'
        assert httpx.get(url, auth=("alice", password), timeout=10).status_code == 200
        assert httpx.get(url, auth=("alice", "not-" + password), timeout=10).status_code == 401
        assert_not_logged({"registry log": registry.log_text()}, [password], {"alice": password})
    finally:
        registry.stop()


def test_zz_documented_pair_logs_no_secrets(doc_pair: DocPair) -> None:
    logs = {"registry log": doc_pair.registry.log_text(), "issuer log": doc_pair.issuer.log_text()}
    assert_not_logged(logs, doc_pair.passwords.values(), doc_pair.passwords)
