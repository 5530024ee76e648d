"""``auth.htpasswd``: Basic authentication against an ``htpasswd -B`` file, with curl and skopeo."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from tests.support.auth import (
    Skopeo,
    assert_not_logged,
    parse_challenge,
    sha256_digest,
    unique_repo,
    write_htpasswd,
)
from tests.support.servers import RegistryProcess, RegistryStartError

from .conftest import ImageFactory

pytestmark = pytest.mark.interop

REALM = "dockyard htpasswd test"
CURL = shutil.which("curl")


@dataclass
class BasicEnv:
    registry: RegistryProcess
    htpasswd: Path
    passwords: dict[str, str]
    secrets: set[str] = field(default_factory=set)

    @property
    def host(self) -> str:
        return self.registry.url.removeprefix("http://")

    def creds(self, user: str) -> str:
        return f"{user}:{self.passwords[user]}"


def _htpasswd_registry(
    tmp_path_factory: pytest.TempPathFactory, target: str, path: Path
) -> RegistryProcess:
    return RegistryProcess(
        tmp_path_factory.mktemp("registry"),
        kind=target,  # type: ignore[arg-type]
        log_level="debug",  # secrets must stay out of the most verbose log too
        overrides={"auth": {"htpasswd": {"realm": REALM, "path": str(path)}}},
    )


@pytest.fixture(scope="module")
def basic_env(tmp_path_factory: pytest.TempPathFactory, target: str) -> Iterator[BasicEnv]:
    passwords = {"alice": secrets.token_urlsafe(18), "bob": secrets.token_urlsafe(18)}
    path = tmp_path_factory.mktemp("htpasswd") / "htpasswd"
    write_htpasswd(path, passwords)  # htpasswd -B (apache2-utils), else the bcrypt package
    registry = _htpasswd_registry(tmp_path_factory, target, path)
    registry.start()
    try:
        yield BasicEnv(registry, path, passwords, set(passwords.values()))
    finally:
        registry.stop()


def curl(url: str, user: str | None = None, password: str | None = None) -> tuple[int, str, str]:
    """``curl -si URL`` with credentials passed on stdin (never on the command line).

    Returns (status, headers, body).
    """
    if CURL is None:
        pytest.fail("curl is missing: apt-get install -y curl")
    config = f'user = "{user}:{password}"\n' if user is not None else ""
    result = subprocess.run(
        [CURL, "-sS", "-i", "-K", "-", url],
        input=config,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.replace("\r\n", "\n").partition("\n\n")
    status = int(head.split("\n", 1)[0].split()[1])
    return status, head, body


def _header(head: str, name: str) -> str | None:
    for line in head.split("\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


# -- the challenge -----------------------------------------------------------------------


def test_v2_answers_basic_challenge(basic_env: BasicEnv) -> None:
    for path in ("/v2/", "/v2/team/app/tags/list", "/v2/_catalog"):
        status, head, body = curl(basic_env.registry.url + path)
        assert status == 401, path
        challenge = parse_challenge(_header(head, "WWW-Authenticate"))
        assert challenge.scheme == "basic"
        assert challenge.params == {"realm": REALM}
        errors = json.loads(body)["errors"]
        assert [e["code"] for e in errors] == ["UNAUTHORIZED"]
        assert errors[0]["message"] == "authentication required"
        assert _header(head, "Docker-Distribution-API-Version") == "registry/2.0"


def test_curl_right_wrong_and_no_password(basic_env: BasicEnv) -> None:
    url = basic_env.registry.url + "/v2/"
    assert curl(url, "alice", basic_env.passwords["alice"])[0] == 200
    assert curl(url, "bob", basic_env.passwords["bob"])[0] == 200
    wrong = "wrong-" + secrets.token_hex(6)
    basic_env.secrets.add(wrong)
    for user, password in (
        ("alice", wrong),
        ("alice", basic_env.passwords["bob"]),  # another user's password
        ("alice", ""),
        ("mallory", wrong),  # no such user
        (None, None),
    ):
        status, head, _ = curl(url, user, password)
        assert status == 401, (user, password == wrong)
        assert parse_challenge(_header(head, "WWW-Authenticate")).scheme == "basic"
    # A Bearer token is no Basic credential.
    response = httpx.get(url, headers={"Authorization": "Bearer abc.def.ghi"}, timeout=10)
    assert response.status_code == 401


def test_skopeo_dest_creds_and_src_creds(
    basic_env: BasicEnv, skopeo: Skopeo, make_image: ImageFactory, tmp_path: Path
) -> None:
    image = make_image()
    dest = f"docker://{basic_env.host}/{unique_repo('basic')}:v1"
    tls = "--dest-tls-verify=false"

    wrong = "wrong-" + secrets.token_hex(6)
    basic_env.secrets.add(wrong)
    for creds in (["--dest-creds", f"alice:{wrong}"], []):
        result = skopeo.copy(image.ref, dest, tls, *creds)
        assert result.returncode != 0
        assert "authentication required" in result.stderr, result.stderr

    result = skopeo.copy(image.ref, dest, tls, "--dest-creds", basic_env.creds("alice"))
    assert result.returncode == 0, result.stderr

    out = tmp_path / "pulled"
    src_tls = "--src-tls-verify=false"
    for creds in (["--src-creds", f"bob:{wrong}"], []):
        result = skopeo.copy(dest, f"dir:{out}", src_tls, *creds)
        assert result.returncode != 0
        assert "authentication required" in result.stderr, result.stderr
    result = skopeo.copy(dest, f"dir:{out}", src_tls, "--src-creds", basic_env.creds("bob"))
    assert result.returncode == 0, result.stderr
    assert sha256_digest((out / "manifest.json").read_bytes()) == image.manifest_digest
    layer = out / image.layer_digest.removeprefix("sha256:")
    assert sha256_digest(layer.read_bytes()) == image.layer_digest


def test_changed_password_takes_effect_without_restart(basic_env: BasicEnv) -> None:
    """The file is re-read when it changes (docker-registry 2.8 does so too)."""
    url = basic_env.registry.url + "/v2/"
    old = basic_env.passwords["bob"]
    assert curl(url, "bob", old)[0] == 200  # now cached as a good password
    new = secrets.token_urlsafe(18)
    basic_env.secrets.add(new)
    write_htpasswd(basic_env.htpasswd, {**basic_env.passwords, "bob": new})
    basic_env.passwords["bob"] = new
    assert curl(url, "bob", new)[0] == 200
    assert curl(url, "bob", old)[0] == 401


# -- a bad file, a missing file ----------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "kind"),
    [("-m", "MD5 ($apr1$)"), ("-s", "SHA-1 ({SHA})"), ("-p", "plain text"), ("-d", "crypt")],
)
def test_non_bcrypt_entry_refuses_start(
    tmp_path_factory: pytest.TempPathFactory, target: str, flag: str, kind: str
) -> None:
    if target == "distribution":
        pytest.skip("docker-registry 2.8 starts and then refuses such users at login")
    if shutil.which("htpasswd") is None:
        pytest.skip("htpasswd (apache2-utils) makes the non-bcrypt entries")
    folder = tmp_path_factory.mktemp("badhtpasswd")
    good, bad = folder / "good", folder / "bad"
    write_htpasswd(good, {"alice": "alice-password"})
    write_htpasswd(bad, {"mallory": "mallory-password"}, flag=flag)
    path = folder / "htpasswd"
    path.write_text(good.read_text() + bad.read_text())

    registry = _htpasswd_registry(tmp_path_factory, target, path)
    with pytest.raises(RegistryStartError) as failure:
        registry.start(deadline=10)
    log = registry.log_text()
    assert "exited with status 2" in str(failure.value)
    assert "'mallory'" in log
    assert kind in log
    assert "bcrypt" in log and "htpasswd -B" in log
    assert "alice" not in log.split("=== start", 1)[1].split("\n", 1)[1]  # only the culprit
    assert "mallory-password" not in log


def test_missing_htpasswd_file_is_created_with_logged_password(
    tmp_path_factory: pytest.TempPathFactory, target: str
) -> None:
    """As distribution: user ``docker`` with a random password, logged once at WARNING."""
    path = tmp_path_factory.mktemp("nohtpasswd") / "auth" / "htpasswd"
    registry = _htpasswd_registry(tmp_path_factory, target, path)
    registry.start()
    try:
        assert path.exists()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        user, _, hashed = path.read_text().strip().partition(":")
        assert user == "docker"
        assert re.fullmatch(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}", hashed)

        found = re.findall(r"password[= ]([A-Za-z0-9_-]{40,})", registry.log_text())
        assert len(found) == 1, registry.log_tail()
        password = found[0]
        url = registry.url + "/v2/"
        assert curl(url, "docker", password)[0] == 200
        assert curl(url, "docker", password[:-1])[0] == 401
        assert curl(url)[0] == 401

        # A restart keeps the file: same password, none logged again.
        registry.restart()
        assert len(re.findall(r"password[= ]([A-Za-z0-9_-]{40,})", registry.log_text())) == 1
        assert curl(url, "docker", password)[0] == 200
    finally:
        registry.stop()


def test_zz_no_passwords_logged(basic_env: BasicEnv) -> None:
    """Runs last in this module: no password (right or wrong) in the registry log."""
    log = basic_env.registry.log_text()
    assert_not_logged({"registry log": log}, basic_env.secrets, basic_env.passwords)
    assert len(basic_env.secrets) >= 4
